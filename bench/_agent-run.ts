// The agent benchmark's driver; runs as PID 1 of private net+pid namespaces (see bench/agent.ts), so every
// process it starts dies with it. Serves a fake Kubernetes API over HTTPS on 127.0.0.1 and starts the real
// agent as a separate process, as the DaemonSet does (`node bin/tollgate.js agent`, in-cluster service
// account: token + CA in a directory, KUBERNETES_SERVICE_HOST/PORT), then once more with --kubeconfig.
// Latency: from writing a change to the watch stream to reading the agent's 'synced' log line.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { desiredState } from '../src/compile/desired.ts';
import { programBatches } from '../src/compile/program.ts';
import { ClusterIndex } from '../src/policy/index.ts';
import { buildState } from '../src/policy/normalize.ts';
import { Planner } from '../src/policy/plan.ts';
import { FakeApiServer, selfSignedCertificate } from './_fake-apiserver.ts';
import { NODES, podLabels, podObject, syntheticCluster, widePolicy } from './_synthetic.ts';

const PODS = Number(process.env.BENCH_PODS ?? 10_000);
const POLICIES = Number(process.env.BENCH_POLICIES ?? 1_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 40);
/** Samples of the second run (--kubeconfig); 0 skips that run. */
const KUBECONFIG_SAMPLES = Number(process.env.BENCH_KUBECONFIG_SAMPLES ?? 10);
/**
 * NODE_OPTIONS of the agent process: what the shipped DaemonSet sets, unless BENCH_NODE_OPTIONS is given
 * (an empty value measures Node's defaults).
 */
const NODE_OPTIONS = process.env.BENCH_NODE_OPTIONS ?? daemonSetNodeOptions();
/** Extra flags for the agent, e.g. `--heap-growth-percent=50` to compare garbage-collection settings. */
const AGENT_ARGS = (process.env.BENCH_AGENT_ARGS ?? '').split(' ').filter((a) => a !== '');
/** The agent's batch cap (--max-batch-bytes): the stock kernel's send limit unless given. */
const MAX_BATCH_BYTES = Number(process.env.BENCH_MAX_BATCH_BYTES ?? 425_952);
/** With N > 0: one more policy of N peers x N ports (widePolicy, ~50 KB of YAML at 700) selecting a pod
 *  of node0, the shape whose fused set is N x N elements. */
const WIDE = Number(process.env.BENCH_WIDE ?? 0);
/** BENCH_TRACE_GC=1: the agent runs with --trace-gc and each sample reports the GC pauses inside it. */
const TRACE_GC = process.env.BENCH_TRACE_GC === '1';
/** BENCH_NODE_ARGS: node/V8 flags before the agent's script (those NODE_OPTIONS refuses, e.g. --trace-deopt). */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
/** BENCH_ECHO=1: every line the agent writes (logs, --trace-gc) to stderr, with the ms since its spawn. */
const ECHO = process.env.BENCH_ECHO === '1';
/** BENCH_AGENT_NICE=-10: the agent runs at that nice level, to tell the machine's load from its own work
 *  (a lower nice value wins the run queue against the other processes of a shared machine). */
const NICE = process.env.BENCH_AGENT_NICE;
// New pods on node0 take addresses 10.244.0.(10 + PODS / NODES + k): past .255 they would leave its CIDR.
if (!(SAMPLES >= 1 && 10 + Math.ceil(PODS / NODES) + SAMPLES <= 255))
  throw new Error(
    `BENCH_SAMPLES=${SAMPLES} with BENCH_PODS=${PODS}: node0's pod addresses would run past .255`,
  );
const FULL_SYNC_TIMEOUT_MS = 180_000;
const EVENT_TIMEOUT_MS = 15_000;
const TOLLGATE = fileURLToPath(new URL('../bin/tollgate.js', import.meta.url));
const WARM = fileURLToPath(new URL('../scripts/warm-compile-cache.js', import.meta.url));
const METRICS_ADDR = '127.0.0.1:9808';
const P = {
  pods: '/api/v1/pods',
  ns: '/api/v1/namespaces',
  np: '/apis/networking.k8s.io/v1/networkpolicies',
  nodes: '/api/v1/nodes',
};

