// Benchmark: one transaction with a 100,000-element interval set and a 100,000-element concatenated set,
// through our netlink code vs `nft -f` of the same content, each in its own fresh network namespace; plus
// incremental element changes. Ours twice: from element texts (ratio), and from packed ranges as the
// compiler hands them over (packed_*: packed_js_ms is the JavaScript side, packed_ratio against nft). Run with `npm run bench -- netlink`. Not a test; needs root and nft.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NamedSet, NfnlSocket, PackedElements, Table, Transaction } from '../src/nft/index.ts';

const N = 100_000;
const INC = 1000;
const self = fileURLToPath(import.meta.url);

function intervalElements(): string[] {
  const out: string[] = [];
  // 100k disjoint /25 prefixes spread over 10.0.0.0 upwards.
  for (let i = 0; i < N; i++) out.push(`${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/25`);
  return out;
}

function concatElements(): string[] {
  const out: string[] = [];
  for (let i = 0; i < N; i++) {
    out.push(
      `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255} . ${i % 2 ? 'udp' : 'tcp'} . ${1 + (i % 65000)}`,
    );
  }
  return out;
}

function build(): { tx: Transaction; iv: NamedSet; cs: NamedSet } {
  const tx = new Transaction();
  tx.add(new Table({ family: 'inet', name: 'bench' }));
  const iv = new NamedSet({
    family: 'inet',
    table: 'bench',
    name: 'iv',
    key: 'ipv4_addr',
    flags: ['interval'],
    elements: intervalElements(),
  });
  const cs = new NamedSet({
    family: 'inet',
    table: 'bench',
    name: 'cs',
    key: ['ipv4_addr', 'inet_proto', 'inet_service'],
    elements: concatElements(),
  });
  tx.add(iv).add(cs);
  return { tx, iv, cs };
}

/**
 * The same two sets as the compiler hands them to a transaction (nft PackedElements.ofRanges): ranges
 * held as numbers, packed into key bytes, no element texts and no object per element.
 */
function buildPacked(): Transaction[] {
  const tx = new Transaction();
  const tx2 = new Transaction();
  tx.add(new Table({ family: 'inet', name: 'bench' }));
  const iv = new NamedSet({
    family: 'inet',
    table: 'bench',
    name: 'iv',
    key: 'ipv4_addr',
    flags: ['interval'],
  });
  const cs = new NamedSet({
    family: 'inet',
    table: 'bench',
    name: 'cs',
    key: ['ipv4_addr', 'inet_proto', 'inet_service'],
    flags: ['interval'],
  });
  const a = Buffer.alloc(2 * 4 * N);
  for (let i = 0; i < N; i++) {
    const base = ((10 + (i >> 16)) * 2 ** 24 + (((i >> 8) & 255) << 16) + ((i & 255) << 8)) >>> 0;
    a.writeUInt32BE(base, 8 * i);
    a.writeUInt32BE(base + 127, 8 * i + 4);
  }
  const c = Buffer.alloc(2 * 12 * N);
  for (let i = 0; i < N; i++) {
    const addr = (172 * 2 ** 24 + ((16 + (i >> 16)) << 16) + (((i >> 8) & 255) << 8) + (i & 255)) >>> 0;
    for (const at of [24 * i, 24 * i + 12]) {
      c.writeUInt32BE(addr, at);
      c[at + 4] = i % 2 ? 17 : 6;
      c.writeUInt16BE(1 + (i % 65000), at + 8);
    }
  }
  tx.add(iv).addElements(iv, new PackedElements(4, N, a));
  // Two batches: as an interval concatenation (the compiler's shape) the pair passes 8 MB, over the
  // send buffer a wmem_max of 4 MB allows.
  tx2.add(cs).addElements(cs, new PackedElements(12, N, c));
  return [tx, tx2];
}

/** Runs inside the namespace: commit the big transaction, then the incremental changes. */
async function child(): Promise<void> {
  const sock = new NfnlSocket();
  if (process.argv[3] === 'packed') {
    const t0 = performance.now();
    const txs = buildPacked();
    const t1 = performance.now();
    for (const tx of txs) tx.encode();
    const t2 = performance.now();
    let bytes = 0;
    for (const tx of txs) bytes += (await tx.run(sock)).bytes;
    const t3 = performance.now();
    sock.close();
    process.stdout.write(
      `${JSON.stringify({ build_ms: t1 - t0, encode_ms: t2 - t1, kernel_ms: t3 - t2, batch_bytes: bytes })}\n`,
    );
    return;
  }
  const t0 = performance.now();
  const { tx, iv } = build();
  const t1 = performance.now();
  const r = await tx.run(sock);
  const t2 = performance.now();
  const extra = Array.from({ length: INC }, (_, i) => `192.0.${i >> 8}.${i & 255}`);
  const bare = new NamedSet({
    family: 'inet',
    table: 'bench',
    name: 'iv',
    key: 'ipv4_addr',
    flags: ['interval'],
  });
  let t = performance.now();
  for (const e of extra) await new Transaction().addElements(bare, [e]).run(sock);
  const addEach = performance.now() - t;
  t = performance.now();
  for (const e of extra) await new Transaction().deleteElements(bare, [e]).run(sock);
  const delEach = performance.now() - t;
  t = performance.now();
  await new Transaction().addElements(bare, extra).run(sock);
  const addOne = performance.now() - t;
  t = performance.now();
  await new Transaction().deleteElements(bare, extra).run(sock);
  const delOne = performance.now() - t;
  sock.close();
  process.stdout.write(
    `${JSON.stringify({
      build_ms: t1 - t0,
      commit_ms: t2 - t1,
      batch_bytes: r.bytes,
      batch_messages: r.messages,
      elements_iv: iv.elements.length,
      add_each_ms: addEach,
      del_each_ms: delEach,
      add_one_tx_ms: addOne,
      del_one_tx_ms: delOne,
    })}\n`,
  );
}

