// Test helper run INSIDE a throwaway namespace (ip netns exec) by test/nft/overflow.test.ts: overflows
// the receive queue of our own netlink sockets and prints one JSON line saying whether they went on.
// A separate process because the failure being guarded against is an abort. Never run it in the root ns.

import { NFPROTO } from '../../src/netlink/constants.ts';
import { Chain, listRuleset, NamedSet, NfnlSocket, Table, Transaction } from '../../src/nft/index.ts';
import { TableMonitor } from '../../src/nft/monitor.ts';

const [mode = '', arg = '0', timeoutArg = '30000'] = process.argv.slice(2);
const timeoutMs = Number(timeoutArg);
const family = 'inet';
const table = 'tg-ovf';
const out: Record<string, unknown> = { mode };

function errInfo(e: unknown): unknown {
  const x = e as { code?: string; message?: string };
  return { code: x.code, message: x.message };
}

function addresses(from: number, n: number): string[] {
  const els: string[] = [];
  for (let i = from; i < from + n; i++) els.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return els;
}

/** Our table with one IPv4 set `a` of `n` addresses, committed 2,000 elements a batch. */
async function filledSet(sock: NfnlSocket, n: number): Promise<void> {
  const set = new NamedSet({ family, table, name: 'a', key: 'ipv4_addr' });
  await new Transaction()
    .add(new Table({ family, name: table }))
    .add(set)
    .run(sock);
  for (let b = 0; b < n; b += 2000)
    await new Transaction().addElements(set, addresses(b, Math.min(2000, n - b))).run(sock);
}

try {
  if (mode === 'monitor') {
    // Another process floods our table: `batches` commits of 2,000 elements each, every element one
    // NEWSETELEM notification, into the smallest receive queue the kernel allows.
    const batches = Number(arg);
    let lost = 0;
    let sawEnd!: () => void;
    const ended = new Promise<void>((resolve) => {
      sawEnd = resolve;
    });
    const changes: string[] = [];
    const monitor = new TableMonitor({
      family: NFPROTO.INET,
      table,
      recvBufferSize: 1,
      onChange: (c) => {
        changes.push(c.summary);
        if (c.summary.includes('NEWCHAIN')) sawEnd();
      },
      onLost: () => lost++,
    });
    const sock = new NfnlSocket({ timeoutMs });
    await filledSet(sock, batches * 2000);
    // Lets the event loop drain the queue, then one small change that must still be seen.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await new Transaction().add(new Chain({ family, table, name: 'end' })).run(sock);
    const timer = setTimeout(() => sawEnd(), timeoutMs);
    await ended;
    clearTimeout(timer);
    // The periodic drop check runs every second; wait for it past a few rounds at most.
    const until = Date.now() + timeoutMs;
    while (lost === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
    out.lost = lost;
    out.monitorLost = monitor.lost;
    out.sawEnd = changes.some((s) => s.includes('NEWCHAIN'));
    out.changes = changes.length;
    monitor.close();
    sock.close();
  } else if (mode === 'acks') {
    // One batch of `n` chains: n ACKs into the smallest receive queue of the committing socket.
    const n = Number(arg);
    const small = new NfnlSocket({ recvBufferSize: 1, timeoutMs });
    const tx = new Transaction().add(new Table({ family, name: table }));
    for (let i = 0; i < n; i++) tx.add(new Chain({ family, table, name: `c${i}` }));
    try {
      out.commit = await tx.run(small);
    } catch (e) {
      out.commitError = errInfo(e);
    }
    small.close();
    // What the kernel really holds, read by a socket of normal size.
    const sock = new NfnlSocket({ timeoutMs });
    const back = await listRuleset(sock, { family: 'inet', table });
    out.chainsInKernel = back.chains.length;
    sock.close();
  } else if (mode === 'listing') {
    // A large listing read by a socket with the minimum receive queue: dumps are paced by the reader.
    const n = Number(arg);
    const sock = new NfnlSocket({ timeoutMs });
    await filledSet(sock, n);
    sock.close();
    const small = new NfnlSocket({ recvBufferSize: 1, timeoutMs });
    const back = await listRuleset(small, { family: 'inet', table });
    out.elements = back.sets[0]?.elements.length;
    small.close();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  out.ok = true;
} catch (e) {
  out.ok = false;
  out.fatal = errInfo(e);
}
console.log(JSON.stringify(out));
process.exit(0);
