// Reading the table back while another process commits: the listing takes several dumps, so a set deleted
// in between must not make it fail (ENOENT) or return a torn view; listRuleset retries on a generation
// change. Kernel test in a throwaway namespace.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { makeNs, nsExec } from './_ns.ts';

t.test('listing stays consistent while the table churns', async (t) => {
  const ns = makeNs(t, 'list');
  const keep = Array.from(
    { length: 20 },
    (_, i) => `add set inet t keep${i} { type ipv4_addr; elements = { 10.0.${i}.1, 10.0.${i}.2 } }`,
  );
  const load = nsExec(ns, 'nft', ['-f', '-'], ['add table inet t', ...keep].join('\n'));
  t.equal(load.status, 0, load.stderr);
  // Another process adds and deletes sets as fast as it can while we list.
  const churn = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'sh',
      '-c',
      'i=0; while [ $i -lt 300 ]; do nft add set inet t tmp$i "{ type ipv4_addr; elements = { 10.9.0.1 } }"; nft delete set inet t tmp$i; i=$((i+1)); done',
    ],
    { stdio: 'ignore' },
  );
  const churned = new Promise((resolve) => churn.once('exit', resolve));
  t.teardown(() => churn.kill());
  const r = nsExec(ns, process.execPath, [join(import.meta.dirname, '_list-child.ts'), '150']);
  await churned;
  t.equal(r.status, 0, `the lister ran: ${r.stderr.slice(-500)}`);
  const result = JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as {
    ok: number;
    errorCount: number;
    errors: string[];
    minStable: number;
  };
  t.equal(result.errorCount, 0, `no listing failed: ${result.errors.join(' | ')}`);
  t.equal(result.ok, 150);
  t.equal(result.minStable, 20, 'every listing holds all the sets that never changed');
});
