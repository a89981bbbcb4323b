// The shape of the per-node plan, as the nftables compiler needs it: shared peer sets with stable ids,
// merged ports, excepts per peer, named ports resolved per pod, only the node's own pods.
import t from 'tap';
import { formatRange } from '../../src/policy/address.ts';
import { Planner, type PlanSet } from '../../src/policy/plan.ts';
import { pod, policy, state } from './builders.ts';

const ranges = (s: PlanSet | undefined) => (s?.kind === 'addresses' ? s.ranges.map(formatRange) : undefined);

t.test('the plan holds only the live pods of its node, isolated or not', async (t) => {
  const st = state({
    pods: [
      pod('x/a', {}, { node: 'n1', ip: '10.244.1.10', ip6: 'fd00:10:244:1::10' }),
      pod('x/b', {}, { node: 'n2' }),
      pod('x/h', {}, { node: 'n1', hostNetwork: true }),
      pod('x/done', {}, { node: 'n1', phase: 'Succeeded' }),
    ],
    policies: [policy('x/p', { podSelector: {}, policyTypes: ['Egress'] })],
  });
  const plan = new Planner(st).planNode('n1');
  t.same(
    plan.pods.map((p) => p.key),
    ['x/a'],
  );
  t.same(
    plan.pods[0]?.addresses.map((a) => formatRange({ family: a.family, first: a.value, last: a.value })),
    ['10.244.1.10', 'fd00:10:244:1::10'],
  );
  t.equal(plan.pods[0]?.ingress, undefined, 'not isolated for ingress');
  t.same(plan.pods[0]?.egress, { isolatedBy: ['x/p'], allowAll: false, allows: [] });
  t.same(plan.nodeAddresses.length, 2, 'both node addresses');
  t.same(plan.podCIDRs.map(formatRange), [
    '10.244.1.0-10.244.1.255',
    'fd00:10:244:1::-fd00:10:244:1:ffff:ffff:ffff:ffff',
  ]);
});

t.test('one address set per peer meaning, shared across rules, policies and pods', async (t) => {
  const peer = { podSelector: { matchLabels: { role: 'api' } } };
  const st = state({
    pods: [
      pod('x/db1', { role: 'db' }, { ip: '10.244.1.20' }),
      pod('x/db2', { role: 'db' }, { ip: '10.244.1.21' }),
      pod('x/api1', { role: 'api' }, { ip: '10.244.1.30', ip6: 'fd00:10:244:1::30' }),
      pod('x/api2', { role: 'api' }, { ip: '10.244.1.31', ip6: 'fd00:10:244:1::31' }),
    ],
    policies: [
      policy('x/p1', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [peer], ports: [{ port: 3306 }] }],
      }),
      policy('x/p2', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [{ from: [peer], ports: [{ port: 9104 }, { port: 3307 }] }],
      }),
    ],
  });
  const plan = new Planner(st).planNode('n1');
  t.equal(plan.sets.length, 1, 'one set for the selector used twice');
  const set = plan.sets[0]!;
  t.same(
    ranges(set),
    ['10.244.1.30-10.244.1.31', 'fd00:10:244:1::30-fd00:10:244:1::31'],
    'merged, both families',
  );
  t.match(set.description, /pods \[role=api\] in namespace x/);
  const db1 = plan.pods.find((p) => p.key === 'x/db1')!;
  t.same(
    db1.ingress?.allows,
    [
      {
        kind: 'peers',
        set: set.id,
        ports: [
          { protocol: 'TCP', first: 3306, last: 3307 },
          { protocol: 'TCP', first: 9104, last: 9104 },
        ],
        rules: [
          { policy: 'x/p1', direction: 'ingress', rule: 0 },
          { policy: 'x/p2', direction: 'ingress', rule: 0 },
        ],
      },
    ],
    'one allow per set with ports merged and the contributing rules listed',
  );
  const again = new Planner(
    state({
      pods: [pod('x/db1', { role: 'db' })],
      policies: [
        policy('y/other', { podSelector: {} }),
        policy('x/p1', { podSelector: { matchLabels: { role: 'db' } }, ingress: [{ from: [peer] }] }),
      ],
    }),
  ).planNode('n1');
  t.equal(
    again.sets[0]?.id,
    set.id,
    'the set id depends on the meaning, not the members: stable across updates',
  );
});

