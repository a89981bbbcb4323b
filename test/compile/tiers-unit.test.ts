// The shape of the ClusterNetworkPolicy tier chains (compile/tiers.ts, semantics 20-25) without a kernel:
// Pass goes on to the pod's NetworkPolicy chain when NetworkPolicies isolate it, an audit NetworkPolicy
// does not (Baseline decides), a Deny rule has a deny chain attributed to its CNP, and pods of a namespace
// opted out of drop reports get deny chains without report rules. Packets: tiers-kernel and the lab test.
import t from 'tap';
import { type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { withClusterPolicies } from '../../src/policy/cluster-normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import { pod, policy, state } from '../policy/builders.ts';
import { cnp } from '../policy/cluster-builders.ts';

const REPORTS = { group: 100, rate: 20, per: 'second', burst: 5 } as const;
const admin = cnp('pass-then-deny', {
  tier: 'Admin',
  priority: 1,
  subject: { namespaces: {} },
  ingress: [
    { action: 'Pass', from: [{ namespaces: { matchLabels: { ns: 'y' } } }] },
    { action: 'Deny', from: [{ namespaces: { matchLabels: { ns: 'z' } } }] },
  ],
});
const baseline = cnp('baseline-deny', {
  tier: 'Baseline',
  priority: 1,
  subject: { namespaces: {} },
  ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }],
});

function build(policies: unknown[], cnps: unknown[], quiet: string[] = []): DesiredState {
  const s = withClusterPolicies(
    state({
      pods: [pod('x/a', { app: 'a' }), pod('y/b')],
      policies: policies as ReturnType<typeof policy>[],
    }),
    cnps,
  );
  return desiredState(new Planner(s).planNode('n1'), undefined, {
    reports: { ...REPORTS, quietNamespaces: new Set(quiet) },
  });
}
const rules = (d: DesiredState, chain: string) => d.chains.get(chain)?.rules ?? [];
const verdicts = (d: DesiredState, chain: string) =>
  rules(d, chain).flatMap((r) => ('verdict' in r ? [String(r.verdict)] : []));

const isolate = policy('x/only-80', {
  podSelector: { matchLabels: { app: 'a' } },
  ingress: [{ ports: [{ port: 80 }] }],
});

t.test('NetworkPolicies only: no tier chains, no deny map', async (t) => {
  const d = build([isolate], []);
  t.notOk([...d.chains.keys()].some((c) => /^t[ie]-|^(in|eg)-x/.test(c)));
  t.equal(d.tierDenies, undefined);
});

t.test('Admin Pass goes to the isolating NetworkPolicy chain; Deny to its own reporting chain', async (t) => {
  const d = build([isolate], [admin]);
  const tier = d.podChains.get('x/a')!.ingress!;
  t.match(tier, /^ti-/, 'the pod is dispatched to its tier chain');
  const np = build([isolate], []).podChains.get('x/a')!.ingress!;
  const v = verdicts(d, tier);
  t.ok(v.includes(`goto ${np}`), 'Pass: goto the NetworkPolicy chain');
  t.equal(v.at(-1), `goto ${np}`, 'then the NetworkPolicy stage');
  const deny = [...d.tierDenies!.entries()].find(([, p]) => p === 'cnp/pass-then-deny')?.[0];
  t.ok(deny && v.includes(`goto ${deny}`), 'Deny: goto its deny chain');
  t.ok(
    rules(d, deny!).some((r) => r.kind === 'report'),
    'the deny chain reports',
  );
});

t.test('an audit NetworkPolicy does not isolate for the tiers: Baseline decides', async (t) => {
  const audit = {
    ...isolate,
    metadata: { ...isolate.metadata, annotations: { 'tollgate.dev/audit': 'true' } },
  };
  const d = build([audit], [baseline]);
  const tier = d.podChains.get('x/a')!.ingress!;
  const v = verdicts(d, tier);
  t.equal(v.at(-1), `goto ${tier}-b`, 'on to the Baseline chain, not the audit chain');
});

t.test('a namespace opted out of reports: deny chains without report rules', async (t) => {
  const d = build([], [admin], ['x']);
  const deny = [...d.tierDenies!.keys()].find((c) => c.endsWith('-q'));
  t.ok(deny, 'a quiet deny chain');
  t.notOk(rules(d, deny!).some((r) => r.kind === 'report' || r.kind === 'report-gate'));
});
