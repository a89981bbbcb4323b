// Offline companion of the agent benchmark: node0 of the synthetic cluster (BENCH_PODS / BENCH_POLICIES /
// BENCH_NODES) planned and compiled with the reconciler's caches, then the agent benchmark's sample
// changes applied one by one: per change, the CPU time of plan + compile + diff and the batch it sends.
// No kernel, no API: what a change costs the agent's own process, which the machine's load barely moves.
import { DesiredCache, desiredState } from '../src/compile/desired.ts';
import { programBatches } from '../src/compile/program.ts';
import { ClusterIndex, type PodChanges } from '../src/policy/index.ts';
import { Memo } from '../src/policy/memo.ts';
import { buildState, normalizePod, normalizePolicy } from '../src/policy/normalize.ts';
import { PlanCache, Planner } from '../src/policy/plan.ts';
import type { ClusterState } from '../src/policy/types.ts';
import { NODES, podLabels, podObject, syntheticCluster } from './_synthetic.ts';

const PODS = Number(process.env.BENCH_PODS ?? 10_000);
const POLICIES = Number(process.env.BENCH_POLICIES ?? 1_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);

export async function run() {
  const memo = new Memo();
  let state: ClusterState = buildState(syntheticCluster(PODS, POLICIES), memo);
  const index = new ClusterIndex(state, memo);
  const planCache = new PlanCache();
  const desiredCache = new DesiredCache();
  const compile = () => desiredState(new Planner(index, planCache).planNode('node0'), desiredCache);
  let programmed = compile();
  const byEvent: Record<string, { cpu_ms: number[]; bytes: number[]; elements: number[]; sets: number[] }> =
    {};
  for (let k = 0; k < SAMPLES; k++) {
    const i = PODS + k * NODES;
    const j = 1 + k * NODES;
    const added = normalizePod(podObject(i, podLabels(k % 2 === 0 ? k * NODES : k)), memo);
    const relabelled = normalizePod(podObject(j, { ...podLabels(j), role: 'peer' }), memo);
    const events: [string, () => [ClusterState, PodChanges]][] = [
      [
        k % 2 === 0 ? 'pod_add' : 'pod_add_new_shape',
        () => [{ ...state, pods: [...state.pods, added] }, [[added.key, added]]],
      ],
      [
        'label_change',
        () => [
          { ...state, pods: state.pods.map((p) => (p.key === relabelled.key ? relabelled : p)) },
          [[relabelled.key, relabelled]],
        ],
      ],
      [
        'policy_add',
        () => [
          {
            ...state,
            policies: [
              ...state.policies,
              normalizePolicy({
                metadata: { name: `bench${k}`, namespace: 'ns0' },
                spec: {
                  podSelector: {},
                  ingress: [
                    {
                      from: [{ podSelector: { matchLabels: { tier: `tier${k % 5}` } } }],
                      ports: [{ port: 9000 + k }],
                    },
                  ],
                },
              }),
            ],
          },
          [],
        ],
      ],
    ];
    for (const [name, change] of events) {
      const [next0, podChanges] = change();
      state = next0;
      const t0 = process.cpuUsage();
      index.update(state, podChanges);
      const next = compile();
      const program = programBatches({ programmed }, next, { maxBatchBytes: 425_952 });
      let bytes = 0;
      for (const b of program.batches) bytes += b.encode().buf.length;
      const used = process.cpuUsage(t0);
      programmed = next;
      byEvent[name] ??= { cpu_ms: [], bytes: [], elements: [], sets: [] };
      const e = byEvent[name];
      e.cpu_ms.push((used.user + used.system) / 1000);
      e.bytes.push(bytes);
      e.sets.push(program.counts?.setsAdded ?? 0);
      e.elements.push((program.counts?.elementsAdded ?? 0) + (program.counts?.elementsDeleted ?? 0));
    }
  }
  const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const max = (v: number[]) => Math.max(...v);
  return Object.fromEntries(
    Object.entries(byEvent).map(([k, v]) => [
      k,
      {
        cpu_ms_p50: Math.round(med(v.cpu_ms) * 10) / 10,
        cpu_ms_max: Math.round(max(v.cpu_ms) * 10) / 10,
        // The first change of a kind runs code paths the full sync never took (JIT warm-up, first
        // entries of caches): the agent's tail at k = 0/1 is this, not the change's size.
        cpu_ms_first: Math.round(v.cpu_ms[0]! * 10) / 10,
        cpu_ms_max_at: v.cpu_ms.indexOf(max(v.cpu_ms)),
        cpu_ms_max_after_first: v.cpu_ms.length > 1 ? Math.round(max(v.cpu_ms.slice(1)) * 10) / 10 : null,
        batch_bytes_p50: med(v.bytes),
        batch_bytes_max: max(v.bytes),
        elements_p50: med(v.elements),
        elements_max: max(v.elements),
        sets_added_max: max(v.sets),
      },
    ]),
  );
}
