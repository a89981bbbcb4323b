// One `tollgate agent` process in a lab node's namespace, as the API lab runs it: started from this checkout's
// bin/tollgate.js, its log lines kept, stopped, killed, asked for /readyz and /metrics from inside the node.
// Must not decide what a test expects of the agent.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ReportLog } from './drops.ts';
import { LabError } from './errors.ts';
import { inNamespace } from './exec.ts';
import type { Lab } from './lab.ts';
import { terminate } from './processes.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const TOLLGATE = `${REPO}bin/tollgate.js`;
/** Where each agent serves /readyz and /metrics: the node namespace's own loopback. */
export const AGENT_METRICS_ADDR = '127.0.0.1:9808';
/** The second agent of a node (`second-start`) serves on the next port of the same loopback. */
export const SECOND_AGENT_METRICS_ADDR = '127.0.0.1:9809';
export const READY_MS = 60_000;
const LOG_LINES = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class AgentProcess {
  readonly lab: Lab;
  readonly nodeIndex: number;
  readonly nodeName: string;
  readonly ns: string;
  readonly args: string[];
  /** Where it serves /healthz, /readyz and /metrics inside the node namespace. */
  readonly metricsAddr: string;
  /** stdout (pino JSON) and stderr lines of every run of this agent, oldest first, capped. */
  readonly lines: string[] = [];
  /** The drop reports among its stdout lines, not capped with them (`drops` steps). */
  readonly reportLog = new ReportLog();
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  runs = 0;

  constructor(
    lab: Lab,
    nodeIndex: number,
    nodeName: string,
    args: string[],
    metricsAddr = AGENT_METRICS_ADDR,
    env: NodeJS.ProcessEnv = {},
  ) {
    this.lab = lab;
    this.nodeIndex = nodeIndex;
    this.nodeName = nodeName;
    this.ns = lab.nodeNamespace(nodeIndex);
    this.args = args;
    this.metricsAddr = metricsAddr;
    this.env = env;
  }

  /** Added to the test process's environment (in-cluster configuration). */
  readonly env: NodeJS.ProcessEnv;

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  #record(stream: string, line: string): void {
    const at = new Date().toISOString().slice(11, 23);
    this.lines.push(stream === 'out' ? `${at} ${line}` : `${at} [stderr] ${line}`);
    if (this.lines.length > LOG_LINES) this.lines.splice(0, this.lines.length - LOG_LINES);
  }

  start(): void {
    if (this.running) throw new LabError('E_LAB_AGENT', `the agent of ${this.nodeName} is already running`);
    this.runs++;
    this.#record('out', `--- start #${this.runs}: tollgate agent ${this.args.join(' ')}`);
    const [file, ...argv] = inNamespace(this.ns, [process.execPath, TOLLGATE, 'agent', ...this.args]);
    const child = spawn(file!, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.#child = child;
    createInterface({ input: child.stdout! }).on('line', (l) => {
      this.#record('out', l);
      this.reportLog.add(l);
    });
    createInterface({ input: child.stderr! }).on('line', (l) => this.#record('err', l));
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#record('out', `--- exited (${code ?? signal})`);
        resolve();
      });
      child.once('error', (e) => {
        this.#record('err', `cannot start: ${e.message}`);
        resolve();
      });
    });
  }

  /**
   * Resolves once this run of the agent has logged that it holds its node (the boot-closed table, a sync,
   * standby, or that it filters nothing until its first sync) or exited, or after `limitMs` (the probes
   * that follow then tell what is wrong).
   */
  async waitTookOver(limitMs: number): Promise<void> {
    const marker = `--- start #${this.runs}:`;
    const tookOver =
      /"msg":"(boot-closed table programmed|synced|[^"]*standby[^"]*|[^"]*not filtered until the first sync)"|--- exited/;
    const deadline = performance.now() + limitMs;
    while (performance.now() < deadline) {
      const from = this.lines.findLastIndex((l) => l.includes(marker));
      if (from >= 0 && this.lines.slice(from + 1).some((l) => tookOver.test(l))) return;
      await sleep(50);
    }
  }

  /** Sends a signal (SIGKILL for crash tests) and waits for the exit if it is one that ends the process. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.#child!.kill(signal);
    await this.#exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.running) await terminate(this.#child!, this.#exited, graceMs);
  }

  /** GET on the agent's HTTP endpoint from inside the node namespace: status code and body. */
  async http(path: string): Promise<{ status: number; body: string }> {
    const r = await this.lab.exec(this.ns, [
      'curl',
      '-s',
      '--noproxy',
      '*',
      '-m',
      '3',
      '-w',
      '\n%{http_code}',
      `http://${this.metricsAddr}${path}`,
    ]);
    const at = r.stdout.lastIndexOf('\n');
    return { status: Number(r.stdout.slice(at + 1)) || 0, body: r.stdout.slice(0, Math.max(0, at)) };
  }

  /** A metric's value summed over its label sets (e.g. tollgate_watch_restarts_total). */
  async metric(name: string): Promise<number> {
    const { status, body } = await this.http('/metrics');
    if (status !== 200) throw new LabError('E_LAB_AGENT', `${this.nodeName}: /metrics answered ${status}`);
    let sum = 0;
    for (const line of body.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (m && m[1] === name) sum += Number(m[3]);
    }
    return sum;
  }

  /** Waits for /readyz = 200; throws with the agent's last log lines otherwise. */
  async waitReady(timeoutMs = READY_MS): Promise<number> {
    const started = performance.now();
    let last = '';
    while (performance.now() - started < timeoutMs) {
      if (!this.running) break;
      const r = await this.http('/readyz').catch(() => ({ status: 0, body: '' }));
      if (r.status === 200) return Math.round(performance.now() - started);
      const now = `${r.status} ${r.body.trim()}`;
      if (now !== last) this.#record('out', `--- /readyz: ${now}`);
      last = now;
      await sleep(100);
    }
    throw new LabError(
      'E_LAB_AGENT',
      `the agent of ${this.nodeName} is not ready after ${Math.round(performance.now() - started)} ms (${this.running ? `/readyz: ${last}` : 'exited'})\n${this.tail(40)}`,
    );
  }

  tail(n = 40): string {
    return `--- agent ${this.nodeName} (last ${n} lines) ---\n${this.lines.slice(-n).join('\n')}`;
  }
}

const flagsSeen = new Map<string, boolean>();
/** Whether `tollgate agent --help` of this checkout lists a flag (features another branch may add). */
export function agentHasFlag(flag: string): boolean {
  let seen = flagsSeen.get(flag);
  if (seen === undefined) {
    const r = spawnSync(process.execPath, [TOLLGATE, 'agent', '--help'], { encoding: 'utf8' });
    seen = `${r.stdout}${r.stderr}`.includes(flag);
    flagsSeen.set(flag, seen);
  }
  return seen;
}
