// Root test of the per-policy counts (issue 18) on the real kernel, in a throwaway lab (network namespaces
// only): node 1's table with report rules, the usage passes on its real conntrack table and the report
// listener on its real nflog group. Each allowed connection raises the allowing policy's count in the
// direction node 1 enforces (semantics 5, 10), each denied one the isolating policy's; connections node 1
// does not enforce count nothing. Read from the `policy usage` log lines, as `tollgate explain --policy` does.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { USAGE_MESSAGE, type UsageRecord } from '../../src/agent/usage.ts';
import { Lab } from '../../src/lab/index.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { labSpecOf } from '../../src/lab/scenario.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';
import { EXAMPLES } from '../_corpus.ts';

const here = dirname(fileURLToPath(import.meta.url));

t.test('allowed probes count for the allowing policy, denied ones for the isolating one', async (t) => {
  const scenario = loadScenario(join(EXAMPLES, 'db-only-from-api.yaml'));
  const world = new World(scenario);
  // Steps 0-1: shop/db-from-api (db on node 1 accepts 3306 from the shop's api only).
  for (const step of scenario.steps.slice(0, 2)) world.applyStep(step);
  const lab = await Lab.up(labSpecOf(world));
  t.teardown(() => lab.down());
  const objects = world.objects();
  // staging/api (node 1) may reach the shop's pods on 80 only.
  objects.policies.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'api-out', namespace: 'staging' },
    spec: {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } } }],
          ports: [{ port: 80 }],
        },
      ],
    },
  });
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      lab.nodeNamespace(1),
      process.execPath,
      join(here, '_reports-child.ts'),
      JSON.stringify({
        node: world.node(1).name,
        objects,
        reports: { group: 100, rate: 20, per: 'second', burst: 5 },
        usage: { intervalMs: 200 },
      }),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.teardown(async () => {
    child.stdin.end();
    if (child.exitCode === null) await once(child, 'exit');
  });
  /** The newest counts per `policy direction`, as the CLI reads them (each line: those that changed). */
  const newest = new Map<string, UsageRecord>();
  const others: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (o.msg === USAGE_MESSAGE)
      for (const r of o.usage as UsageRecord[]) newest.set(`${r.policy} ${r.direction}`, r);
    else others.push(o);
  });
  const until = async (what: string, check: () => boolean, ms = scaledMs(30_000)) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`timed out: ${what}; counts ${JSON.stringify([...newest.values()])}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until('the listener', () => others.some((o) => o.ready === true), scaledMs(60_000));

  const probes = [
    ['shop/api', 'shop/db', 3306, true, 3],
    ['staging/api', 'shop/web', 80, true, 2],
    ['shop/web', 'shop/db', 3306, false, 2],
    // Node 2's pods on both ends: not node 1's to count.
    ['shop/api', 'shop/web', 80, true, 1],
  ] as const;
  for (const [from, to, port, ok, times] of probes)
    for (let i = 0; i < times; i++) {
      const r = await lab.probe(from, to, port, 'TCP', { timeoutMs: ok ? scaledMs(5000) : 800 });
      t.equal(r.ok, ok, `${from} -> ${to}:${port} ${ok ? 'allowed' : 'denied'}`);
    }
  const expected = {
    'shop/db-from-api ingress': { allowed: 3, denied: 2, wouldDeny: 0 },
    'staging/api-out egress': { allowed: 2, denied: 0, wouldDeny: 0 },
  };
  const got = () =>
    Object.fromEntries(
      [...newest]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, r]) => [k, { allowed: r.allowed, denied: r.denied, wouldDeny: r.wouldDeny }]),
    );
  await until('the counts', () => JSON.stringify(got()) === JSON.stringify(expected));
  // A few more passes: the same connections (their TIME_WAIT entries) are not counted again.
  const passes = others.length;
  await new Promise((r) => setTimeout(r, scaledMs(1000)));
  t.same(got(), expected, 'each connection once, for its policy and direction; node 2s own nothing');
  t.equal(others.length, passes, 'no pass failed or warned');
});