function ns(cmd: 'add' | 'del', name: string): void {
  spawnSync('ip', ['netns', cmd, name]);
}

function countElements(name: string, set: string): number {
  const r = spawnSync('ip', ['netns', 'exec', name, 'nft', '-j', 'list', 'set', 'inet', 'bench', set], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const j = JSON.parse(r.stdout || '{"nftables":[]}') as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  return j.nftables.find((x) => x.set)?.set?.elem?.length ?? -1;
}

export async function run(): Promise<object> {
  const tag = `tg-bench-${process.pid}`;
  const ours = `${tag}-ours`;
  const theirs = `${tag}-nft`;
  const dir = mkdtempSync(join(tmpdir(), 'tg-bench-'));
  try {
    ns('add', ours);
    ns('add', theirs);
    const w0 = performance.now();
    const c = spawnSync('ip', ['netns', 'exec', ours, process.execPath, self, '--child'], {
      encoding: 'utf8',
    });
    const oursWall = performance.now() - w0;
    if (c.status !== 0) throw new Error(`bench child failed: ${c.stderr}`);
    const res = JSON.parse(c.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
    // The compiler's path: packed ranges, in a third namespace.
    const packedNs = `${tag}-packed`;
    ns('add', packedNs);
    const pc = spawnSync('ip', ['netns', 'exec', packedNs, process.execPath, self, '--child', 'packed'], {
      encoding: 'utf8',
    });
    const packedCounts =
      pc.status === 0 ? { iv: countElements(packedNs, 'iv'), cs: countElements(packedNs, 'cs') } : undefined;
    ns('del', packedNs);
    if (pc.status !== 0) throw new Error(`bench child (packed) failed: ${pc.stderr}`);
    const packed = JSON.parse(pc.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number>;
    const file = join(dir, 'bench.nft');
    writeFileSync(file, build().tx.toString());
    const n0 = performance.now();
    const n = spawnSync('ip', ['netns', 'exec', theirs, 'nft', '-f', file], { encoding: 'utf8' });
    const nftMs = performance.now() - n0;
    if (n.status !== 0) throw new Error(`nft -f failed: ${n.stderr.slice(0, 500)}`);
    const oursMs = (res.build_ms ?? 0) + (res.commit_ms ?? 0);
    const r2 = (x: number | undefined) => Math.round((x ?? 0) * 10) / 10;
    return {
      elements: N,
      ours_ms: r2(oursMs),
      nft_ms: r2(nftMs),
      ratio: Math.round((oursMs / nftMs) * 1000) / 1000,
      ours_wall_ms_incl_node_start: r2(oursWall),
      ours_build_ms: r2(res.build_ms),
      ours_commit_ms: r2(res.commit_ms),
      batch_bytes: res.batch_bytes,
      batch_messages: res.batch_messages,
      sets: 'iv: 100k ipv4_addr intervals (/25); cs: 100k ipv4_addr . inet_proto . inet_service',
      check_elements_ours: { iv: countElements(ours, 'iv'), cs: countElements(ours, 'cs') },
      check_elements_nft: { iv: countElements(theirs, 'iv'), cs: countElements(theirs, 'cs') },
      packed_js_ms: r2((packed.build_ms ?? 0) + (packed.encode_ms ?? 0)),
      packed_build_ms: r2(packed.build_ms),
      packed_encode_ms: r2(packed.encode_ms),
      packed_kernel_ms: r2(packed.kernel_ms),
      packed_ratio:
        Math.round(
          (((packed.build_ms ?? 0) + (packed.encode_ms ?? 0) + (packed.kernel_ms ?? 0)) / nftMs) * 1000,
        ) / 1000,
      packed_batch_bytes: packed.batch_bytes,
      check_elements_packed: packedCounts,
      inc_add_1000_one_per_tx_ms: r2(res.add_each_ms),
      inc_del_1000_one_per_tx_ms: r2(res.del_each_ms),
      inc_add_1000_in_one_tx_ms: r2(res.add_one_tx_ms),
      inc_del_1000_in_one_tx_ms: r2(res.del_one_tx_ms),
    };
  } finally {
    ns('del', ours);
    ns('del', theirs);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === self && process.argv[2] === '--child') await child();
