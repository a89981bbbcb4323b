// Benchmark of the dataplane: new TCP connections per second from a client pod to a server pod on another
// node (VXLAN), with tollgate holding 10 / 1,000 / 5,000 policies over 10,000 known pods, against a
// baseline pair of nodes without any table in the same lab. Needs root, nginx and ab; not a test.
//
// Method: one lab with two enforced nodes (1, 2) and two plain ones (3, 4), each pair with a client and an
// nginx server pod. Per configuration, both enforcers get every object (one full sync each), a few probes
// check what is allowed and denied, then SAMPLE_SECONDS samples of `ab` (a new connection per request)
// alternate between the baseline pair and the enforced pair, PAIRS times in ABBA order. `ratio` is the
// median of the paired ratios of connections per CPU-second (see LoadSample): on a shared machine with
// hypervisor steal the wall-clock rate of one second swings by tens of percent, the CPU cost per connection
// by a few. Reference phases: `calibration` (no table on either pair: the noise floor and any asymmetry of
// the pairs) and `conntrack` (a table of the bench's own with only tollgate's two `ct state` rules: the cost
// of connection tracking, which any stateful table pays and kube-proxy already pays on a real node).
// Its lab (openDataplaneLab) and tables also serve bench/dataplane-cnp.ts.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SyncResult } from '../src/agent/reconciler.ts';
import { EnforcerClient } from '../src/lab/enforcer-client.ts';
import { Lab, type NodeSpec, nodeSpec, type PodSpec } from '../src/lab/index.ts';
import type { ClusterObjects } from '../src/policy/normalize.ts';
import {
  abbaPairs,
  CLIENT_SYSCTLS,
  LOAD_CPU,
  type LoadSample,
  measureCps,
  NODE_SYSCTLS,
  SERVER_SYSCTLS,
  setSysctls,
  startHttpServer,
} from './_dataplane-load.ts';
import {
  AGENT_PORT,
  baseObjects,
  CLIENT,
  ENFORCED,
  FAKE_PODS,
  LOAD_PORT,
  OTHER,
  otherPodsPolicies,
  type RealPod,
  SERVER,
  serverPolicies,
} from './_dataplane-objects.ts';

const SIZES = [10, 1_000, 5_000];
const SAMPLE_SECONDS = 1;
const PAIRS = 8;
const CONCURRENCY = 16;
export const BASE_CLIENT = 'base/client';
export const BASE_SERVER = 'base/server';
const CONNTRACK_TABLE = 'dataplane-bench';

interface Config {
  shape: 'a' | 'b' | 'calibration' | 'conntrack' | 'empty';
  policies: number;
}

interface ConfigResult {
  shape: Config['shape'];
  policies: number;
  /** Median connections per second (wall clock) of the enforced pair. */
  cps: number;
  /** Median of the paired ratios enforced / baseline of connections per CPU-second. */
  ratio: number;
  /** ratio divided by the conntrack phase's: what tollgate adds to connection tracking. */
  ratio_vs_conntrack?: number;
  cpu_cps: number;
  /** Median of the paired ratios of wall-clock rates (noisier). */
  wall_ratio: number;
  failed: number;
  sync_wall_ms?: number;
  node1?: TableSize;
  node2?: TableSize;
}

