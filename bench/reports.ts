// Benchmark of drop reports on allowed traffic: new TCP connections per second from a client pod to an
// nginx pod on another node while a third pod floods that server with denied connection attempts, with
// the server node's table programmed with drop reports on (and the agent's listener bound) against the
// same table without them, in the same lab. Needs root, nginx and ab; not a test.
//
// Method: PAIRS pairs of SAMPLE_SECONDS samples in ABBA order; for every sample the node is programmed
// afresh (test/agent/_reports-child.ts, the agent's reconciler and DropReporter, in the node's namespace);
// one flood (bench/_dataplane-flood.ts: UDP datagrams from many source ports, each a new denied attempt,
// paced at FLOOD_RATE a second) runs from before the first sample to the end; its attempts are counted over
// every sample's measuring window, and the node's reports and suppressed (reports chain counter) over the
// life of the node's rules, against the limit's bound burst + rate x that life. `ratio`: median of the paired ratios on/off of connections per
// CPU-second of client and server (see bench/_dataplane-load.ts LoadSample); `wall_ratio` the same of the
// wall-clock rates. Reports are off the allow path, so the ratio measures what the denied flood's reports
// cost everything else on the machine.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Lab, nodeSpec, type PodSpec } from '../src/lab/index.ts';
import { REPORT_MESSAGE } from '../src/nflog/report.ts';
import type { ClusterObjects } from '../src/policy/normalize.ts';
import {
  abbaPairs,
  CLIENT_SYSCTLS,
  type LoadSample,
  measureCps,
  NODE_SYSCTLS,
  SERVER_SYSCTLS,
  setSysctls,
  startHttpServer,
} from './_dataplane-load.ts';
import {
  baseObjects,
  CLIENT,
  ENFORCED,
  LOAD_PORT,
  OTHER,
  type RealPod,
  SERVER,
  serverPolicies,
} from './_dataplane-objects.ts';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, '..', 'test', 'agent', '_reports-child.ts');
const FLOOD = join(here, '_dataplane-flood.ts');
const SAMPLE_SECONDS = 2;
const PAIRS = 6;
const CONCURRENCY = 16;
const REPORTS = { group: 100, rate: 20, per: 'second', burst: 5 } as const;
/** The burst: 10,000 denied attempts in 2 s, so at least 5,000 a second (the flood's target). */
const FLOOD_RATE = 8000;
const FLOOD_SOCKETS = 512;
/** Processes the flood is split over: one sender got ~2,500 datagrams/s of CPU on the shared 2 cores. */
const FLOOD_WORKERS = 4;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The server node programmed (reports on or off) by the child; resolves once it is ready. */
async function program(lab: Lab, objects: ClusterObjects, on: boolean, dir: string) {
  const node = ENFORCED[1];
  const file = join(dir, `node-${on ? 'on' : 'off'}.json`);
  writeFileSync(file, JSON.stringify({ node: node.name, objects, reports: on ? REPORTS : null }));
  const spawnedMs = performance.now();
  const child = spawn(
    'ip',
    ['netns', 'exec', lab.nodeNamespace(node.index), process.execPath, CHILD, `@${file}`],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let reports = 0;
  let stats: ((s: { suppressed: number }) => void) | undefined;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: child.stdout }).on('line', (l) => {
    if (l.includes(REPORT_MESSAGE)) reports++;
    else if (l.includes('"ready":true')) ready();
    else if (l.includes('"stats"')) stats?.(JSON.parse(l).stats);
  });
  await Promise.race([
    isReady,
    new Promise((_, reject) => child.once('exit', (c) => reject(new Error(`node child exited ${c}`)))),
  ]);
  return {
    reports: () => reports,
    /** Denied attempts the node's limit left unreported so far (the reports chain's counter). */
    suppressed: () =>
      new Promise<number>((resolve) => {
        stats = (x) => resolve(x.suppressed);
        child.stdin.write('stats\n');
      }),
    /** Stops the child; resolves with the seconds its rules can have lived (spawn to exit, an upper bound). */
    /** Denied attempts the kernel saw so far: reported + suppressed. */
    denied: async () => {
      const sup = await new Promise<number>((resolve) => {
        stats = (x) => resolve(x.suppressed);
        child.stdin.write('stats\n');
      });
      return sup + reports;
    },
    stop: () =>
      new Promise<number>((resolve) => {
        child.once('exit', () => resolve((performance.now() - spawnedMs) / 1000));
        child.stdin.end();
      }),
  };
}

