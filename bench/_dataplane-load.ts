// Load for the dataplane benchmark: an nginx that answers every request with a fixed body inside a pod
// namespace, and `ab` (apache2-utils) opening one new TCP connection per request from another pod.
// Runs programs only inside lab namespaces; never touches the root namespace's network.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { inNamespace } from '../src/lab/exec.ts';
import type { Lab } from '../src/lab/index.ts';

/**
 * Per-namespace sysctls so that neither side runs out of ports or backlog at tens of thousands of
 * connections per second: the client may reuse TIME_WAIT ports (tw_reuse) from a wide range, and the
 * server's accept queue is deep enough for the load generator's concurrency.
 */
export const CLIENT_SYSCTLS = { 'net.ipv4.ip_local_port_range': '1024 65535', 'net.ipv4.tcp_tw_reuse': 1 };
export const SERVER_SYSCTLS = { 'net.core.somaxconn': 8192, 'net.ipv4.tcp_max_syn_backlog': 8192 };
/**
 * In node namespaces once conntrack is loaded: closed connections leave conntrack entries in TIME_WAIT for
 * 120 s by default, which at this rate would fill the (machine-wide) table within a few samples.
 */
export const NODE_SYSCTLS = { 'net.netfilter.nf_conntrack_tcp_timeout_time_wait': 1 };

/**
 * Both ends of the load run on one CPU at the highest priority: the rate is then bound by the CPU time per
 * connection (most of the kernel's work for a connection runs in softirq in the sender's context), which is
 * what the table adds to, and other work on the machine mostly stays on the other CPUs.
 */
export const LOAD_CPU = String(Math.max(0, availableParallelism() - 1));
const PINNED = ['taskset', '-c', LOAD_CPU, 'nice', '-n', '-20'];

export async function setSysctls(lab: Lab, ns: string, values: Record<string, string | number>) {
  const script = Object.entries(values)
    .map(([key, value]) => `echo '${value}' > /proc/sys/${key.replaceAll('.', '/')}`)
    .join(' && ');
  const r = await lab.exec(ns, ['sh', '-ec', script]);
  if (r.code !== 0) throw new Error(`sysctls in ${ns}: ${r.stderr.trim()}`);
}

/** nginx, one worker, no master, no logs: a fixed 3-byte body, so the server is never the bottleneck. */
export function startHttpServer(ns: string, dir: string, port: number): ChildProcess {
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  server { listen ${port} backlog=8192; location / { return 200 "ok\\n"; } }
}
`,
  );
  const [file, ...args] = inNamespace(ns, [
    ...PINNED,
    'nginx',
    '-c',
    conf,
    '-e',
    join(dir, 'error.log'),
    '-g',
    'daemon off; master_process off;',
  ]);
  // nsenter execs nginx in place, so this pid is nginx's own.
  return spawn(file!, args, { stdio: 'ignore' });
}

export interface LoadSample {
  /** Completed connections per second of wall time. */
  cps: number;
  /**
   * Completed connections per CPU-second spent by the client and the server process, kernel time included:
   * the kernel handles a connection's packets in softirq in the context of the process that sent them, and
   * with tick accounting (CONFIG_IRQ_TIME_ACCOUNTING off, as on this project's machines) that time is charged
   * to that process; with IRQ time accounting on it would not be, and only wall_ratio would see the table. Time stolen by the
   * hypervisor or given to other processes is not, so this rate is far less noisy on a shared machine.
   */
  cpuCps: number;
  completed: number;
  failed: number;
}

/** utime + stime of a process in seconds (USER_HZ ticks of /proc/PID/stat). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}
const USER_HZ = 100;

/** `sh`'s `times` prints its own and then its children's user and system time, as `XmY.YYYs` pairs. */
function childSeconds(stdout: string): number | undefined {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  const times = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return times.length === 2 ? times[0]! + times[1]! : undefined;
}

/**
 * `ab` without keep-alive for `seconds`: every request is a new TCP connection (SYN to FIN). `serverPid` is
 * the HTTP server's process, for the CPU time it spent meanwhile.
 */
export async function measureCps(
  lab: Lab,
  ns: string,
  url: string,
  serverPid: number,
  seconds: number,
  concurrency: number,
): Promise<LoadSample> {
  const ab = ['-q', '-r', '-s', '2', '-t', `${seconds}`, '-n', '100000000', '-c', `${concurrency}`, url];
  const argv = [...PINNED, 'sh', '-c', 'ab "$@"; s=$?; times; exit $s', 'sh', ...ab];
  const server0 = cpuSeconds(serverPid);
  const r = await lab.exec(ns, argv, { timeoutMs: (seconds + 15) * 1000 });
  const serverCpu = cpuSeconds(serverPid) - server0;
  const cps = /Requests per second:\s+([\d.]+)/.exec(r.stdout)?.[1];
  const completed = Number(/Complete requests:\s+(\d+)/.exec(r.stdout)?.[1] ?? 0);
  const failed = /Failed requests:\s+(\d+)/.exec(r.stdout)?.[1];
  const clientCpu = childSeconds(r.stdout);
  if (r.code !== 0 || cps === undefined || completed === 0 || clientCpu === undefined) {
    throw new Error(`ab ${url} from ${ns} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return {
    cps: Number(cps),
    cpuCps: completed / (clientCpu + serverCpu),
    completed,
    failed: Number(failed ?? 0),
  };
}

/**
 * `n` ABBA pairs: each pair samples both sides, the order alternating so that whatever drifts during a
 * pair weighs on both alike; `each` gets the sample taken with `true` first, then the one with `false`.
 */
export async function abbaPairs<S>(
  n: number,
  sample: (side: boolean) => Promise<S>,
  each: (yes: S, no: S, pair: number) => void,
): Promise<void> {
  for (let i = 0; i < n; i++) {
    const first = i % 2 === 1;
    const a = await sample(first);
    const b = await sample(!first);
    const [yes, no] = first ? [a, b] : [b, a];
    each(yes, no, i);
  }
}
