// Root test of the ctnetlink client on the real kernel, in two throwaway network namespaces joined by a
// veth pair (10.244.219.0/24, fd00:10:244:219::/64; nothing in the machine's own namespace): held TCP
// connections are seen in the dump (both families), deleted by tuple, and a deleted connection that its
// table no longer allows stops passing, while an allowed one and the table's established rule are kept.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { scaledMs } from '../../src/lab/load.ts';
import { makeNs, nsExec, type Teardown } from '../nft/_ns.ts';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENT = '10.244.219.1';
const SERVER = '10.244.219.2';
const CLIENT6 = 'fd00:10:244:219::1';
const SERVER6 = 'fd00:10:244:219::2';

// biome-ignore lint/suspicious/noExplicitAny: JSON printed by the child process, checked field by field
type Json = any;

function pair(t: Teardown): { client: string; server: string } {
  const client = makeNs(t, 'ctc');
  const server = makeNs(t, 'cts');
  const ip = (ns: string, ...args: string[]) => {
    const r = nsExec(ns, 'ip', args);
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')} in ${ns}: ${r.stderr}`);
  };
  ip(client, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', server);
  ip(client, 'addr', 'add', `${CLIENT}/24`, 'dev', 'va');
  ip(server, 'addr', 'add', `${SERVER}/24`, 'dev', 'vb');
  ip(client, 'addr', 'add', `${CLIENT6}/64`, 'dev', 'va', 'nodad');
  ip(server, 'addr', 'add', `${SERVER6}/64`, 'dev', 'vb', 'nodad');
  for (const [ns, dev] of [
    [client, 'va'],
    [server, 'vb'],
  ] as const) {
    ip(ns, 'link', 'set', 'lo', 'up');
    ip(ns, 'link', 'set', dev, 'up');
  }
  return { client, server };
}

/** Runs _child.ts in a fresh pair of namespaces and returns its JSON line. */
function runChild(t: Teardown, extra: { tcpLoose?: 0 } = {}): Json {
  const { client, server } = pair(t);
  const args = {
    clientNs: client,
    client: CLIENT,
    server: SERVER,
    client6: CLIENT6,
    server6: SERVER6,
    kept: 8080,
    cut: 8081,
    push: 8082,
    timeoutMs: scaledMs(1500),
    ...extra,
  };
  const r = spawnSync(
    'ip',
    ['netns', 'exec', server, process.execPath, join(here, '_child.ts'), JSON.stringify(args)],
    {
      encoding: 'utf8',
      timeout: scaledMs(120_000),
    },
  );
  try {
    return JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '');
  } catch {
    return { unparsed: r.stdout, stderr: r.stderr, status: r.status };
  }
}

t.test('dump, delete by tuple, and what a deleted connection meets', async (t) => {
  const out = runChild(t);
  t.equal(out.ok, true, out.ok === true ? 'the child ran' : JSON.stringify(out.fatal ?? out).slice(0, 4000));
  if (out.ok !== true) return;
  t.same(out.connect, { c1: true, c2: true, c3: true, c4: true }, 'four connections held');
  const est = { tcpState: 'ESTABLISHED', hasId: true };
  t.match(out.before.c1, { family: 4, src: CLIENT, dst: SERVER, replySrc: SERVER, ...est });
  t.match(out.before.c2, { family: 4, src: CLIENT, dst: SERVER, ...est });
  t.match(out.before.c3, { family: 6, src: CLIENT6, dst: SERVER6, replySrc: SERVER6, ...est });
  t.ok((out.before.c1.status & 0x0a) === 0x0a, 'status: seen reply and confirmed');
  t.same(
    [out.before.v4HasV6, out.before.v6HasV4, out.before.v6HasC3],
    [false, false, true],
    'per-family dumps',
  );
  t.match(out.only, { hasC3: true, allTouch: true }, 'a dump for one address keeps its entries');
  t.ok(out.only.skipped >= 2 && out.only.skipped + out.only.kept === out.only.total, 'and skips the others');
  t.same(out.afterChange, { c1: true, c2: true, c3: true }, 'without a delete, established connections pass');
  t.same(out.deleted, ['deleted', 'deleted'], 'both entries deleted');
  t.equal(out.deletedAgain, 'gone', 'a second delete finds it gone (ENOENT is no error)');
  t.equal(out.staleId, 'gone', 'a delete with another id leaves the entry');
  t.same(out.afterDelete, { c1: true, c2: false, c3: false }, 'the dump no longer shows the deleted ones');
  t.same(
    out.afterCut,
    { c1: true, c2: false, c3: false },
    'deleted + no longer allowed: cut; allowed: alive',
  );
  t.same(out.afterPing, { c2: false, c3: false }, 'the cut packets made no lasting entry (new, dropped)');
  // The known limit of cutting by deleting entries (src/agent/cut.ts): a cut connection whose far end
  // sends first, in a direction the table does not filter, comes back as "replies".
  t.equal(out.push.deleted, 'deleted');
  t.equal(out.push.reversePickup, true, 'the far end sending first makes a reverse entry (loose pickup)');
  t.equal(out.push.alive, false, 'a cut connection stays cut when the far end sends first', {
    todo: 'needs the table to require a SYN for new TCP connections (src/compile), or nf_conntrack_tcp_loose=0',
  });
});

// The operator's way to close the gap today (README, cut mode): without loose pickup, a packet of a
// connection conntrack has no entry for is ct state invalid, whichever end sends it, and is dropped.
t.test('with nf_conntrack_tcp_loose=0 a cut connection stays cut when the far end sends first', async (t) => {
  const out = runChild(t, { tcpLoose: 0 });
  t.equal(out.ok, true, out.ok === true ? 'the child ran' : JSON.stringify(out.fatal ?? out).slice(0, 4000));
  if (out.ok !== true) return;
  t.equal(out.tcpLoose, '0', 'set in the server namespace only');
  t.same(
    out.afterCut,
    { c1: true, c2: false, c3: false },
    'the client sending first: cut, as with loose pickup',
  );
  t.equal(out.push.deleted, 'deleted');
  t.equal(out.push.reversePickup, false, 'no reverse entry');
  t.equal(out.push.alive, false, 'the far end sending first does not revive it');
});
