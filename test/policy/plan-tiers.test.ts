// The shape of the tier part of a plan (semantics 20-24), as the compiler will read it: Admin and Baseline
// rules in priority, name and rule order, peers as sets shared with NetworkPolicy sets of the same meaning,
// nodes and networks as address sets, named ports per destination pod, invalid rules failing closed.
import t from 'tap';
import { formatRange } from '../../src/policy/address.ts';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { Planner, type PlanSet } from '../../src/policy/plan.ts';
import { pod, policy, state } from './builders.ts';
import { cnp } from './cluster-builders.ts';

const ranges = (s: PlanSet | undefined) => (s?.kind === 'addresses' ? s.ranges.map(formatRange) : undefined);

function planOf(cnps: ReturnType<typeof cnp>[], nps: ReturnType<typeof policy>[] = []) {
  const s = state({
    namespaces: { x: { team: 'a' }, y: { team: 'b' } },
    pods: [
      pod('x/a', { app: 'a' }, { ip: '10.244.1.10', ip6: 'fd00:10:244:1::10', ports: [['http', 8080]] }),
      pod(
        'y/b',
        { app: 'b' },
        { node: 'n2', ip: '10.244.2.20', ip6: 'fd00:10:244:2::20', ports: [['http', 80]] },
      ),
    ],
    policies: nps,
  });
  const index = new ClusterIndex({ ...s, clusterPolicies: cnps.map(normalizeClusterPolicy) });
  return new Planner(index).planNode('n1');
}

t.test('rules in tier order, actions kept, sets shared with NetworkPolicy peers', async (t) => {
  const plan = planOf(
    [
      cnp('late', {
        tier: 'Admin',
        priority: 20,
        subject: { namespaces: {} },
        ingress: [{ action: 'Accept', from: [{ namespaces: { matchLabels: { team: 'b' } } }] }],
      }),
      cnp('early', {
        tier: 'Admin',
        priority: 10,
        subject: { namespaces: { matchLabels: { team: 'a' } } },
        ingress: [
          {
            action: 'Pass',
            from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'b' } } } }],
          },
          {
            action: 'Deny',
            from: [{ namespaces: { matchLabels: { team: 'b' } } }],
            protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 90 } } } }],
          },
        ],
      }),
      cnp('floor', {
        tier: 'Baseline',
        priority: 1,
        subject: { namespaces: {} },
        egress: [{ action: 'Deny', to: [{ networks: ['203.0.113.0/24'] }] }],
      }),
    ],
    [
      policy('x/np', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }],
      }),
    ],
  );
  const a = plan.pods.find((p) => p.key === 'x/a')!;
  t.same(
    a.ingressTiers?.admin.map((r) => `${r.policy}#${r.rule} ${r.action}`),
    ['early#0 Pass', 'early#1 Deny', 'late#0 Accept'],
    'priority, then rule order',
  );
  t.same(a.ingressTiers?.baseline, []);
  const deny = a.ingressTiers!.admin[1]!;
  t.same(deny.matches.length, 1);
  const match = deny.matches[0]!;
  t.equal(match.kind, 'peers');
  if (match.kind === 'peers') {
    t.same(match.ports, [{ protocol: 'TCP', first: 80, last: 90 }]);
    // The NetworkPolicy peer `namespaceSelector team=b` means the same pods: one set for both.
    const npSet = a.ingress!.allows[0]!;
    t.equal(npSet.kind === 'peers' ? npSet.set : undefined, match.set, 'the set is shared');
    t.same(ranges(plan.sets.find((s) => s.id === match.set)), ['10.244.2.20', 'fd00:10:244:2::20']);
  }
  t.same(
    a.egressTiers?.baseline.map((r) => `${r.policy}#${r.rule} ${r.action}`),
    ['floor#0 Deny'],
  );
  const net = a.egressTiers!.baseline[0]!.matches[0]!;
  t.same(ranges(plan.sets.find((s) => s.id === net.set)), ['203.0.113.0-203.0.113.255']);
  t.equal(a.egressTiers?.admin.length, 0);
});

t.test('named ports resolve per destination; nodes by label; invalid rules fail closed', async (t) => {
  const plan = planOf([
    cnp('ports', {
      tier: 'Admin',
      priority: 1,
      subject: { namespaces: { matchLabels: { team: 'a' } } },
      ingress: [
        { action: 'Accept', from: [{ namespaces: {} }], protocols: [{ destinationNamedPort: 'http' }] },
      ],
      egress: [
        { action: 'Accept', to: [{ namespaces: {} }], protocols: [{ destinationNamedPort: 'http' }] },
        { action: 'Deny', to: [{ nodes: { matchLabels: { 'kubernetes.io/hostname': 'n2' } } }] },
        { action: 'Accept', to: [{ bogus: {} }] },
        { action: 'Pass', to: [{ bogus: {} }] },
      ],
    }),
  ]);
  const a = plan.pods.find((p) => p.key === 'x/a')!;
  const ingress = a.ingressTiers!.admin[0]!.matches[0]!;
  t.same(
    ingress.kind === 'peers' ? ingress.ports : undefined,
    [{ protocol: 'TCP', first: 8080, last: 8080 }],
    'ingress: the subject’s own port',
  );
  const [named, nodes, pass] = a.egressTiers!.admin;
  const egress = named!.matches[0]!;
  t.equal(egress.kind, 'address-ports', 'egress: resolved on each contacted pod');
  const set = plan.sets.find((s) => s.id === egress.set);
  t.same(
    set?.kind === 'address-ports'
      ? set.entries
          .filter((e) => e.address.family === 4)
          .map(
            (e) => `${formatRange({ family: 4, first: e.address.value, last: e.address.value })}:${e.port}`,
          )
          .sort()
      : undefined,
    ['10.244.1.10:8080', '10.244.2.20:80'],
  );
  t.same(
    ranges(plan.sets.find((s) => s.id === nodes!.matches[0]!.set)),
    ['192.0.2.2', '2001:db8::2'],
    'node n2 by its hostname label',
  );
  t.equal(a.egressTiers!.admin.length, 3, 'the invalid Accept matches nothing: left out');
  t.same(
    { action: pass!.action, invalid: pass!.invalid, matches: pass!.matches },
    { action: 'Deny', invalid: true, matches: [{ kind: 'peers', set: undefined, ports: undefined }] },
    'the invalid Pass denies everything',
  );
  t.equal(
    plan.pods.find((p) => p.key === 'y/b'),
    undefined,
    'only the node’s pods',
  );
  t.ok(
    plan.issues.some((i) => i.object === 'ClusterNetworkPolicy ports'),
    'its issues are in the plan',
  );
});
