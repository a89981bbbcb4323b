// Real-kernel test of the lab's wiring: TCP (curl) and UDP probes across every path a scenario uses.
// Must only probe lab endpoints; the lab is removed in teardown.
import t from 'tap';
import type { ProbeRequest } from '../../src/lab/index.ts';
import { labFor, skipUnlessRoot } from './helpers.ts';

t.test('two-node lab: every path answers, unserved ports do not', { skip: skipUnlessRoot }, async (t) => {
  const lab = await labFor(t);
  const cases: (ProbeRequest & { name: string; expect: boolean; answeredBy?: string })[] = [
    {
      name: 'same node TCP (bridged)',
      from: 'x/a',
      to: 'x/b',
      port: 80,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'x/b',
    },
    {
      name: 'same node UDP (bridged)',
      from: 'x/a',
      to: 'x/b',
      port: 81,
      protocol: 'UDP',
      expect: true,
      answeredBy: 'x/b',
    },
    {
      name: 'cross node TCP (VXLAN)',
      from: 'x/a',
      to: 'y/a',
      port: 81,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'y/a',
    },
    {
      name: 'cross node UDP (VXLAN)',
      from: 'y/a',
      to: 'x/b',
      port: 80,
      protocol: 'UDP',
      expect: true,
      answeredBy: 'x/b',
    },
    {
      name: 'pod -> host TCP',
      from: 'y/a',
      to: 'host/backup',
      port: 80,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'host/backup',
    },
    {
      name: 'pod -> host UDP',
      from: 'x/a',
      to: 'host/backup',
      port: 53,
      protocol: 'UDP',
      expect: true,
      answeredBy: 'host/backup',
    },
    {
      name: 'host -> pod TCP',
      from: 'host/backup',
      to: 'x/a',
      port: 80,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'x/a',
    },
    {
      name: 'host -> pod UDP',
      from: 'host/backup',
      to: 'y/a',
      port: 80,
      protocol: 'UDP',
      expect: true,
      answeredBy: 'y/a',
    },
    {
      name: 'node -> local pod TCP',
      from: 'node/1',
      to: 'x/a',
      port: 80,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'x/a',
    },
    {
      name: 'node -> remote pod TCP',
      from: 'node/1',
      to: 'y/a',
      port: 80,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'y/a',
    },
    {
      name: 'pod -> hostNetwork pod TCP',
      from: 'x/a',
      to: 'y/h',
      port: 8080,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'node/2',
    },
    {
      name: 'hostNetwork pod -> pod UDP',
      from: 'y/h',
      to: 'x/b',
      port: 81,
      protocol: 'UDP',
      expect: true,
      answeredBy: 'x/b',
    },
    {
      name: 'pod -> node TCP',
      from: 'x/b',
      to: 'node/2',
      port: 8080,
      protocol: 'TCP',
      expect: true,
      answeredBy: 'node/2',
    },
    {
      name: 'IPv6 same node TCP',
      from: 'x/a',
      to: 'x/b',
      port: 80,
      protocol: 'TCP',
      family: 6,
      expect: true,
      answeredBy: 'x/b',
    },
    {
      name: 'IPv6 cross node TCP',
      from: 'x/b',
      to: 'y/a',
      port: 80,
      protocol: 'TCP',
      family: 6,
      expect: true,
      answeredBy: 'y/a',
    },
    {
      name: 'IPv6 cross node UDP',
      from: 'y/a',
      to: 'x/a',
      port: 81,
      protocol: 'UDP',
      family: 6,
      expect: true,
      answeredBy: 'x/a',
    },
    // Outside hosts and nodes over IPv6: routed through the underlay router like their IPv4 addresses.
    // UDP to a node address (hostNetwork pods) must be answered from that address, not the VXLAN
    // device's or cni0's that the route back would pick (the client's connected socket drops those).
    ...(
      [
        ['pod -> host', 'x/a', 'host/backup', 80, 'TCP', 'host/backup', 6],
        ['pod -> host', 'y/a', 'host/backup', 53, 'UDP', 'host/backup', 6],
        ['host -> pod', 'host/backup', 'y/a', 80, 'TCP', 'y/a', 6],
        ['host -> pod', 'host/backup', 'x/b', 81, 'UDP', 'x/b', 6],
        ['node -> local pod', 'node/1', 'x/a', 80, 'TCP', 'x/a', 6],
        ['node -> remote pod', 'node/1', 'y/a', 80, 'UDP', 'y/a', 6],
        ['pod -> node', 'x/a', 'node/2', 8080, 'TCP', 'node/2', 6],
        ['pod -> remote hostNetwork pod', 'x/b', 'y/h', 8080, 'UDP', 'node/2', 6],
        ['pod -> remote hostNetwork pod', 'x/b', 'y/h', 8080, 'UDP', 'node/2', 4],
        ['pod -> local hostNetwork pod', 'y/a', 'y/h', 8080, 'UDP', 'node/2', 6],
        ['pod -> local hostNetwork pod', 'y/a', 'node/2', 8080, 'UDP', 'node/2', 4],
      ] as const
    ).map(([what, from, to, port, protocol, answeredBy, family]) => ({
      name: `IPv${family} ${what} ${protocol}`,
      from,
      to,
      port,
      protocol,
      family,
      expect: true,
      answeredBy,
    })),
    {
      name: 'unserved TCP port',
      from: 'x/a',
      to: 'y/a',
      port: 82,
      protocol: 'TCP',
      timeoutMs: 1000,
      expect: false,
    },
    {
      name: 'unserved UDP port',
      from: 'x/a',
      to: 'x/b',
      port: 82,
      protocol: 'UDP',
      timeoutMs: 1000,
      expect: false,
    },
    {
      name: 'host serves no 81',
      from: 'x/a',
      to: 'host/backup',
      port: 81,
      protocol: 'TCP',
      timeoutMs: 1000,
      expect: false,
    },
  ];
  const results = await lab.probeMany(cases);
  cases.forEach((c, i) => {
    const r = results[i]!;
    t.equal(
      r.ok,
      c.expect,
      `${c.name}: ${c.from} -> ${c.to}:${c.port}/${c.protocol} (${r.address}) ${r.detail}`,
    );
    // The server names itself in its answer: the right pod answered, not some other listener.
    if (c.answeredBy)
      t.match(r.detail, new RegExp(`^${c.answeredBy} `), `${c.name} answered by ${c.answeredBy}`);
  });
  t.equal(lab.address('x/a', 6), lab.pod('x/a').ip6);
  t.equal(lab.address('host/backup', 6), '2001:db8:203:0:113::10', 'derived as the scenario layout does');
  t.equal(lab.address('node/2', 6), '2001:db8::2');
  for (const r of results.filter((r) => r.address.includes(':')))
    t.ok(
      r.address.includes(':') && cases.some((c) => c.family === 6 && c.from === r.from),
      `${r.address} is IPv6`,
    );
  t.match(lab.pod('x/a'), { ip4: '10.244.1.10', ip6: 'fd00:10:244:1::a', node: 1 });
  t.match(lab.pod('y/h'), { ip4: '198.51.100.2', ns: lab.nodeNamespace(2) });
  await t.rejects(lab.probe('x/a', 'x/b', 80, 'SCTP'), { code: 'E_LAB_UNSUPPORTED' });
  await t.rejects(lab.probe('x/zz', 'x/b', 80, 'TCP'), { code: 'E_LAB_UNKNOWN' });
});

t.test('a 9x9 TCP matrix over 2 nodes runs in seconds', { skip: skipUnlessRoot }, async (t) => {
  const { demoSpec } = await import('../../src/lab/index.ts');
  const started = performance.now();
  const lab = await labFor(t, demoSpec(2, 9));
  const upMs = performance.now() - started;
  const keys = lab.pods.map((p) => p.key);
  t.equal(keys.length, 9);
  const requests = keys.flatMap((from) =>
    keys.filter((to) => to !== from).map((to) => ({ from, to, port: 80, protocol: 'TCP' as const })),
  );
  const matrixStart = performance.now();
  const results = await lab.probeMany(requests);
  const matrixMs = performance.now() - matrixStart;
  t.same(
    results.filter((r) => !r.ok).map((r) => `${r.from} -> ${r.to}: ${r.detail}`),
    [],
    'every pair answers',
  );
  t.comment(`lab up ${Math.round(upMs)} ms, 72-probe matrix ${Math.round(matrixMs)} ms`);
  t.ok(matrixMs < 20_000, 'matrix takes seconds, not minutes');
});