interface TableSize {
  chains: number;
  sets: number;
  elements: number;
  /** The reconciler's own time for the full sync: plan, compile, one batch acknowledged by the kernel. */
  sync_ms: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function labSpec(): { nodes: NodeSpec[]; pods: PodSpec[]; hosts: [] } {
  const nodes = [
    ...ENFORCED.map((n) => ({ ...nodeSpec(n.index), podCIDR4: n.lab })),
    nodeSpec(3),
    nodeSpec(4),
  ];
  const pod = (key: string, node: number): PodSpec => ({
    key,
    node,
    hostNetwork: false,
    ports: [{ port: AGENT_PORT, protocol: 'TCP' }],
  });
  return {
    nodes,
    pods: [
      pod(CLIENT.key, CLIENT.node),
      pod(SERVER.key, SERVER.node),
      pod(OTHER.key, OTHER.node),
      pod(BASE_CLIENT, 3),
      pod(BASE_SERVER, 4),
    ],
    hosts: [],
  };
}

function tableSize(r: SyncResult): TableSize {
  return { chains: r.chains, sets: r.sets, elements: r.elements, sync_ms: round(r.ms) };
}

function policiesOf(config: Config): unknown[] {
  if (config.shape === 'a') return otherPodsPolicies(config.policies);
  if (config.shape === 'b') return serverPolicies(config.policies);
  return [];
}

/** Runs nft text in both enforced nodes' namespaces. */
async function nftEnforced(lab: Lab, text: string): Promise<void> {
  for (const n of ENFORCED) {
    const r = await lab.execNode(n.index, ['nft', '-f', '-'], { input: text });
    if (r.code !== 0) throw new Error(`nft in node ${n.index}: ${r.stderr.trim()}`);
  }
}

/** Deletes `table inet NAME` on both enforced nodes if it is there (the empty declaration makes it so). */
export const removeTable = (lab: Lab, name: string): Promise<void> =>
  nftEnforced(lab, `table inet ${name}\ndelete table inet ${name}\n`);

/** The conntrack phase's table: tollgate's first two rules and nothing else; idempotent either way. */
export async function conntrackTable(lab: Lab, present: boolean): Promise<void> {
  await removeTable(lab, CONNTRACK_TABLE);
  if (!present) return;
  await nftEnforced(
    lab,
    `table inet ${CONNTRACK_TABLE} {\n  chain forward {\n    type filter hook forward priority filter; policy accept;\n    ct state established,related accept\n    ct state invalid drop\n  }\n}\n`,
  );
}

/** The lab of the dataplane benchmarks, nginx answering in both server pods, the enforcers started. */
export interface DataplaneLab {
  lab: Lab;
  /** The client, server and other pod with their lab addresses. */
  real: RealPod[];
  /** Node 1's and node 2's. */
  enforcers: EnforcerClient[];
  /** One `ab` sample on the enforced pair (client -> server) or on the plain one. */
  sample(enforced: boolean, seconds: number, concurrency: number): Promise<LoadSample>;
  /** Stops the servers and enforcers and removes the lab, also after a failed start. */
  close(): Promise<void>;
}

export async function openDataplaneLab(): Promise<DataplaneLab> {
  const lab = await Lab.up(labSpec());
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-dataplane-'));
  const servers = new Map<string, ReturnType<typeof startHttpServer>>();
  const enforcers: EnforcerClient[] = [];
  const close = async () => {
    await Promise.allSettled(enforcers.map((e) => e.close()));
    for (const s of servers.values()) s.kill();
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const key of [CLIENT.key, BASE_CLIENT]) await setSysctls(lab, lab.podNamespace(key), CLIENT_SYSCTLS);
    for (const key of [SERVER.key, BASE_SERVER]) {
      await setSysctls(lab, lab.podNamespace(key), SERVER_SYSCTLS);
      const serverDir = join(dir, key.replace('/', '-'));
      mkdirSync(serverDir);
      servers.set(key, startHttpServer(lab.podNamespace(key), serverDir, LOAD_PORT));
    }
    await waitForServer(lab, CLIENT.key, SERVER.key);
    await waitForServer(lab, BASE_CLIENT, BASE_SERVER);
    for (const n of ENFORCED) enforcers.push(new EnforcerClient(lab.nodeNamespace(n.index), n.name));
  } catch (error) {
    await close();
    throw error;
  }
  return {
    lab,
    real: [CLIENT, SERVER, OTHER].map((p) => ({ ...p, ...lab.pod(p.key) })),
    enforcers,
    sample(enforced, seconds, concurrency) {
      const [client, server] = enforced ? [CLIENT.key, SERVER.key] : [BASE_CLIENT, BASE_SERVER];
      const url = `http://${lab.pod(server).ip4}:${LOAD_PORT}/`;
      const pid = servers.get(server)!.pid!;
      return measureCps(lab, lab.podNamespace(client), url, pid, seconds, concurrency);
    },
    close,
  };
}