function daemonSetNodeOptions(): string {
  const file = fileURLToPath(new URL('../daemonset/tollgate-agent.yaml', import.meta.url));
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const o = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: { env?: { name: string; value?: string }[] }[] } } };
    } | null;
    if (o?.kind !== 'DaemonSet') continue;
    for (const c of o.spec?.template?.spec?.containers ?? [])
      for (const e of c.env ?? []) if (e.name === 'NODE_OPTIONS') return e.value ?? '';
  }
  return '';
}

const say = (line: string) => process.stderr.write(`# agent bench: ${line}\n`);

/** The cluster the fake API serves: the synthetic one, and the wide policy with its pod when asked. */
function cluster() {
  const c = syntheticCluster(PODS, POLICIES);
  if (WIDE > 0) {
    // On node0, on an address past every pod and sample of node0.
    const pod = podObject(0, { app: 'wide' });
    pod.metadata.name = 'wide';
    pod.status = { phase: 'Running', podIP: '10.244.0.254', podIPs: [{ ip: '10.244.0.254' }] };
    c.pods.push(pod);
    c.policies.push(widePolicy(WIDE, WIDE));
  }
  return c;
}

function populate(api: FakeApiServer): void {
  const c = cluster();
  for (const o of c.namespaces) api.put(P.ns, o.metadata.name, o);
  for (const o of c.nodes) api.put(P.nodes, o.metadata.name, o);
  for (const o of c.pods) api.put(P.pods, o.metadata.name, o);
  for (const o of c.policies) api.put(P.np, o.metadata.name, o);
}

/** node0's first program, compiled here as the agent compiles it: its batches under the cap, elements. */
function firstProgram(): { batches: number; elements: number; bytes: number } {
  const state = desiredState(new Planner(new ClusterIndex(buildState(cluster()))).planNode('node0'));
  const program = programBatches({ kernel: undefined }, state, { maxBatchBytes: MAX_BATCH_BYTES });
  let elements = 0;
  for (const set of state.sets.values()) elements += set.elements.size;
  const bytes = program.batches.reduce((n, tx) => n + tx.encode().buf.length, 0);
  return { batches: program.batches.length, elements, bytes };
}

/** The machine's CPU time counters (/proc/stat, all CPUs): total and stolen by the hypervisor. */
function cpuTimes(): { total: number; steal: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, steal: fields[7] ?? 0 };
}

/**
 * Share of CPU time the hypervisor took from this VM while the samples ran. The latency tail follows it:
 * on the 2-core development VM, runs at ~3% steal had p99 ~30-40 ms and runs at ~14% over 90 ms.
 */
function stealPercent(before: { total: number; steal: number }, after: { total: number; steal: number }) {
  const total = after.total - before.total;
  return total > 0 ? Math.round((1000 * (after.steal - before.steal)) / total) / 10 : 0;
}

/** Idle time after the samples before the settled RSS is read. */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 10_000);

/** The sample changes, in order: each must alter node0's table (one 'synced' line each). */
function changes(api: FakeApiServer, k: number): [string, () => void][] {
  const i = PODS + k * NODES; // a new pod on node0 (i % NODES === 0), on a fresh address
  const j = 1 + k * NODES; // a remote pod (node1) that gains role=peer: peer sets of node0's pods change
  // Pod adds alternate: a new replica of a workload node0 already runs (pod k*NODES: same namespace,
  // same labels: the common case, its chain exists), and a pod whose labels no pod of node0 has (its
  // chain and merged sets are built and programmed from scratch: thousands of elements here).
  const add: [string, () => void] =
    k % 2 === 0
      ? ['pod_add', () => api.put(P.pods, `new${k}`, podObject(i, podLabels(k * NODES)))]
      : ['pod_add_new_shape', () => api.put(P.pods, `new${k}`, podObject(i, podLabels(k)))];
  return [
    add,
    [
      'label_change',
      () => api.put(P.pods, `pod${j}`, podObject(j, { ...podLabels(j), role: 'peer' }), 'MODIFIED'),
    ],
    [
      'policy_add',
      () =>
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
    ],
  ];
}

