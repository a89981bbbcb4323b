// Test helper run INSIDE the server namespace of test/conntrack/kernel.test.ts (ip netns exec): programs a
// small stateful table (established passes, new TCP only to allowed ports), serves two ports, holds three
// connections from the client namespace (src/lab/holder.ts), then stops allowing one port and deletes
// conntrack entries with our ctnetlink client. Prints one JSON line; never run it in the root namespace.

import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { CtEntry } from '../../src/conntrack/entry.ts';
import { ConntrackSocket } from '../../src/conntrack/socket.ts';
import { RpcChild } from '../../src/lab/rpc.ts';
import { Chain, m, NfnlSocket, Rule, Table, Transaction } from '../../src/nft/index.ts';
import { formatAddress, parseAddress } from '../../src/policy/address.ts';

interface Args {
  clientNs: string;
  client: string;
  server: string;
  client6: string;
  server6: string;
  kept: number;
  cut: number;
  /** A server that can send first (the reverse pickup case). */
  push: number;
  timeoutMs: number;
  /** Sets nf_conntrack_tcp_loose in this (the server's) namespace. */
  tcpLoose?: 0;
}

// biome-ignore lint/suspicious/noExplicitAny: JSON for the test, checked field by field there
const out: Record<string, any> = {};
const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const family = 'inet';
const table = 'tg-ct';
const HOLDER = fileURLToPath(new URL('../../src/lab/holder.ts', import.meta.url));

function allowRules(tx: Transaction, ports: number[]): void {
  for (const port of ports)
    tx.add(
      new Rule({
        family,
        table,
        chain: 'allow',
        exprs: [...m.match('meta l4proto', 'tcp'), ...m.match('th dport', port), m.verdict('accept')],
      }),
    );
}

