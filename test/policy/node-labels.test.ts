// Node labels (semantics 22): the normalized Node keeps metadata.labels, the agent's trim keeps them, and
// ClusterNetworkPolicy node peers select nodes by any label, in the evaluator and in the plan alike.
import t from 'tap';
import { trimNode } from '../../src/k8s/trim.ts';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { normalizeNode } from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import { evaluateTiers } from '../../src/policy/tiers.ts';
import { endpoint, nodes, pod, state } from './builders.ts';
import { cnp } from './cluster-builders.ts';
import { PlanMatcher } from './plan-matcher.ts';

const raw = (labels: unknown) => ({
  metadata: { name: 'n9', labels, resourceVersion: '7', annotations: { a: 'b' } },
  spec: { podCIDRs: ['10.244.9.0/24'], taints: [{ key: 'k' }] },
  status: {
    addresses: [{ type: 'InternalIP', address: '192.0.2.9' }],
    conditions: [{ type: 'Ready', lastHeartbeatTime: 'now' }],
  },
});

t.test('normalizeNode keeps the string labels; the trim keeps what it reads', async (t) => {
  const labels = { 'node-role.kubernetes.io/infra': '', zone: 'a' };
  t.same(normalizeNode(raw(labels)).labels, labels);
  t.same(normalizeNode(raw({ zone: 'a', bad: 3 })).labels, { zone: 'a' });
  t.same(normalizeNode(raw(undefined)).labels, {});
  for (const l of [labels, undefined, { zone: 'b' }])
    t.same(normalizeNode(trimNode(raw(l))), normalizeNode(raw(l)), 'trimmed, then normalized: the same');
});

t.test('a node peer selects nodes by any label, not only the hostname (point 22)', async (t) => {
  const infra = (n: (typeof nodes)[number]) =>
    n.metadata.name === 'n2' ? { ...n, metadata: { ...n.metadata, labels: { pool: 'infra' } } } : n;
  const s = state({ pods: [pod('x/a', { pod: 'a' })] });
  const policy = normalizeClusterPolicy(
    cnp('no-infra', {
      tier: 'Admin',
      priority: 1,
      subject: { namespaces: {} },
      egress: [{ action: 'Deny', to: [{ nodes: { matchLabels: { pool: 'infra' } } }] }],
    }),
  );
  const index = new ClusterIndex({
    ...s,
    nodes: nodes.map((n) => normalizeNode(infra(n))),
    clusterPolicies: [policy],
  });
  const matcher = new PlanMatcher(['n1', 'n2'].map((n) => new Planner(index).planNode(n)));
  for (const [node, allowed] of [
    ['@n2', false],
    ['@n1', true], // its own node, point 12 as well
  ] as const) {
    const flow = { from: endpoint(index, 'x/a'), to: endpoint(index, node), protocol: 'TCP', port: 80 };
    t.equal(evaluateTiers(index, flow).allowed, allowed, `evaluator: x/a -> ${node}`);
    t.equal(matcher.decide(flow.from.address, flow.to.address, 'TCP', 80), allowed, `plan: x/a -> ${node}`);
  }
});