/** The user + system CPU time of a process in ms, from /proc/<pid>/stat (at the clock tick's grain). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / CLOCK_TICKS;
}
/**
 * The agent's main (JavaScript) thread from /proc/<pid>/schedstat, in ms: time on a CPU and time spent
 * runnable but waiting in the run queue (ns counters, unlike the ticks above). The wait is the machine's
 * load: what a change took beyond its own work because other processes held both cores.
 */
function mainThreadSched(pid: number): { cpu: number; wait: number } {
  const [cpu, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return { cpu: (cpu ?? 0) / 1e6, wait: (wait ?? 0) / 1e6 };
}
/** USER_HZ: 100 on every Linux architecture this runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS = 100;

/** VmRSS, VmHWM (peak), RssAnon and RssFile of a process in MB, from /proc/<pid>/status. */
function memoryOf(pid: number): Record<string, number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  const mb = (field: string) => Math.round(kb(field) / 102.4) / 10;
  return { rss: mb('VmRSS'), peak: mb('VmHWM'), anon: mb('RssAnon'), file: mb('RssFile') };
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function scrapeMetrics(): Promise<number> {
  return new Promise((resolve, reject) => {
    get(`http://${METRICS_ADDR}/metrics`, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(n) : reject(new Error(`/metrics: ${res.statusCode}`)),
      );
    }).on('error', reject);
  });
}

/** What the agent's 'synced' log line says of one sync: its own time, its phases, its queueing. */
interface SyncEntry {
  at: number;
  ms?: number;
  queuedMs?: number;
  phases?: Record<string, number>;
}
/** One --trace-gc line: when the driver read it, the collector and its pause. */
interface GcEntry {
  at: number;
  kind: string;
  pauseMs: number;
}

interface AgentRun {
  child: ChildProcess;
  spawnedAt: number;
  startingAt: number | undefined;
  /** The main thread's CPU and run-queue wait (ms) when its 'starting' and first 'synced' lines were read. */
  schedAtStarting: { cpu: number; wait: number } | undefined;
  schedAtFirstSync: { cpu: number; wait: number } | undefined;
  syncs: number[];
  entries: SyncEntry[];
  gcs: GcEntry[];
  /** The last lines of its output, for failure messages. */
  tail: string[];
  exited: Promise<string>;
  /** Resolves when the agent has logged more than `count` 'synced' lines. */
  waitSyncs(count: number, timeoutMs: number, what: string): Promise<number>;
  /** Resolves once the agent has logged 'start-up done'. */
  waitStartedUp(timeoutMs: number, what: string): Promise<void>;
  /** Its start-up hook's time (the one full collection), from that line; undefined until then. */
  startupHookMs: number | undefined;
}