const nft = new NfnlSocket();
const ct = new ConntrackSocket();
let holder: RpcChild<{ id: number; ok: boolean; detail: string }> | undefined;
try {
  if (a.tcpLoose !== undefined) {
    const path = '/proc/sys/net/netfilter/nf_conntrack_tcp_loose';
    writeFileSync(path, `${a.tcpLoose}\n`);
    out.tcpLoose = readFileSync(path, 'utf8').trim();
  }
  const tx = new Transaction();
  tx.add(new Table({ family, name: table }));
  tx.add(new Chain({ family, table, name: 'allow' }));
  tx.add(
    new Chain({ family, table, name: 'in', type: 'filter', hook: 'input', priority: 0, policy: 'accept' }),
  );
  const rule = (exprs: ReturnType<typeof m.verdict>[]) =>
    tx.add(new Rule({ family, table, chain: 'in', exprs }));
  rule([...m.match('ct state', 'established,related'), m.verdict('accept')]);
  rule([...m.match('meta l4proto', 'tcp'), m.verdict('jump allow')]);
  rule([...m.match('meta l4proto', 'tcp'), m.verdict('drop')]);
  allowRules(tx, [a.kept, a.cut, a.push]);
  await nft.commit(tx.encode());

  const servers = [a.kept, a.cut].map((port) => {
    const s = createServer((_req, res) => res.end(`port ${port}\n`));
    s.keepAliveTimeout = 0;
    return new Promise<void>((resolve) => s.listen({ port, host: '::', ipv6Only: false }, resolve)).then(
      () => s,
    );
  });
  const listening = await Promise.all(servers);
  // Answers every request like the HTTP servers, and can also send an answer nobody asked for.
  const pushed: net.Socket[] = [];
  const answer = 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\npush\n';
  const pusher = net.createServer((s) => {
    pushed.push(s);
    s.on('data', () => s.write(answer));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => pusher.listen({ port: a.push, host: '::', ipv6Only: false }, resolve));

  holder = new RpcChild(['ip', 'netns', 'exec', a.clientNs, process.execPath, HOLDER], {
    lost: (id, why) => ({ id, ok: false as boolean, detail: `holder ${why}` }),
  });
  const h = holder;
  const req = (body: Record<string, unknown>) => h.request(body);
  const conns = { c1: [a.server, a.kept], c2: [a.server, a.cut], c3: [a.server6, a.cut] } as const;
  out.connect = {};
  for (const [name, [host, port]] of Object.entries({ ...conns, c4: [a.server, a.push] }))
    out.connect[name] = (await req({ op: 'connect', name, host, port, timeoutMs: a.timeoutMs })).ok;

  const pingAll = async () => {
    const r: Record<string, boolean> = {};
    for (const name of Object.keys(conns))
      r[name] = (await req({ op: 'ping', name, timeoutMs: a.timeoutMs })).ok;
    return r;
  };
  const find = (entries: CtEntry[], host: string, port: number) =>
    entries.find((e) => formatAddress(e.orig.dst) === host && e.orig.dport === port && e.orig.protocol === 6);
  const summary = (e: CtEntry | undefined) =>
    e && {
      family: e.family,
      src: formatAddress(e.orig.src),
      dst: formatAddress(e.orig.dst),
      replySrc: formatAddress(e.reply.src),
      tcpState: e.tcpState,
      status: e.status,
      hasId: e.id !== undefined,
    };

  const all = (await ct.dump()).entries;
  const v4 = (await ct.dump(4)).entries;
  const v6 = (await ct.dump(6)).entries;
  out.before = {
    c1: summary(find(all, a.server, a.kept)),
    c2: summary(find(all, a.server, a.cut)),
    c3: summary(find(all, a.server6, a.cut)),
    v4HasV6: v4.some((e) => e.family === 6),
    v6HasV4: v6.some((e) => e.family === 4),
    v6HasC3: find(v6, a.server6, a.cut) !== undefined,
  };
  // Only the entries with the IPv6 server at one end: the IPv4 ones are skipped undecoded.
  const server6 = parseAddress(a.server6)!.value;
  const only = await ct.dump(undefined, { v4: new Set(), v6: new Set([server6]) });
  out.only = {
    hasC3: find(only.entries, a.server6, a.cut) !== undefined,
    allTouch: only.entries.every((e) => e.orig.src.value === server6 || e.reply.src.value === server6),
    skipped: only.skipped,
    total: all.length,
    kept: only.entries.length,
  };

  // The "policy change": the cut port is no longer allowed. Established connections still pass.
  const change = new Transaction();
  change.flush(new Chain({ family, table, name: 'allow' }));
  allowRules(change, [a.kept]);
  await nft.commit(change.encode());
  out.afterChange = await pingAll();

  const c2 = find(all, a.server, a.cut)!;
  const c3 = find(all, a.server6, a.cut)!;
  out.deleted = [await ct.delete(c2), await ct.delete(c3)];
  out.deletedAgain = await ct.delete(c2);
  // A newer entry with the same tuple is never removed by a stale id.
  out.staleId = await ct.delete({
    ...find(all, a.server, a.kept)!,
    id: (find(all, a.server, a.kept)!.id! + 1) >>> 0,
  });
  const afterDelete = (await ct.dump()).entries;
  out.afterDelete = {
    c1: find(afterDelete, a.server, a.kept) !== undefined,
    c2: find(afterDelete, a.server, a.cut) !== undefined,
    c3: find(afterDelete, a.server6, a.cut) !== undefined,
  };
  // The next packet of a cut connection is picked up as ct state new (nf_conntrack_tcp_loose) and meets
  // the isolation drop; its unconfirmed entry dies with it.
  out.afterCut = await pingAll();
  const afterPing = (await ct.dump()).entries;
  out.afterPing = {
    c2: find(afterPing, a.server, a.cut) !== undefined,
    c3: find(afterPing, a.server6, a.cut) !== undefined,
  };

  // The far end sends first after the cut: its packet leaves through an unfiltered hook, conntrack picks
  // the connection up in the reverse orientation, and the client's packets then pass as its replies.
  const c4 = find(all, a.server, a.push)!;
  out.push = { deleted: await ct.delete(c4) };
  for (const s of pushed) s.write(answer);
  const deadline = Date.now() + a.timeoutMs;
  let reverse: CtEntry | undefined;
  while (!reverse && Date.now() < deadline) {
    reverse = (await ct.dump()).entries.find(
      (e) => formatAddress(e.orig.src) === a.server && e.orig.sport === a.push && e.orig.protocol === 6,
    );
    if (!reverse) await new Promise((r) => setTimeout(r, 50));
  }
  out.push.reversePickup = reverse !== undefined;
  out.push.alive = (await req({ op: 'ping', name: 'c4', timeoutMs: a.timeoutMs })).ok;
  for (const s of pushed) s.destroy();
  pusher.close();
  for (const s of listening) {
    s.closeAllConnections();
    s.close();
  }
  out.ok = true;
} catch (e) {
  out.fatal =
    e instanceof Error
      ? { message: e.message, code: (e as { code?: string }).code, stack: e.stack }
      : String(e);
} finally {
  await holder?.end();
  ct.close();
  nft.close();
}
console.log(JSON.stringify(out));
process.exit(0);