export async function run() {
  const started = performance.now();
  const dataplane = await openDataplaneLab();
  const { lab, enforcers, real } = dataplane;
  try {
    const base = baseObjects(real);
    const sample = (enforced: boolean) => dataplane.sample(enforced, SAMPLE_SECONDS, CONCURRENCY);

    const configs: Config[] = [
      { shape: 'calibration', policies: 0 },
      { shape: 'conntrack', policies: 0 },
      { shape: 'empty', policies: 0 },
      ...(['a', 'b'] as const).flatMap((shape) => SIZES.map((policies) => ({ shape, policies }))),
    ];
    const baselines: LoadSample[] = [];
    const results: ConfigResult[] = [];
    for (const config of configs) {
      let table: Pick<ConfigResult, 'sync_wall_ms' | 'node1' | 'node2'> = {};
      if (config.shape === 'conntrack') {
        await conntrackTable(lab, true);
        // conntrack is loaded now, so its per-namespace sysctls exist.
        for (const n of [1, 2, 3, 4]) await setSysctls(lab, lab.nodeNamespace(n), NODE_SYSCTLS);
      } else if (config.shape !== 'calibration') {
        const objects: ClusterObjects = { ...base, policies: policiesOf(config) };
        const syncStart = performance.now();
        const synced = await Promise.all(enforcers.map((e) => e.sync(objects, true)));
        const syncWallMs = performance.now() - syncStart;
        const issues = synced.flatMap((s) => s.issues);
        if (issues.length > 0)
          throw new Error(`bench objects have issues: ${JSON.stringify(issues.slice(0, 3))}`);
        const [n1, n2] = synced as [SyncResult, SyncResult];
        table = { sync_wall_ms: round(syncWallMs), node1: tableSize(n1), node2: tableSize(n2) };
      }
      await checkVerdicts(lab, config);

      const enforced: LoadSample[] = [];
      const cpuRatios: number[] = [];
      const wallRatios: number[] = [];
      let failed = 0;
      await abbaPairs(PAIRS, sample, (t, b) => {
        baselines.push(b);
        enforced.push(t);
        cpuRatios.push(t.cpuCps / b.cpuCps);
        wallRatios.push(t.cps / b.cps);
        failed += b.failed + t.failed;
      });
      if (config.shape === 'conntrack') await conntrackTable(lab, false);
      const ratio = median(cpuRatios);
      const conntrack = results.find((r) => r.shape === 'conntrack');
      results.push({
        shape: config.shape,
        policies: config.policies,
        cps: round(median(enforced.map((s) => s.cps))),
        ratio: round(ratio, 3),
        ...(conntrack ? { ratio_vs_conntrack: round(ratio / conntrack.ratio, 3) } : {}),
        cpu_cps: round(median(enforced.map((s) => s.cpuCps))),
        wall_ratio: round(median(wallRatios), 3),
        failed,
        ...table,
      });
      process.stderr.write(`dataplane: ${JSON.stringify(results[results.length - 1])}\n`);
    }
    const reference = (shape: Config['shape']) => results.find((r) => r.shape === shape);
    return {
      baseline_cps: round(median(baselines.map((s) => s.cps))),
      results: results.filter((r) => r.shape === 'a' || r.shape === 'b'),
      baseline_cpu_cps: round(median(baselines.map((s) => s.cpuCps))),
      calibration: reference('calibration'),
      conntrack: reference('conntrack'),
      empty_table: reference('empty'),
      pods: FAKE_PODS + real.length,
      sample_seconds: SAMPLE_SECONDS,
      pairs: PAIRS,
      concurrency: CONCURRENCY,
      load_cpu: LOAD_CPU,
      seconds: round((performance.now() - started) / 1000),
    };
  } finally {
    await dataplane.close();
  }
}

async function waitForServer(lab: Lab, from: string, server: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await lab.probe(from, server, LOAD_PORT, 'TCP', { timeoutMs: 500 })).ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nginx in ${server} does not answer on ${LOAD_PORT}`);
}

/** The client must reach the server's load port; in shape (b) the agent port and other pods must not. */
async function checkVerdicts(lab: Lab, config: Config): Promise<void> {
  const expect = [
    { from: CLIENT.key, port: LOAD_PORT, ok: true },
    { from: BASE_CLIENT, to: BASE_SERVER, port: LOAD_PORT, ok: true },
    ...(config.shape === 'b'
      ? [
          { from: CLIENT.key, port: AGENT_PORT, ok: false },
          { from: OTHER.key, port: LOAD_PORT, ok: false },
        ]
      : [{ from: OTHER.key, port: LOAD_PORT, ok: true }]),
  ];
  const results = await lab.probeMany(
    expect.map((e) => ({
      from: e.from,
      to: e.to ?? SERVER.key,
      port: e.port,
      protocol: 'TCP',
      timeoutMs: 1500,
    })),
  );
  results.forEach((r, i) => {
    if (r.ok !== expect[i]!.ok) {
      throw new Error(
        `shape ${config.shape} with ${config.policies} policies: ${r.from} -> ${r.to}:${r.port} ${r.ok ? 'allowed' : 'denied'} (${r.detail}), expected the opposite`,
      );
    }
  });
}
