// The agent benchmark's body; runs inside a private network namespace (see bench/agent.ts).
import { pino } from 'pino';
import { Agent } from '../src/agent/agent.ts';
import { type CommitInfo, NetlinkProgrammer } from '../src/agent/programmer.ts';
import type { Transaction } from '../src/nft/index.ts';
import { FakeApi } from '../test/k8s/fake-api.ts';
import { syntheticPolicy } from './_synthetic.ts';

const PODS = Number(process.env.BENCH_PODS ?? 10_000);
const POLICIES = Number(process.env.BENCH_POLICIES ?? 1_000);
const NAMESPACES = 50;
const NODES = 50;
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 40);
const P = {
  pods: '/api/v1/pods',
  ns: '/api/v1/namespaces',
  np: '/apis/networking.k8s.io/v1/networkpolicies',
  nodes: '/api/v1/nodes',
};

// Pod i runs on node i % NODES in namespace floor(i / NODES) % NAMESPACES: namespaces span nodes.
const nodeOf = (i: number) => i % NODES;
const nsOf = (i: number) => Math.floor(i / NODES) % NAMESPACES;
const ipOf = (i: number) => `10.244.${nodeOf(i)}.${10 + Math.floor(i / NODES)}`;
function podObject(i: number, labels: Record<string, string>) {
  return {
    metadata: { namespace: `ns${nsOf(i)}`, labels },
    spec: {
      nodeName: `node${nodeOf(i)}`,
      containers: [
        { name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 8000 + (i % 3), protocol: 'TCP' }] },
      ],
    },
    status: { phase: 'Running', podIP: ipOf(i), podIPs: [{ ip: ipOf(i) }] },
  };
}
const podLabels = (i: number) => ({ app: `app${i % 40}`, tier: `tier${i % 5}` });
function policyObject(p: number) {
  // The first policy of every namespace lets in pods labelled role=peer: the label-change samples toggle
  // that label on remote pods, which must change the peer sets of this node's pods.
  if (p < NAMESPACES) {
    return {
      metadata: { namespace: `ns${p}` },
      spec: { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'peer' } } }] }] },
    };
  }
  return syntheticPolicy(p, NAMESPACES);
}

const api = new FakeApi();
for (let n = 0; n < NAMESPACES; n++) api.put(P.ns, `ns${n}`, { metadata: { labels: { team: `t${n % 7}` } } });
for (let n = 0; n < NODES; n++) {
  api.put(P.nodes, `node${n}`, {
    spec: { podCIDRs: [`10.244.${n}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: `192.0.2.${n + 1}` }] },
  });
}
for (let i = 0; i < PODS; i++) api.put(P.pods, `pod${i}`, podObject(i, podLabels(i)));
for (let p = 0; p < POLICIES; p++) api.put(P.np, `np${p}`, policyObject(p));

let lastCommitAt = 0;
let commits = 0;
class TimedProgrammer extends NetlinkProgrammer {
  override async commit(tx: Transaction): Promise<CommitInfo> {
    const r = await super.commit(tx);
    lastCommitAt = performance.now();
    commits++;
    return r;
  }
}
const agent = new Agent(api, new TimedProgrammer(), pino({ level: process.env.BENCH_LOG ?? 'silent' }), {
  nodeName: 'node0',
  metricsAddr: undefined,
  minSyncIntervalMs: 1,
  verifyIntervalMs: 3_600_000,
  watchQuietMs: 3_600_000,
  relistIntervalMs: 3_600_000,
});

const coldStart = performance.now();
await agent.start();
while (commits === 0) await new Promise((r) => setTimeout(r, 5));
const fullSyncMs = lastCommitAt - coldStart;

/** Applies a change and waits for the batch it causes; returns ms from the change to the kernel's ACK. */
async function measure(what: string, change: () => void): Promise<number> {
  await agent.idle();
  const before = commits;
  const t0 = performance.now();
  change();
  await new Promise((r) => setImmediate(r));
  await agent.idle();
  if (commits === before)
    throw new Error(`${what}: the change did not alter node0's table; the benchmark measures nothing`);
  return lastCommitAt - t0;
}

const samples: Record<string, number[]> = { pod_add: [], label_change: [], policy_add: [] };
for (let k = 0; k < SAMPLES; k++) {
  // A new pod on this node (i % NODES === 0), on a fresh address.
  const i = PODS + k * NODES;
  samples.pod_add!.push(
    await measure('pod add', () => api.put(P.pods, `new${k}`, podObject(i, podLabels(k)))),
  );
  // A remote pod (node1) changes tier: it joins and leaves tier peer sets that node0's pods use.
  const j = 1 + k * NODES;
  samples.label_change!.push(
    await measure('label change', () =>
      api.put(P.pods, `pod${j}`, podObject(j, { ...podLabels(j), role: 'peer' }), 'MODIFIED'),
    ),
  );
  // A new policy selecting pods of a namespace this node runs pods of.
  samples.policy_add!.push(
    await measure('policy add', () =>
      api.put(P.np, `bench${k}`, {
        metadata: { namespace: 'ns0' },
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
    ),
  );
}
const all = Object.values(samples)
  .flat()
  .sort((a, b) => a - b);
const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
};
const result = {
  pods: PODS,
  policies: POLICIES,
  p50_ms: pct(all, 0.5),
  p99_ms: pct(all, 0.99),
  full_sync_ms: Math.round(fullSyncMs),
  rss_mb: Math.round(process.memoryUsage().rss / 1024 / 1024),
  peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  by_event: Object.fromEntries(
    Object.entries(samples).map(([k, v]) => [k, { p50_ms: pct(v, 0.5), p99_ms: pct(v, 0.99) }]),
  ),
  samples_per_event: SAMPLES,
  note: 'in-memory API (no API-server latency); real kernel in a private netns; node0 holds 200 of the pods',
};
await agent.stop();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
