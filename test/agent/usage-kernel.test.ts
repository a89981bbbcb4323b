import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { USAGE_MESSAGE, type UsageRecord } from '../../src/agent/usage.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { shopLab, startReportsChild } from './_reports-lab.ts';

const _here = dirname(fileURLToPath(import.meta.url));

t.test('allowed probes count for the allowing policy, denied ones for the isolating one', async (t) => {
  const { world, lab, objects } = await shopLab(t);
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
  /** The newest counts per `policy direction`, as the CLI reads them (each line: those that changed). */
  const newest = new Map<string, UsageRecord>();
  const { others, until } = await startReportsChild(
    t,
    lab,
    {
      node: world.node(1).name,
      objects,
      reports: { group: 100, rate: 20, per: 'second', burst: 5 },
      usage: { intervalMs: 200 },
    },
    {
      lines: (o) => {
        if (o.msg !== USAGE_MESSAGE) return false;
        for (const r of o.usage as UsageRecord[]) newest.set(`${r.policy} ${r.direction}`, r);
        return true;
      },
      detail: () => `counts ${JSON.stringify([...newest.values()])}`,
      ms: 30_000,
    },
  );

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
