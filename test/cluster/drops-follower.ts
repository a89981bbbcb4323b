// The agents' drop reports on a real cluster, read the way an operator reads them: the real `tollgate drops
// --output json` (src/cli/drops.ts, its API client's followLines on pods/log) runs in the hub's network
// namespace with the cluster's kubeconfig and follows every agent's log. Keeps what it prints; scrapes no
// kubectl logs of its own and decides nothing about what should be reported (src/scenario/drops.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DropReport } from '../../src/nflog/report.ts';
import { ClusterScenarioError } from './scenario-plan.ts';

const CLI = fileURLToPath(new URL('../../bin/tollgate.js', import.meta.url));
/** Reports kept: far more than any scenario makes (the kernel rate limit caps a burst). */
const KEPT = 20_000;

/** The CLI's argv for a cluster: node, the launcher, `drops` and the flags (callers add filters). */
export function dropsCliArgv(kubeconfig: string, flags: string[]): string[] {
  return [process.execPath, CLI, 'drops', `--kubeconfig=${kubeconfig}`, ...flags];
}

/** Same shape as src/lab/drops.ts's ReportLog, so its waitForDrops reads this too. */
export class DropsFollower {
  readonly reports: DropReport[] = [];
  readonly malformed: string[] = [];
  /** When each report's line reached this process (epoch ms), for latency figures. */
  readonly seenAt = new WeakMap<DropReport, number>();
  #child: ChildProcess | undefined;
  #stderr = '';
  #exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  readonly hubNetns: string;
  readonly kubeconfig: string;
  /** Filters for the CLI (--namespace, --policy ...); none: every report. */
  readonly filters: string[];

  constructor(hubNetns: string, kubeconfig: string, filters: string[] = []) {
    this.hubNetns = hubNetns;
    this.kubeconfig = kubeconfig;
    this.filters = filters;
  }

  /** Starts `tollgate drops` (following, 10 minutes back) unless it runs; a dead one is started again. */
  start(): void {
    if (this.#child && this.#exited === undefined) return;
    this.#exited = undefined;
    const argv = [
      // A killed test process takes the follower with it.
      'setpriv',
      '--pdeathsig',
      'KILL',
      'nsenter',
      `--net=/run/netns/${this.hubNetns}`,
      '--',
      ...dropsCliArgv(this.kubeconfig, ['--output=json', '--since=10m', ...this.filters]),
    ];
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_PROXY: '*', no_proxy: '*' },
    });
    this.#child = child;
    let rest = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) this.add(line);
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      if (this.#stderr.length < 8192) this.#stderr += chunk;
    });
    child.once('exit', (code, signal) => {
      this.#exited = { code, signal };
    });
  }

  /** One stdout line of `tollgate drops --output json` (a report as JSON). */
  add(line: string): void {
    if (line.trim() === '') return;
    let r: DropReport;
    try {
      r = JSON.parse(line) as DropReport;
    } catch {
      if (this.malformed.length < 20)
        this.malformed.push(`tollgate drops printed a line that is not JSON: ${line}`);
      return;
    }
    this.seenAt.set(r, Date.now());
    this.reports.push(r);
    if (this.reports.length > KEPT) this.reports.splice(0, this.reports.length - KEPT);
  }

  /** Why the follower is not following (it exited), with its stderr; undefined while it runs. */
  trouble(): string | undefined {
    if (this.#child === undefined) return 'tollgate drops was never started';
    if (this.#exited === undefined) return undefined;
    return `tollgate drops exited (code ${this.#exited.code}, signal ${this.#exited.signal}): ${this.#stderr.trim()}`;
  }

  async close(): Promise<void> {
    const child = this.#child;
    if (!child || this.#exited !== undefined) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** A follower needs the hub's namespace (a LabCluster's); a stand-in cluster has none. */
export function requireHub(hub: string | undefined, what: string): string {
  if (hub === undefined)
    throw new ClusterScenarioError(
      'E_CLUSTER_SKIP',
      `${what}: the cluster tells no hub namespace to run tollgate drops in`,
    );
  return hub;
}