t.test('ipBlock excepts are subtracted per peer; host bits masked', async (t) => {
  const st = state({
    pods: [pod('x/a', {}, { node: 'n1' })],
    policies: [
      policy('x/p', {
        podSelector: {},
        ingress: [
          {
            from: [
              { ipBlock: { cidr: '203.0.113.77/24', except: ['203.0.113.16/28', '203.0.113.128/25'] } },
              { ipBlock: { cidr: '203.0.113.0/24' } },
            ],
          },
        ],
      }),
    ],
  });
  const plan = new Planner(st).planNode('n1');
  t.same(plan.sets.map(ranges).sort(), [
    ['203.0.113.0-203.0.113.15', '203.0.113.32-203.0.113.127'],
    ['203.0.113.0-203.0.113.255'],
  ]);
  t.equal(
    plan.pods[0]?.ingress?.allows.length,
    2,
    'two peers, two allows: the except of one never restricts the other',
  );
});

t.test('named ports: ingress resolved on the pod, egress per peer pod in address-port sets', async (t) => {
  const st = state({
    pods: [
      pod('x/a', { app: 'web' }, { ip: '10.244.1.40', ip6: 'fd00:10:244:1::40', ports: [['web', 8080]] }),
      pod('x/b', { app: 'web' }, { ip: '10.244.1.41', ip6: 'fd00:10:244:1::41', ports: [['web', 9090]] }),
      pod(
        'y/s',
        { app: 'svc' },
        {
          node: 'n2',
          ip: '10.244.2.50',
          ip6: 'fd00:10:244:2::50',
          ports: [
            ['web', 7070],
            ['dns', 53, 'UDP'],
          ],
        },
      ),
    ],
    policies: [
      policy('x/in', {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [{ ports: [{ port: 'web' }] }],
      }),
      policy('x/out', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Egress'],
        egress: [
          { to: [{ namespaceSelector: {} }], ports: [{ port: 'web' }, { port: 53, protocol: 'UDP' }] },
        ],
      }),
    ],
  });
  const plan = new Planner(st).planNode('n1');
  const a = plan.pods.find((p) => p.key === 'x/a')!;
  const b = plan.pods.find((p) => p.key === 'x/b')!;
  t.same(a.ingress?.allows, [
    {
      kind: 'peers',
      set: undefined,
      ports: [{ protocol: 'TCP', first: 8080, last: 8080 }],
      rules: [{ policy: 'x/in', direction: 'ingress', rule: 0 }],
    },
  ]);
  t.same(b.ingress?.allows[0]?.kind === 'peers' && b.ingress.allows[0].ports, [
    { protocol: 'TCP', first: 9090, last: 9090 },
  ]);
  const named = a.egress?.allows.find((x) => x.kind === 'address-ports');
  const set = plan.sets.find((s) => s.id === named?.set);
  t.ok(set && set.kind === 'address-ports');
  if (set?.kind === 'address-ports') {
    t.same(
      set.entries
        .map(
          (e) =>
            `${formatRange({ family: e.address.family, first: e.address.value, last: e.address.value })} ${e.protocol} ${e.port}`,
        )
        .sort(),
      [
        '10.244.1.40 TCP 8080',
        '10.244.1.41 TCP 9090',
        '10.244.2.50 TCP 7070',
        'fd00:10:244:1::40 TCP 8080',
        'fd00:10:244:1::41 TCP 9090',
        'fd00:10:244:2::50 TCP 7070',
      ],
      'every pod with the name, on its own number; pods without it are absent',
    );
  }
  t.equal(a.egress?.allows.filter((x) => x.kind === 'address-ports').length, 1);
  t.ok(
    a.egress?.allows.some((x) => x.kind === 'peers' && x.ports?.[0]?.protocol === 'UDP'),
    'numeric ports stay a peers allow',
  );
});

t.test('allowAll marks a direction opened by an empty rule', async (t) => {
  const st = state({
    pods: [pod('x/a', {})],
    policies: [
      policy('x/deny', { podSelector: {}, ingress: [] }),
      policy('x/all', { podSelector: {}, ingress: [{}] }),
    ],
  });
  const plan = new Planner(st).planNode('n1');
  t.equal(plan.pods[0]?.ingress?.allowAll, true);
  t.same(plan.pods[0]?.ingress?.isolatedBy, ['x/deny', 'x/all']);
});

t.test('validation issues are carried by the plan, each once', async (t) => {
  const st = state({
    pods: [pod('x/a', {})],
    policies: [policy('x/bad', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'nope' } }] }] })],
  });
  const plan = new Planner(st).planNode('n1');
  t.equal(plan.issues.length, 1);
  t.equal(plan.issues[0]?.field, 'spec.ingress[0].from[0].ipBlock.cidr');
  t.same(plan.pods[0]?.ingress?.allows, [], 'the bad rule contributes nothing');
});