/** The flood (FLOOD_WORKERS processes) and a reader of its running count of datagrams sent. */
function flood(lab: Lab) {
  const args = {
    host: lab.pod(SERVER.key).ip4,
    port: LOAD_PORT,
    rate: FLOOD_RATE / FLOOD_WORKERS,
    sockets: Math.ceil(FLOOD_SOCKETS / FLOOD_WORKERS),
  };
  const workers = Array.from({ length: FLOOD_WORKERS }, () => {
    // Niced up: on the shared machine the flood otherwise got too little CPU to reach the burst;
    // it is paced, so it takes no more than FLOOD_RATE needs, the same with reports on and off.
    const child = spawn(
      'nice',
      [
        '-n',
        '-10',
        'ip',
        'netns',
        'exec',
        lab.podNamespace(OTHER.key),
        process.execPath,
        FLOOD,
        JSON.stringify(args),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const waiting: ((n: number) => void)[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => waiting.shift()?.(JSON.parse(l).sent));
    const sent = () =>
      new Promise<number>((resolve) => {
        waiting.push(resolve);
        child.stdin!.write('count\n');
      });
    return { child, sent };
  });
  return {
    kill: () => {
      for (const w of workers) w.child.kill();
    },
    sent: async () => (await Promise.all(workers.map((w) => w.sent()))).reduce((a, b) => a + b, 0),
  };
}

export async function run() {
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-reports-bench-'));
  const pod = (key: string, node: number): PodSpec => ({
    key,
    node,
    hostNetwork: false,
    ports: [{ port: 80, protocol: 'TCP' }],
  });
  const lab = await Lab.up({
    nodes: ENFORCED.map((n) => ({ ...nodeSpec(n.index), podCIDR4: n.lab })),
    pods: [pod(CLIENT.key, CLIENT.node), pod(SERVER.key, SERVER.node), pod(OTHER.key, OTHER.node)],
    hosts: [],
  });
  let server: ChildProcess | undefined;
  let flooding: ReturnType<typeof flood> | undefined;
  try {
    const real: RealPod[] = [CLIENT, SERVER, OTHER].map((p) => ({ ...p, ...lab.pod(p.key) }));
    const objects: ClusterObjects = { ...baseObjects(real), policies: serverPolicies(10) };
    await setSysctls(lab, lab.podNamespace(CLIENT.key), CLIENT_SYSCTLS);
    await setSysctls(lab, lab.podNamespace(SERVER.key), SERVER_SYSCTLS);
    const serverDir = join(dir, 'server');
    mkdirSync(serverDir);
    server = startHttpServer(lab.podNamespace(SERVER.key), serverDir, LOAD_PORT);
    const url = `http://${lab.pod(SERVER.key).ip4}:${LOAD_PORT}/`;
    for (let i = 0; i < 50; i++) {
      if ((await lab.probe(CLIENT.key, SERVER.key, LOAD_PORT, 'TCP', { timeoutMs: 500 })).ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    type Sample = LoadSample & {
      reports: number;
      suppressed: number;
      /** Datagrams the flood sent during the measuring window, and that window's seconds. */
      attempts: number;
      flood_seconds: number;
      /** burst + rate x the seconds the node's rules lived: the most reports the limit allows. */
      bound: number;
      /** Denied attempts the kernel counted (reports + suppressed) in the measuring window (reports on). */
      window_denied: number;
      /** Seconds the node's rules lived (spawn to exit of the node's child, an upper bound). */
      life: number;
    };
    const sample = async (on: boolean): Promise<Sample> => {
      const node = await program(lab, objects, on, dir);
      let s: LoadSample;
      let suppressed = 0;
      let attempts = 0;
      let floodSeconds = 0;
      let life = 0;
      let windowDenied = 0;
      try {
        await setSysctls(lab, lab.nodeNamespace(ENFORCED[1].index), NODE_SYSCTLS);
        const denied = await lab.probe(OTHER.key, SERVER.key, LOAD_PORT, 'TCP', { timeoutMs: 500 });
        if (denied.ok) throw new Error('the flooding pod is not denied');
        const deniedBefore = on ? await node.denied() : 0;
        const before = await flooding!.sent();
        const t0 = performance.now();
        s = await measureCps(
          lab,
          lab.podNamespace(CLIENT.key),
          url,
          server!.pid!,
          SAMPLE_SECONDS,
          CONCURRENCY,
        );
        attempts = (await flooding!.sent()) - before;
        floodSeconds = (performance.now() - t0) / 1000;
        if (on) {
          suppressed = await node.suppressed();
          windowDenied = (await node.denied()) - deniedBefore;
        }
      } finally {
        life = await node.stop();
      }
      const bound = Math.ceil(REPORTS.burst + REPORTS.rate * life);
      return {
        ...s,
        reports: node.reports(),
        suppressed,
        attempts,
        flood_seconds: floodSeconds,
        bound,
        life,
        window_denied: windowDenied,
      };
    };
    // One flood for the whole run, started well before the first sample, so that every sample has it.
    flooding = flood(lab);
    await new Promise((r) => setTimeout(r, 3000));
    const cpu: number[] = [];
    const wall: number[] = [];
    const on: Sample[] = [];
    const off: Sample[] = [];
    await abbaPairs(PAIRS, sample, (x, y, i) => {
      on.push(x);
      off.push(y);
      cpu.push(x.cpuCps / y.cpuCps);
      wall.push(x.cps / y.cps);
      process.stderr.write(
        `reports: pair ${i}: on ${round(x.cps, 0)} cps (${x.reports} reports <= ${x.bound}, ${x.suppressed} suppressed, ${x.attempts} attempts sent, ${x.window_denied} denied in ${round(x.flood_seconds, 1)} s), off ${round(y.cps, 0)} cps\n`,
      );
    });
    return {
      ratio: round(median(cpu)),
      wall_ratio: round(median(wall)),
      cps_on: round(median(on.map((s) => s.cps)), 0),
      cps_off: round(median(off.map((s) => s.cps)), 0),
      reports_per_sample: median(on.map((s) => s.reports)),
      reports_max: Math.max(...on.map((s) => s.reports)),
      bound_per_sample: median(on.map((s) => s.bound)),
      // Every sample within its bound: the acceptance's "at most the rate limit's reports".
      within_bound: on.every((s) => s.reports <= s.bound),
      suppressed_per_sample: median(on.map((s) => s.suppressed)),
      // The flood's denied attempts per sample with reports on, as the kernel counted: reported + suppressed.
      denied_per_sample: median(on.map((s) => s.reports + s.suppressed)),
      // The kernel's count of denied attempts per second in the measuring windows (reports on).
      denied_per_second: round(median(on.map((s) => s.window_denied / s.flood_seconds)), 0),
      // As the flood counted them, in the measuring window of every sample (on and off).
      attempts_per_sample: median([...on, ...off].map((s) => s.attempts)),
      attempts_per_second: round(median([...on, ...off].map((s) => s.attempts / s.flood_seconds)), 0),
      failed: [...on, ...off].reduce((n, s) => n + s.failed, 0),
      sample_seconds: SAMPLE_SECONDS,
      pairs: PAIRS,
      seconds: round((performance.now() - started) / 1000, 0),
    };
  } finally {
    flooding?.kill();
    server?.kill();
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  }
}
