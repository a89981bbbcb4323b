// Benchmark of planning with ClusterNetworkPolicies: one node of the synthetic cluster (10,000 pods over 50
// nodes, 1,000 NetworkPolicies) with 0, 10 and 100 ClusterNetworkPolicies selecting every pod, as the first
// plan and as a steady re-plan through the plan cache (the agent's sync after an unrelated change).
// Ratios are against 0 ClusterNetworkPolicies in the same run. Not a test.
import { normalizeClusterPolicy } from '../src/policy/cluster-normalize.ts';
import { ClusterIndex } from '../src/policy/index.ts';
import { Memo } from '../src/policy/memo.ts';
import { buildState } from '../src/policy/normalize.ts';
import { PlanCache, Planner } from '../src/policy/plan.ts';
import { NAMESPACES, syntheticCluster } from './_synthetic.ts';

const PODS = 10_000;
const POLICIES = 1_000;
const REPLANS = 20;

/** Policy c of a mix: Admin Deny/Pass on namespaces and ports, Baseline Deny on networks and nodes. */
function clusterPolicy(c: number) {
  const admin = c % 2 === 0;
  return normalizeClusterPolicy({
    apiVersion: 'policy.networking.k8s.io/v1alpha2',
    kind: 'ClusterNetworkPolicy',
    metadata: { name: `cnp${c}` },
    spec: {
      tier: admin ? 'Admin' : 'Baseline',
      priority: c,
      subject: { namespaces: {} },
      ingress: [
        {
          action: admin ? (c % 4 === 0 ? 'Pass' : 'Deny') : 'Deny',
          from: [{ namespaces: { matchLabels: { team: `t${c % 7}` } } }],
          protocols: [{ tcp: { destinationPort: { range: { start: 9000 + c, end: 9100 + c } } } }],
        },
      ],
      egress: [
        {
          action: 'Deny',
          to: [{ networks: [`203.0.${c % 256}.0/24`] }, { nodes: { matchLabels: { pool: `p${c % 3}` } } }],
        },
        {
          action: 'Accept',
          to: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: `app${c % 40}` } } } }],
          protocols: [{ destinationNamedPort: 'http' }],
        },
      ],
    },
  });
}

export async function run() {
  const raw = syntheticCluster(PODS, POLICIES);
  const base = buildState(raw, new Memo());
  const results: Record<string, Record<string, number>> = {};
  let baseline: { first: number; replan: number } | undefined;
  for (const count of [0, 10, 100]) {
    const state = { ...base, clusterPolicies: Array.from({ length: count }, (_, c) => clusterPolicy(c)) };
    const index = new ClusterIndex(state, new Memo());
    const cache = new PlanCache();
    const t0 = performance.now();
    const plan = new Planner(index, cache).planNode('node0');
    const first = performance.now() - t0;
    const t1 = performance.now();
    for (let k = 0; k < REPLANS; k++) new Planner(index, cache).planNode('node0');
    const replan = (performance.now() - t1) / REPLANS;
    baseline ??= { first, replan };
    const rules = plan.pods.reduce(
      (n, p) =>
        n +
        (p.ingressTiers?.admin.length ?? 0) +
        (p.ingressTiers?.baseline.length ?? 0) +
        (p.egressTiers?.admin.length ?? 0) +
        (p.egressTiers?.baseline.length ?? 0),
      0,
    );
    results[`cnp${count}`] = {
      localPods: plan.pods.length,
      tierRulesPlanned: rules,
      sets: plan.sets.length,
      firstPlanMs: Math.round(first * 10) / 10,
      replanMs: Math.round(replan * 100) / 100,
      firstRatio: Math.round((first / baseline.first) * 100) / 100,
      replanRatio: Math.round((replan / baseline.replan) * 100) / 100,
    };
  }
  return { pods: PODS, policies: POLICIES, namespaces: NAMESPACES, ...results };
}
