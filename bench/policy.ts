// Benchmark of the policy engine: normalize + index + plan one node holding 10,000 pods under 1,000
// policies, and the reference evaluator's cost per flow. Reports time and peak RSS; not a test.
import { parseAddress } from '../src/policy/address.ts';
import { endpointAt, evaluate } from '../src/policy/evaluate.ts';
import { ClusterIndex } from '../src/policy/index.ts';
import { Memo } from '../src/policy/memo.ts';
import { normalizeNamespace, normalizeNode, normalizePod, normalizePolicy } from '../src/policy/normalize.ts';
import { Planner } from '../src/policy/plan.ts';
import { syntheticPolicy } from './_synthetic.ts';

const PODS = 10_000;
const POLICIES = 1_000;
const NAMESPACES = 50;

function objects() {
  const namespaces = Array.from({ length: NAMESPACES }, (_, n) => ({
    metadata: { name: `ns${n}`, labels: { team: `t${n % 7}` } },
  }));
  const pods = Array.from({ length: PODS }, (_, i) => {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    return {
      metadata: {
        name: `pod${i}`,
        namespace: `ns${i % NAMESPACES}`,
        labels: { app: `app${i % 40}`, tier: `tier${i % 5}` },
      },
      spec: {
        nodeName: 'n1',
        containers: [
          {
            ports: [
              { name: 'http', containerPort: 8000 + (i % 3), protocol: 'TCP' },
              { name: 'dns', containerPort: 53, protocol: 'UDP' },
            ],
          },
        ],
      },
      status: { phase: 'Running', podIPs: [{ ip }, { ip: `fd00::${i.toString(16)}` }] },
    };
  });
  const policies = Array.from({ length: POLICIES }, (_, p) => syntheticPolicy(p, NAMESPACES));
  const nodes = [
    { metadata: { name: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '198.51.100.1' }] } },
  ];
  return { namespaces, pods, policies, nodes };
}

export async function run() {
  const raw = objects();
  const start = performance.now();
  const memo = new Memo();
  const state = {
    namespaces: new Map(raw.namespaces.map((n) => normalizeNamespace(n, memo)).map((n) => [n.name, n])),
    pods: raw.pods.map((p) => normalizePod(p, memo)),
    policies: raw.policies.map(normalizePolicy),
    nodes: raw.nodes.map(normalizeNode),
  };
  const normalized = performance.now();
  const planner = new Planner(state);
  const plan = planner.planNode('n1');
  const planned = performance.now();

  const index = new ClusterIndex(state, memo);
  const FLOWS = 20_000;
  let allowed = 0;
  const evalStart = performance.now();
  for (let k = 0; k < FLOWS; k++) {
    const a = (k * 7919) % PODS;
    const b = (k * 104729 + 1) % PODS;
    const from = endpointAt(index, parseAddress(`10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}`)!);
    const to = endpointAt(index, parseAddress(`10.${(b >> 16) & 255}.${(b >> 8) & 255}.${b & 255}`)!);
    if (evaluate(index, { from, to, protocol: 'TCP', port: 8000 + (k % 3) }).allowed) allowed++;
  }
  const evalMs = performance.now() - evalStart;
  const isolated = plan.pods.filter((p) => p.ingress || p.egress).length;
  const allows = plan.pods.reduce(
    (n, p) => n + (p.ingress?.allows.length ?? 0) + (p.egress?.allows.length ?? 0),
    0,
  );
  return {
    pods: PODS,
    policies: POLICIES,
    plan_ms: Math.round(planned - start),
    normalize_ms: Math.round(normalized - start),
    sets: plan.sets.length,
    isolated_pods: isolated,
    allows,
    eval_flows: FLOWS,
    eval_us_per_flow: Math.round((evalMs * 1000) / FLOWS),
    eval_allowed: allowed,
    rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}