function startAgent(args: string[], env: NodeJS.ProcessEnv): AgentRun {
  const spawnedAt = performance.now();
  // --state-dir off: the benchmark's agent must not leave a state file for a fake node on the machine.
  const node = [process.execPath, ...(TRACE_GC ? ['--trace-gc'] : []), ...NODE_ARGS];
  // nice execs the agent: its pid stays the child's.
  const argv = [...(NICE === undefined ? [] : ['nice', '-n', NICE]), ...node];
  const child = spawn(argv[0]!, [...argv.slice(1), TOLLGATE, 'agent', '--state-dir', 'off', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const waiters: (() => void)[] = [];
  const run: AgentRun = {
    child,
    spawnedAt,
    startingAt: undefined,
    schedAtStarting: undefined,
    schedAtFirstSync: undefined,
    syncs: [],
    entries: [],
    gcs: [],
    tail: [],
    exited: new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve(`exited ${code ?? signal}`)),
    ),
    startupHookMs: undefined,
    waitStartedUp(timeoutMs, what) {
      return waitLine(
        () => run.startupHookMs !== undefined,
        timeoutMs,
        what,
        "no 'start-up done' log line from the agent",
      );
    },
    waitSyncs(count, timeoutMs, what) {
      return waitLine(
        () => run.syncs.length > count,
        timeoutMs,
        what,
        "no 'synced' log line from the agent (did the change alter node0's table?)",
      ).then(() => run.syncs[count]!);
    },
  };
  function waitLine(done: () => boolean, timeoutMs: number, what: string, missing: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (done()) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what}: ${missing} within ${timeoutMs} ms; last output:\n${run.tail.join('\n')}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        const i = waiters.indexOf(check);
        if (i >= 0) waiters.splice(i, 1);
      };
      void run.exited.then((how) => {
        cleanup();
        reject(new Error(`${what}: the agent ${how}; last output:\n${run.tail.join('\n')}`));
      });
      waiters.push(check);
      check();
    });
  }
  const keep = (line: string) => {
    run.tail.push(line);
    if (run.tail.length > 30) run.tail.shift();
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const at = performance.now();
    keep(line);
    if (ECHO) process.stderr.write(`# agent ${Math.round(at - spawnedAt)} ms: ${line}\n`);
    // e.g. "[123:0x5f]    4012 ms: Scavenge 60.1 (64.0) -> 59.8 (66.0) MB, pooled: 0 MB, 1.25 / 0.00 ms ..."
    const gc =
      /^\[\d+:0x[0-9a-f]+\]\s+\d+ ms: ([A-Za-z-]+(?: \(reduce\))?)[^,]*,(?: pooled: [\d.]+ MB,)? ([\d.]+) \/ [\d.]+ ms/.exec(
        line,
      );
    if (gc) {
      run.gcs.push({ at, kind: gc[1]!, pauseMs: Number(gc[2]) });
      return;
    }
    let entry: {
      msg?: string;
      level?: number;
      ms?: number;
      queuedMs?: number;
      hookMs?: number;
      phases?: Record<string, number>;
    };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if (entry.msg === 'starting') {
      run.startingAt ??= at;
      run.schedAtStarting ??= mainThreadSched(child.pid!);
    } else if (entry.msg === 'start-up done') {
      run.startupHookMs ??= entry.hookMs ?? 0;
      for (const w of [...waiters]) w();
    } else if (entry.msg === 'synced') {
      if (run.syncs.length === 0) run.schedAtFirstSync = mainThreadSched(child.pid!);
      run.syncs.push(at);
      run.entries.push({ at, ms: entry.ms, queuedMs: entry.queuedMs, phases: entry.phases });
      for (const w of [...waiters]) w();
    } else if ((entry.level ?? 0) >= 40) say(`agent: ${line}`);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => keep(`[stderr] ${line}`));
  return run;
}

async function stopAgent(run: AgentRun): Promise<void> {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return;
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 5000);
  run.child.kill('SIGTERM');
  await run.exited;
  clearTimeout(timer);
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
};

