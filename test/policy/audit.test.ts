// Audit mode (semantics point 25) in the reference evaluator: an annotated policy enforces nothing, and the
// verdict says would-deny exactly when counting the audit policies as enforced would deny the connection.
import fc from 'fast-check';
import t from 'tap';
import { evaluate, explainVerdict, type Flow } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { normalizePolicy } from '../../src/policy/normalize.ts';
import { runs } from '../_tier.ts';
import { check, cluster, endpoint, pod, policy, state } from './builders.ts';

const audited = (p: ReturnType<typeof policy>, value = 'true') => ({
  ...p,
  metadata: { ...p.metadata, annotations: { 'tollgate.dev/audit': value } },
});

const pods = [
  pod('x/a', { pod: 'a' }, { node: 'n1' }),
  pod('x/b', { pod: 'b' }, { node: 'n2' }),
  pod('x/c', { pod: 'c' }, { node: 'n1' }),
];
const denyA = policy('x/deny-a', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] });
const allowBToA = policy('x/allow-b', {
  podSelector: { matchLabels: { pod: 'a' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
});

t.test(
  'point 25: an audit policy isolates nothing; the connection it would deny is would-deny',
  async (t) => {
    const index = cluster({ pods, policies: [audited(denyA)] });
    const v = check(index, 'x/b -> x/a:80');
    t.equal(v.allowed, true, 'not enforced');
    t.equal(v.wouldDeny, true);
    t.same(v.ingress?.isolatedBy, []);
    t.same(v.ingress?.auditedBy, ['x/deny-a']);
    t.equal(check(index, 'x/a -> x/b:80').wouldDeny, false, 'only the selected pod, only ingress');
  },
);

t.test('point 25: a rule of an audit policy that allows the connection: no would-deny', async (t) => {
  const index = cluster({ pods, policies: [audited(denyA), audited(allowBToA)] });
  t.equal(check(index, 'x/b -> x/a:80').wouldDeny, false);
  t.equal(check(index, 'x/c -> x/a:80').wouldDeny, true);
});

t.test('point 25: a direction isolated by an enforced policy ignores audit policies', async (t) => {
  // Enforced allow-b isolates x/a: b is allowed, c denied, whatever the audit deny-a says.
  const index = cluster({ pods, policies: [audited(denyA), allowBToA] });
  const b = check(index, 'x/b -> x/a:80');
  t.equal(b.allowed, true);
  t.equal(b.wouldDeny, false, 'an enforced isolation decides alone');
  t.same(b.ingress?.auditedBy, []);
  const c = check(index, 'x/c -> x/a:80');
  t.equal(c.allowed, false);
  t.equal(c.wouldDeny, false, 'a denied connection is never would-deny');
});

t.test('point 25: removing the annotation enforces the policy', async (t) => {
  t.equal(check(cluster({ pods, policies: [audited(denyA, 'false')] }), 'x/b -> x/a:80').allowed, false);
  t.equal(check(cluster({ pods, policies: [denyA] }), 'x/b -> x/a:80').allowed, false);
});

t.test('point 25: a value other than "true"/"false" is reported and the policy enforced', async (t) => {
  const p = normalizePolicy(audited(denyA, 'yes'));
  t.equal(p.audit, undefined);
  t.match(p.issues, [
    {
      object: 'NetworkPolicy x/deny-a',
      field: 'metadata.annotations["tollgate.dev/audit"]',
      message: /"yes" is not "true" or "false"; the policy is enforced/,
    },
  ]);
  t.equal(normalizePolicy(audited(denyA)).audit, true);
});

t.test('point 25: explain says would-deny and names the audit policies', async (t) => {
  const index = cluster({ pods, policies: [audited(denyA)] });
  const flow: Flow = {
    from: endpoint(index, 'x/b'),
    to: endpoint(index, 'x/a'),
    protocol: 'TCP',
    port: 80,
  };
  const text = explainVerdict(flow, evaluate(index, flow));
  t.match(text, /^ALLOW \(WOULD-DENY\) pod x\/b/);
  t.match(text, /ingress of x\/a: not isolated; audit-mode x\/deny-a would isolate it .*WOULD DENY/);
});

// The property: random policies, each randomly in audit mode; for every pair of pods and a few ports,
// the verdict equals the one without the audit policies, and would-deny equals "allowed without them,
// denied with them enforced".
const labels = fc.record({ pod: fc.constantFrom('a', 'b', 'c') });
const peer = fc.oneof(
  fc.record({ podSelector: fc.oneof(fc.constant({}), fc.record({ matchLabels: labels })) }),
  fc.record({ ipBlock: fc.record({ cidr: fc.constantFrom('10.244.1.0/24', '0.0.0.0/0') }) }),
);
const ruleArb = (dir: 'from' | 'to') =>
  fc.record(
    {
      [dir]: fc.array(peer, { minLength: 1, maxLength: 2 }),
      ports: fc.array(fc.record({ protocol: fc.constant('TCP'), port: fc.constantFrom(80, 81) }), {
        minLength: 1,
        maxLength: 1,
      }),
    },
    { requiredKeys: [] },
  );
const policyArb = fc.record({
  audit: fc.boolean(),
  podSelector: fc.oneof(fc.constant({}), fc.record({ matchLabels: labels })),
  policyTypes: fc.subarray(['Ingress', 'Egress'], { minLength: 1 }),
  ingress: fc.array(ruleArb('from'), { maxLength: 2 }),
  egress: fc.array(ruleArb('to'), { maxLength: 2 }),
});

t.test('point 25 property: audit policies change no verdict and would-deny is exact', async (t) => {
  let wouldDenies = 0;
  fc.assert(
    fc.property(fc.array(policyArb, { minLength: 1, maxLength: 4 }), (specs) => {
      const raw = specs.map(({ audit, ...spec }, i) => {
        const p = policy(`x/p${i}`, spec);
        return audit ? audited(p) : p;
      });
      const index = cluster({ pods, policies: raw });
      const without = new ClusterIndex(
        state({ pods, policies: raw.filter((p) => !('annotations' in p.metadata)) }),
      );
      const enforced = new ClusterIndex(
        state({ pods, policies: raw.map((p) => policy(`x/${p.metadata.name}`, p.spec)) }),
      );
      for (const from of ['x/a', 'x/b', 'x/c'])
        for (const to of ['x/a', 'x/b', 'x/c', '203.0.113.9'])
          for (const port of [80, 81]) {
            if (from === to) continue;
            const probe = `${from} -> ${to}:${port}`;
            const v = check(index, probe);
            const plain = check(without, probe).allowed;
            if (v.allowed !== plain) return false;
            if (v.wouldDeny !== (plain && !check(enforced, probe).allowed)) return false;
            if (v.wouldDeny) wouldDenies++;
          }
      return true;
    }),
    { numRuns: runs(300) },
  );
  t.ok(wouldDenies > 0, `the property met would-deny connections (${wouldDenies})`);
});

t.test(
  'point 25: the planner (what the dataplane enforces) does not isolate for an audit policy',
  async (t) => {
    const { Planner } = await import('../../src/policy/plan.ts');
    const plan = (policies: ReturnType<typeof policy>[]) =>
      new Planner(state({ pods, policies })).planNode('n1').pods.find((p) => p.key === 'x/a');
    t.equal(plan([audited(denyA)])?.ingress, undefined, 'audit only: not isolated');
    t.same(plan([denyA])?.ingress?.isolatedBy, ['x/deny-a'], 'enforced: isolated');
    t.same(plan([denyA, audited(allowBToA)])?.ingress?.isolatedBy, ['x/deny-a'], 'the audit one counts not');
  },
);
