// Root test: a full netlink receive queue on our own sockets (the table monitor flooded by another
// writer's notifications, a commit's ACKs into a tiny queue) never aborts the agent's process, and the
// loss is reported (the monitor's onLost, a failed commit). Runs in throwaway namespaces, the sockets in a
// child process (the bug being guarded against is an abort of the whole process, see src/netlink/sockopt.ts).

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { scaledMs } from '../../src/lab/load.ts';
import { makeNs, nsExec, type Teardown } from './_ns.ts';

const here = dirname(fileURLToPath(import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: JSON printed by the child process, checked field by field
type Json = any;

function runChild(t: Teardown, ...args: string[]): { status: number | null; r: Json; stderr: string } {
  const ns = makeNs(t, 'o');
  const res = nsExec(ns, process.execPath, [
    join(here, '_overflow-child.ts'),
    ...args,
    String(scaledMs(30_000)),
  ]);
  const last = res.stdout.trim().split('\n').pop() ?? '';
  let r: Json;
  try {
    r = JSON.parse(last);
  } catch {
    r = { unparsed: res.stdout.slice(-2000) };
  }
  return { status: res.status, r, stderr: res.stderr.slice(-2000) };
}

t.test('the table monitor survives a flood of another writer and reports the loss', async (t) => {
  const { status, r, stderr } = runChild(t, 'monitor', '20');
  t.equal(status, 0, `the child exited normally (stderr: ${stderr})`);
  t.equal(r.ok, true, JSON.stringify(r).slice(0, 2000));
  t.ok(r.lost >= 1, `the loss was reported to onLost (${r.lost}; monitor.lost ${r.monitorLost})`);
  t.equal(r.sawEnd, true, 'a change after the flood is still seen: the monitor is not dead');
});

t.test('ACKs overflowing the committing socket fail the commit, not the process', async (t) => {
  const { status, r, stderr } = runChild(t, 'acks', '3000');
  t.equal(status, 0, `the child exited normally (stderr: ${stderr})`);
  t.equal(r.ok, true, JSON.stringify(r).slice(0, 2000));
  // 3,000 ACKs never fit the minimum queue: the commit must fail visibly, never succeed silently.
  t.equal(r.commitError?.code, 'E_NETLINK_IO', `a named error: ${r.commitError?.message}`);
  t.equal(r.chainsInKernel, 3000, 'the batch itself was committed (the kernel holds it all)');
});

t.test('a large listing into the minimum receive queue loses nothing (dumps are paced)', async (t) => {
  const { status, r, stderr } = runChild(t, 'listing', '50000');
  t.equal(status, 0, `the child exited normally (stderr: ${stderr})`);
  t.equal(r.ok, true, JSON.stringify(r).slice(0, 2000));
  t.equal(r.elements, 50_000, 'every element read back');
});