/** One agent run against a fresh fake API: full sync, `samples` rounds of the three changes, memory. */
async function measure(
  mode: 'in-cluster' | 'kubeconfig',
  samples: number,
  dir: string,
  tls: { cert: string; key: string },
) {
  const token = randomBytes(16).toString('hex');
  const api = new FakeApiServer(tls, token);
  populate(api);
  const port = await api.listen();
  // The table of a previous run goes, so that every run starts cold.
  execFileSync(process.execPath, [TOLLGATE, 'cleanup'], { stdio: 'ignore' });
  const common = [
    ...AGENT_ARGS,
    '--node-name',
    'node0',
    '--max-batch-bytes',
    String(MAX_BATCH_BYTES),
    '--metrics-addr',
    METRICS_ADDR,
    // As the previous in-process benchmark: syncs back to back, no periodic work during the samples.
    '--min-sync-interval-ms',
    '1',
    '--verify-interval-ms',
    '3600000',
    '--watch-quiet-ms',
    '3600000',
    '--relist-interval-ms',
    '3600000',
  ];
  // The image ships a warmed compile cache (Dockerfile): the agent loads without the TypeScript stripper.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    NODE_OPTIONS,
    NODE_COMPILE_CACHE: compileCache,
  };
  let args = common;
  if (mode === 'in-cluster') {
    const sa = join(dir, `sa-${port}`);
    execFileSync('mkdir', ['-p', sa]);
    writeFileSync(join(sa, 'token'), token);
    writeFileSync(join(sa, 'ca.crt'), tls.cert);
    writeFileSync(join(sa, 'namespace'), 'tollgate-system');
    Object.assign(env, {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(port),
      TOLLGATE_SERVICEACCOUNT_DIR: sa,
    });
  } else {
    const file = join(dir, `kubeconfig-${port}`);
    const ca = Buffer.from(tls.cert).toString('base64');
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster: {server: 'https://127.0.0.1:${port}', certificate-authority-data: ${ca}}\nusers:\n- name: bench\n  user: {token: '${token}'}\ncontexts:\n- name: bench\n  context: {cluster: bench, user: bench}\ncurrent-context: bench\n`,
    );
    args = [...common, '--kubeconfig', file];
  }
  const agent = startAgent(args, env);
  try {
    const firstSync = await agent.waitSyncs(0, FULL_SYNC_TIMEOUT_MS, `${mode}: first full sync`);
    // Wall time suffers from other work on a shared machine; the agent's own CPU time to its first sync
    // (process start included) does much less.
    const cpuToSync = cpuMsOf(agent.child.pid!);
    const fullSync = {
      full_sync_ms: Math.round(firstSync - (agent.startingAt ?? agent.spawnedAt)),
      process_start_to_sync_ms: Math.round(firstSync - agent.spawnedAt),
      process_start_to_starting_ms: Math.round((agent.startingAt ?? Number.NaN) - agent.spawnedAt),
      cpu_ms_to_sync: cpuToSync,
      // From 'starting' to the first 'synced' line: what of the wall time was the agent's own main-thread
      // work and what was waiting for a CPU (the machine's load, the agent's own GC threads, the driver).
      ...(agent.schedAtStarting && agent.schedAtFirstSync
        ? {
            main_cpu_ms: Math.round(agent.schedAtFirstSync.cpu - agent.schedAtStarting.cpu),
            runq_wait_ms: Math.round(agent.schedAtFirstSync.wait - agent.schedAtStarting.wait),
          }
        : {}),
      // The first sync's own line: time from the first request to the start of the sync (the lists, the
      // boot check) and the sync's phases.
      list_ms: agent.entries[0]?.queuedMs,
      phases: agent.entries[0]?.phases,
    };
    const afterFullSync = memoryOf(agent.child.pid!);
    // The samples measure the steady state: the agent's start-up ends with one full collection after the
    // first sync (~0.1 s at 100,000 pods), which a change arriving then waits for once.
    await agent.waitStartedUp(FULL_SYNC_TIMEOUT_MS, `${mode}: start-up`);
    say(
      `${mode}: full sync ${fullSync.full_sync_ms} ms (process start to sync ${fullSync.process_start_to_sync_ms} ms, agent CPU ${cpuToSync} ms; from starting: main thread ${fullSync.main_cpu_ms} ms on a CPU, ${fullSync.runq_wait_ms} ms waiting for one), RSS ${afterFullSync.rss} MB`,
    );
    const byEvent: Record<string, number[]> = {
      pod_add: [],
      pod_add_new_shape: [],
      label_change: [],
      policy_add: [],
    };
    const cpuBefore = cpuTimes();
    /** The agent's own CPU time per event (user + system, clock ticks summed over the samples). */
    const cpuByEvent: Record<string, number> = {};
    /** Per sample: where its wall time went (agent's own sync, queueing, GC pauses inside it, CPU). */
    const detail: Record<string, unknown>[] = [];
    for (let k = 0; k < samples; k++) {
      for (const [what, change] of changes(api, k)) {
        const count = agent.syncs.length;
        const c0 = processCpuMs(agent.child.pid!);
        const s0 = mainThreadSched(agent.child.pid!);
        const t0 = performance.now();
        change();
        const at = await agent.waitSyncs(count, EVENT_TIMEOUT_MS, `${mode}: ${what} #${k}`);
        const cpuMs = processCpuMs(agent.child.pid!) - c0;
        const s1 = mainThreadSched(agent.child.pid!);
        byEvent[what]!.push(at - t0);
        cpuByEvent[what] = (cpuByEvent[what] ?? 0) + cpuMs;
        const e = agent.entries[count]!;
        const syncMs = (e.ms ?? 0) + (e.phases?.state ?? 0);
        const gcs = agent.gcs.filter((g) => g.at >= t0 && g.at <= at + 1);
        detail.push({
          event: what,
          k,
          wall_ms: Math.round((at - t0) * 10) / 10,
          sync_ms: Math.round(syncMs * 10) / 10,
          queued_ms: e.queuedMs,
          // From the write to the watch stream until the agent's runner saw the event, plus the log line.
          outside_ms: Math.round((at - t0 - syncMs - (e.queuedMs ?? 0)) * 10) / 10,
          cpu_ms: cpuMs,
          main_cpu_ms: Math.round((s1.cpu - s0.cpu) * 10) / 10,
          runq_wait_ms: Math.round((s1.wait - s0.wait) * 10) / 10,
          phases: e.phases,
          gc_ms: Math.round(gcs.reduce((n, g) => n + g.pauseMs, 0) * 10) / 10,
          gc: gcs.map((g) => `${g.kind} ${g.pauseMs}`).join(', ') || undefined,
          load1: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
        });
      }
    }
    const stealPct = stealPercent(cpuBefore, cpuTimes());
    // A Prometheus scrape, as in production, before memory is read.
    const metricsBytes = await scrapeMetrics();
    await new Promise((r) => setTimeout(r, 200));
    const end = memoryOf(agent.child.pid!);
    // What a node carries between bursts: V8's memory reducer collects once the agent has been idle.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const settled = memoryOf(agent.child.pid!);
    return {
      fullSync,
      afterFullSync,
      startupHookMs: agent.startupHookMs,
      end,
      settled,
      byEvent,
      cpuByEvent,
      stealPct,
      detail,
      metricsBytes,
      served: { ...api.served },
    };
  } finally {
    await stopAgent(agent);
    await api.close();
  }
}

const share = (d: Record<string, unknown>[], field: string) => {
  const wall = d.reduce((n, x) => n + Number(x.wall_ms), 0);
  return wall > 0 ? Math.round((1000 * d.reduce((n, x) => n + Number(x[field]), 0)) / wall) / 10 : 0;
};
const syncTimes = (d: Record<string, unknown>[]) => d.map((x) => Number(x.sync_ms));

const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-agent-'));
const compileCache = join(dir, 'compile-cache');
try {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const tls = selfSignedCertificate();
  execFileSync(process.execPath, [WARM, compileCache], { stdio: 'ignore' });
  say(
    `${PODS} pods, ${POLICIES} policies, ${SAMPLES} samples per event; agent NODE_OPTIONS='${NODE_OPTIONS}'`,
  );
  const first = firstProgram();
  const main = await measure('in-cluster', SAMPLES, dir, tls);
  const kc = KUBECONFIG_SAMPLES > 0 ? await measure('kubeconfig', KUBECONFIG_SAMPLES, dir, tls) : undefined;
  const all = Object.values(main.byEvent).flat();
  const result = {
    pods: PODS,
    policies: POLICIES,
    nodes: NODES,
    ...(WIDE > 0 ? { wide_policy: `${WIDE}x${WIDE}` } : {}),
    max_batch_bytes: MAX_BATCH_BYTES,
    batches_full_sync: first.batches,
    bytes_full_sync: first.bytes,
    elements: first.elements,
    p50_ms: pct(all, 0.5),
    p99_ms: pct(all, 0.99),
    full_sync_ms: main.fullSync.full_sync_ms,
    rss_mb: main.end.rss,
    peak_rss_mb: main.end.peak,
    process_start_to_sync_ms: main.fullSync.process_start_to_sync_ms,
    process_start_to_starting_ms: main.fullSync.process_start_to_starting_ms,
    agent_cpu_ms_to_sync: main.fullSync.cpu_ms_to_sync,
    full_sync_main_cpu_ms: main.fullSync.main_cpu_ms,
    full_sync_runq_wait_ms: main.fullSync.runq_wait_ms,
    full_sync_list_ms: main.fullSync.list_ms,
    full_sync_phases: main.fullSync.phases,
    rss_after_full_sync_mb: main.afterFullSync.rss,
    // The start-up's one full collection after the first sync (see the agent command's afterStartup).
    startup_gc_ms: main.startupHookMs,
    rss_settled_mb: main.settled.rss,
    settle_ms: SETTLE_MS,
    rss_anon_mb: main.end.anon,
    rss_file_mb: main.end.file,
    by_event: Object.fromEntries(
      Object.entries(main.byEvent).map(([k, v]) => [
        k,
        {
          p50_ms: pct(v, 0.5),
          p99_ms: pct(v, 0.99),
          // Less load-sensitive than the latency: the agent's own CPU time per change (10 ms ticks,
          // averaged over the samples).
          agent_cpu_ms: Math.round((10 * (main.cpuByEvent[k] ?? 0)) / v.length) / 10,
        },
      ]),
    ),
    // The agent's own processing per sync (state + plan + compile + diff + commit, from its 'synced'
    // line), which the driver's and other processes' load moves far less than the wall time.
    sync_p50_ms: pct(syncTimes(main.detail), 0.5),
    sync_p99_ms: pct(syncTimes(main.detail), 0.99),
    by_event_sync: Object.fromEntries(
      Object.keys(main.byEvent).map((k) => {
        const d = main.detail.filter((x) => x.event === k);
        const v = syncTimes(d);
        const cpu = d.map((x) => Number(x.main_cpu_ms));
        const wait = d.map((x) => Number(x.runq_wait_ms));
        return [
          k,
          {
            p50_ms: pct(v, 0.5),
            p99_ms: pct(v, 0.99),
            main_cpu_p50_ms: pct(cpu, 0.5),
            main_cpu_p99_ms: pct(cpu, 0.99),
            runq_wait_p50_ms: pct(wait, 0.5),
            runq_wait_p99_ms: pct(wait, 0.99),
          },
        ];
      }),
    ),
    // Of all samples' wall time: the share the agent's main thread ran, and waited runnable for a CPU.
    main_cpu_share_pct: share(main.detail, 'main_cpu_ms'),
    runq_wait_share_pct: share(main.detail, 'runq_wait_ms'),
    // The slowest samples, for what the tail is made of.
    slowest: [...main.detail].sort((a, b) => Number(b.wall_ms) - Number(a.wall_ms)).slice(0, 8),
    samples_per_event: SAMPLES,
    cpu_steal_pct: main.stealPct,
    ...(kc
      ? {
          rss_mb_kubeconfig: kc.end.rss,
          peak_rss_mb_kubeconfig: kc.end.peak,
          full_sync_ms_kubeconfig: kc.fullSync.full_sync_ms,
          process_start_to_sync_ms_kubeconfig: kc.fullSync.process_start_to_sync_ms,
          samples_per_event_kubeconfig: KUBECONFIG_SAMPLES,
        }
      : {}),
    agent_node_options: NODE_OPTIONS,
    ...(AGENT_ARGS.length > 0 ? { agent_args: AGENT_ARGS.join(' ') } : {}),
    api_requests: main.served,
    note: "agent as its own process (node bin/tollgate.js agent, in-cluster service account) against a fake API over HTTPS on 127.0.0.1; latency = change written to the watch stream -> the agent's \"synced\" log line (netlink batch acknowledged); RSS/peak = the agent's VmRSS/VmHWM after one /metrics scrape (NODE_COMPILE_CACHE warmed as in the image); real kernel in a private netns; node0 holds PODS / NODES of the pods; batches_full_sync/elements: node0's first program compiled by the driver as the agent compiles it",
  };
  if (process.env.BENCH_DETAIL_FILE)
    writeFileSync(process.env.BENCH_DETAIL_FILE, JSON.stringify(main.detail));
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
