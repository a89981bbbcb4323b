// The per-node agent: watches the cluster through a ClusterStore and keeps the node's `inet tollgate`
// table equal to what the policies say, one atomic batch per change. Level-triggered: every sync
// recomputes the desired state from the whole store and diffs it against what was programmed. The store
// keeps objects in normalized form only, and reports which pods changed, so a sync's cost follows the
// change rather than the number of pods.
// Heals itself from what it can see: a rejected diff converges from the kernel's listing (reconciler),
// the table is verified on a timer and at once when someone else changes it (nf_tables notifications),
// one agent per node writes (NodeLock; a second one waits as standby), and a node without a table is
// closed until the first complete list (boot.ts). Also serves /healthz (fails when the agent is stuck),
// /readyz and /metrics. Never exits the process (src/cli does).
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { BASE_CHAIN, type ReportOptions } from '../compile/desired.ts';
import { programBatches } from '../compile/program.ts';
import { isSynOnlyRule } from '../compile/ruleset.ts';
import type { ListWatch } from '../k8s/client.ts';
import { ClusterStore, type WatchedKind } from '../k8s/store.ts';
import type { TableChange } from '../nft/monitor.ts';
import { formatRange } from '../policy/address.ts';
import { normalizeClusterPolicy } from '../policy/cluster-normalize.ts';
import type { ClusterPolicy } from '../policy/cluster-types.ts';
import { formatIssue, ValidationError } from '../policy/errors.ts';
import type { PodChanges } from '../policy/index.ts';
import { Memo } from '../policy/memo.ts';
import { normalizeNamespace, normalizeNode, normalizePod, normalizePolicy } from '../policy/normalize.ts';
import type { ClusterState, Namespace, Node, Pod, Policy } from '../policy/types.ts';
import { closedState, readLastKnown, writeLastKnown } from './boot.ts';
import { ClusterPolicyReport } from './cluster-policies.ts';
import { ConnectionCutter, type ConntrackAccess, type EstablishedMode } from './cut.ts';
import { CutWorker } from './cut-worker.ts';
import type { LockHolder } from './lock.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { LoggedOnce } from './once.ts';
import type { CommitInfo, Programmer } from './programmer.ts';
import { NodeReconciler, type SyncResult } from './reconciler.ts';
import {
  chainPackets,
  DropReporter,
  KernelCounter,
  type ReportSource,
  suppressedPackets,
} from './reports.ts';
import { BoundedRunner } from './runner.ts';
import { PolicyUsage } from './usage.ts';

export interface AgentOptions {
  nodeName: string;
  /**
   * Called once, when the whole cluster has first been listed and, if this agent writes the table, the
   * first sync has run (programmed or failed): the end of the start-up (see the agent command's heap growth).
   */
  afterStartup?: () => void;
  /** host:port for /metrics, /healthz, /readyz; undefined: no HTTP server. */
  metricsAddr: string | undefined;
  /** Bursts of events are coalesced into syncs at least this far apart. */
  minSyncIntervalMs: number;
  /** Period of the full comparison against the kernel (drift repair). */
  verifyIntervalMs: number;
  /** A watch quiet for this long is restarted. */
  watchQuietMs: number;
  /** Full relist period of every watch. */
  relistIntervalMs: number;
  /** Cap on one netlink batch in bytes (hidden flag --max-batch-bytes; undefined: the socket's limit). */
  maxBatchBytes?: number;
  /** /healthz fails when syncs have failed, a sync has run, or the watches have been down or not
   *  synced, for this long (undefined: the default). */
  livenessTimeoutMs?: number;
  /** Where the last-known pod ranges are kept across restarts (undefined: no state file). */
  stateDir?: string;
  /** Program a closed table when there is none before the first complete list (default true). */
  bootClosed?: boolean;
  /** How long a change notification waits for more of its kind before the verify it schedules. */
  repairDebounceMs?: number;
  /** How often a standby agent tries to take the lock. */
  lockRetryMs?: number;
  /** keep (default): a policy change leaves established connections alone; cut: see cut.ts. */
  established?: EstablishedMode;
  /** Drop reports (--drop-reports and friends); undefined: off, no report rules in the table. */
  reports?: ReportOptions;
  /** How often an optional kind the API does not serve (ClusterNetworkPolicy) is listed again. */
  missingRecheckMs?: number;
  /** Per-policy connection counts (--policy-usage, usage.ts); undefined: off. */
  policyUsage?: { intervalMs: number };
}

/** The agent's links to the node, besides the programmer; each is optional (tests use fakes). */
export interface AgentParts {
  /** Where drop reports come from when options.reports is set (default: the kernel's nflog group). */
  reports?: ReportSource;
  /** Starts watching our table's change notifications (those from `ownPort` may be skipped). */
  monitor?: (
    onChange: (c: TableChange) => void,
    onLost: () => void,
    ownPort: () => number | undefined,
  ) => TableWatch;
  /** One writer per node: without a lock the agent always writes. */
  lock?: {
    tryAcquire(): Promise<boolean>;
    holder(): Promise<LockHolder | undefined>;
    release(): Promise<void>;
  };
  /** The node's pod ranges as the kernel shows them (the CNI bridge), when no state file has them. */
  kernelPodRanges?: () => Promise<string[]>;
  /** The node's conntrack table, for --established=cut (opened on first use). */
  conntrack?: () => ConntrackAccess;
}

/** A running subscription to our table's change notifications. */
export interface TableWatch {
  close(): void;
  /** Stop and restart listening (around our own commits; see quietCommits). */
  pause(): void;
  resume(): void;
}

/** What the node enforces before the agent has programmed a complete table (for logs and /readyz). */
type Before = 'unknown' | 'previous table' | 'boot-closed table' | 'no table';
const BEFORE_TEXT: Record<Before, string> = {
  unknown: 'nothing programmed by this agent yet',
  'previous table': 'the table of a previous run keeps enforcing',
  'boot-closed table': "the boot-closed table keeps this node's pod traffic dropped",
  'no table': "no table: this node's pod traffic is not filtered",
};

import { DEFAULT_AGENT_OPTIONS } from './options.ts';

export { DEFAULT_AGENT_OPTIONS };

export class Agent {
  readonly options: AgentOptions;
  readonly store: ClusterStore;
  readonly metrics: Metrics;
  readonly reconciler: NodeReconciler;
  private readonly log: Logger;
  private readonly runner: BoundedRunner;
  private readonly programmer: Programmer;
  private readonly parts: AgentParts;
  private server: Server | undefined;
  private verifyTimer: NodeJS.Timeout | undefined;
  /** The memos of normalizing, planning and compiling: one per agent, for its lifetime (see Memo). */
  private readonly memo = new Memo();
  /** Problems of objects as they arrived (normalization). */
  private readonly loggedObjects = new LoggedOnce();
  /** Problems the planner reported; forgotten once an object no longer has them. */
  private readonly loggedIssues = new LoggedOnce();
  /** The last ClusterState handed to the reconciler; its lists are rebuilt only for kinds that changed. */
  private lastState: ClusterState | undefined;
  private readonly clusterPolicyReport: ClusterPolicyReport;
  private verifyDue = false;
  /** Why the pending verify was asked for (a notification wins over the timer). */
  private verifyCause: 'verify' | 'notification' = 'verify';
  private verifyDetail: string | undefined;
  private repairTimer: NodeJS.Timeout | undefined;
  private syncedOnce = false;
  /** AgentOptions.afterStartup has been called. */
  private startedUp = false;
  private lastError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** performance.now() of the first of the current run of failed syncs. */
  private failingSince: number | undefined;
  /** performance.now() since the store has not been synced and live (undefined: it is). */
  private storeDownSince: number | undefined;
  private syncStartedAt: number | undefined;
  /** Waiting for the lock: another agent writes this node's table. */
  private standbyFor: LockHolder | 'unknown' | undefined;
  private lockTimer: NodeJS.Timeout | undefined;
  /** Writing: holds the lock (or needs none) and has checked the table it starts from. */
  private active = false;
  private stopped = false;
  private bootPending = false;
  private before: Before = 'unknown';
  private monitor: TableWatch | undefined;
  private reporter: DropReporter | undefined;
  private lastKnownText: string | undefined;
  private readonly startedAt = performance.now();
  /** --established=cut: deletes what the new policies no longer allow, off the sync loop. */
  private cutter: ConnectionCutter | undefined;
  private cuts: CutWorker | undefined;
  private policyUsage: PolicyUsage | undefined;

  constructor(
    client: ListWatch,
    programmer: Programmer,
    log: Logger,
    options: AgentOptions,
    parts: AgentParts = {},
  ) {
    this.options = options;
    this.programmer = quietCommits(programmer, {
      pause: () => this.monitor?.pause(),
      resume: () => this.monitor?.resume(),
      onOtherCommit: (detail) => {
        if (!this.active) return;
        this.verifyDetail ??= detail;
        this.requestVerify('notification');
      },
    });
    this.parts = parts;
    this.log = log.child({ component: 'agent', node: options.nodeName });
    this.metrics = createMetrics();
    if (options.established === 'cut' && !parts.conntrack)
      this.log.warn('--established=cut without access to conntrack: connections are not cut');
    this.clusterPolicyReport = new ClusterPolicyReport(this.log, this.metrics.registry);
    // Objects are normalized as they arrive and only the normalized form is kept; one that cannot be
    // used is logged once and kept as INVALID (skipped, fail-closed).
    const ingest =
      <T>(kind: string, normalize: (raw: unknown) => T) =>
      (raw: unknown): T | typeof INVALID => {
        try {
          return normalize(raw);
        } catch (error) {
          // Normalization errors name the object and the field; anything else gets the kind.
          const message = (error as Error).message;
          const text = error instanceof ValidationError ? message : `${kind}: ${message}`;
          if (this.loggedObjects.first(text)) this.logIssue(text);
          return INVALID;
        }
      };
    this.store = new ClusterStore(client, log, {
      quietMs: options.watchQuietMs,
      resyncMs: options.relistIntervalMs,
      ...(options.missingRecheckMs === undefined ? {} : { missingRecheckMs: options.missingRecheckMs }),
      ingest: {
        pods: ingest('Pod', (raw) => normalizeWatchedPod(raw, this.memo)),
        namespaces: ingest('Namespace', (raw) => normalizeNamespace(raw, this.memo)),
        policies: ingest('NetworkPolicy', normalizePolicy),
        nodes: ingest('Node', normalizeNode),
        clusterPolicies: ingest('ClusterNetworkPolicy', normalizeClusterPolicy),
      },
      rawIngest: ['pods'],
    });
    this.reconciler = new NodeReconciler(
      options.nodeName,
      this.programmer,
      this.programOptions(),
      this.memo,
      {
        ...(options.reports ? { reports: options.reports } : {}),
        // Cut mode: a cut connection must not come back through loose pickup (desiredState requireSyn).
        ...(options.established === 'cut' ? { requireSyn: true } : {}),
      },
    );
    this.runner = new BoundedRunner(() => this.run(), options.minSyncIntervalMs);
    this.store.onChange(() => this.runner.request());
  }

  async start(): Promise<void> {
    this.log.info({ options: this.options }, 'starting');
    // Until the first full sync, an existing table from a previous run keeps enforcing: nothing is
    // programmed before every kind has been listed, and that sync replaces the table. Without a table,
    // the boot-closed one is programmed first (see boot()).
    this.store.start();
    if (this.options.metricsAddr) await this.listen(this.options.metricsAddr);
    // Verification goes through the runner like every sync: never two batches in flight.
    this.verifyTimer = setInterval(() => this.requestVerify('verify'), this.options.verifyIntervalMs);
    this.verifyTimer.unref();
    try {
      this.monitor = this.parts.monitor?.(
        (c) => this.onTableChange(c),
        () => this.onNotificationsLost(),
        () => this.programmer.portId,
      );
    } catch (error) {
      this.log.error(
        { err: (error as Error).message },
        'no table notifications: changes by others are found by the periodic verification only',
      );
    }
    await this.takeLock();
  }

  /**
   * The drop report listener, once this agent writes the table (a standby's bind would only fail against
   * the writer's: it binds when it takes over).
   */
  private startReports(): void {
    const reports = this.options.reports;
    if (reports === undefined || this.reporter !== undefined) return;
    this.reporter = new DropReporter({
      group: reports.group,
      node: this.options.nodeName,
      log: this.log,
      metrics: this.metrics,
      enforced: () => this.reconciler.enforced,
      readSuppressed: () => suppressedPackets(this.readChain),
      ...(this.parts.reports ? { source: this.parts.reports } : {}),
      onReport: (r) => this.policyUsage?.denied(r),
    });
    this.reporter.start();
  }

  /** Per-policy counts, once this agent writes the table (a standby's would count the same connections twice). */
  private startUsage(): void {
    const o = this.options.policyUsage;
    if (o === undefined || this.policyUsage !== undefined) return;
    this.policyUsage = new PolicyUsage({
      nodeName: this.options.nodeName,
      log: this.log,
      metrics: this.metrics,
      index: () => this.reconciler.clusterIndex,
      conntrack: this.parts.conntrack,
      intervalMs: o.intervalMs,
    });
    this.policyUsage.start();
  }

  /** Per-policy counts (undefined: off, or not started yet). */
  get usage(): PolicyUsage | undefined {
    return this.policyUsage;
  }

  private readonly readChain = async (chain: string) => this.programmer.readChainRules?.(chain);
  private pickupsDropped: KernelCounter | undefined;

  /** --established=cut: the syn-only rules' drops, into tollgate_established_pickups_dropped_total. */
  private async refreshPickupsDropped(): Promise<void> {
    if (this.options.established !== 'cut') return;
    const now = await chainPackets(this.readChain, [BASE_CHAIN], isSynOnlyRule).catch(() => undefined);
    this.pickupsDropped ??= new KernelCounter(this.metrics.pickupsDropped);
    this.pickupsDropped.update(now);
  }

  /** Drop reports (undefined: off, or not started yet). */
  get reports(): DropReporter | undefined {
    return this.reporter;
  }

  /** Stops watching and serving; the table stays in place so enforcement continues. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.reporter?.stop();
    this.policyUsage?.stop();
    clearInterval(this.verifyTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.repairTimer);
    clearTimeout(this.lockTimer);
    this.monitor?.close();
    this.store.stop();
    await this.runner.stop();
    this.cuts?.stop();
    this.cutter?.close();
    await this.parts.lock?.release();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.log.info('stopped; the table stays in place');
  }

  get ready(): boolean {
    return (
      this.active &&
      this.syncedOnce &&
      this.store.live &&
      this.lastError === undefined &&
      this.clusterPolicyReport.notReady() === undefined
    );
  }

  /** Another agent writes this node's table; this one watches and waits to take over. */
  get standby(): boolean {
    return this.standbyFor !== undefined;
  }

  /** Takes the node's lock, or waits as a standby (watching, not writing) until it is free. */
  private async takeLock(): Promise<void> {
    const lock = this.parts.lock;
    if (this.stopped) return;
    if (lock && !(await this.tryLock(lock))) {
      const wasStandby = this.standbyFor !== undefined;
      this.standbyFor = (await lock.holder()) ?? 'unknown';
      this.metrics.standby.set(1);
      if (!wasStandby) {
        this.log.warn(
          { holder: this.standbyFor },
          "standby: another agent writes this node's table; watching until it exits",
        );
        // The one write a standby makes: a node with no table at all is closed. A live holder has
        // programmed one (or is about to, and then replaces this one); any process in the namespace can
        // bind the lock's name, and such a squatter must not leave the node open.
        await this.boot().catch((error: Error) =>
          this.log.error({ err: error.message }, 'boot-closed table failed'),
        );
      }
      if (this.stopped) return;
      this.lockTimer = setTimeout(() => void this.takeLock(), this.options.lockRetryMs ?? 1000);
      this.lockTimer.unref();
      return;
    }
    if (this.standbyFor !== undefined) {
      this.log.warn({ previous: this.standbyFor }, 'took over: the other agent is gone');
      this.standbyFor = undefined;
    }
    this.metrics.standby.set(0);
    this.active = true;
    this.startUsage();
    this.startReports();
    this.bootPending = true;
    this.runner.request();
  }

  /** The lock, or true when it cannot be used at all (then this agent writes, as without a lock). */
  private async tryLock(lock: NonNullable<AgentParts['lock']>): Promise<boolean> {
    try {
      return await lock.tryAcquire();
    } catch (error) {
      this.log.error({ err: (error as Error).message }, 'the node lock is unusable; writing without it');
      return true;
    }
  }

  /**
   * Before the first complete program: leaves an existing table as it is (a restart: it keeps
   * enforcing), and otherwise programs the boot-closed table for the node's pod ranges (from the state
   * file, else from the kernel), so that a rebooted node is closed, not open, until the first sync.
   */
  private async boot(): Promise<void> {
    if ((await this.programmer.readTable()) !== undefined) {
      if (this.before === 'unknown') this.before = 'previous table';
      return;
    }
    if (this.options.bootClosed === false) {
      this.before = 'no table';
      this.log.warn('no table, and --boot-closed=false: pod traffic is not filtered until the first sync');
      return;
    }
    let ranges: string[] = [];
    let source = 'state file';
    try {
      if (this.options.stateDir !== undefined)
        ranges = readLastKnown(this.options.stateDir, this.options.nodeName)?.podCIDRs ?? [];
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, 'the state file is unusable; asking the kernel');
    }
    if (ranges.length === 0 && this.parts.kernelPodRanges) {
      source = 'CNI bridge';
      ranges = await this.parts.kernelPodRanges().catch((error: Error) => {
        this.log.warn({ err: error.message }, 'cannot read the CNI bridge addresses');
        return [];
      });
    }
    if (ranges.length === 0) {
      this.before = 'no table';
      this.log.warn('no table and no known pod ranges: pod traffic is not filtered until the first sync');
      return;
    }
    const program = programBatches({ kernel: undefined }, closedState(ranges), this.programOptions());
    for (const tx of program.batches) await this.programmer.commit(tx);
    this.before = 'boot-closed table';
    this.log.warn({ podCIDRs: ranges, source }, 'boot-closed table programmed');
  }

  private programOptions() {
    return this.options.maxBatchBytes === undefined ? {} : { maxBatchBytes: this.options.maxBatchBytes };
  }

  /** A notification of a change to our table: another process's is verified (and repaired) at once. */
  private onTableChange(change: TableChange): void {
    if (change.portId === this.programmer.portId) return;
    this.metrics.foreignChanges.inc();
    if (!this.active) return;
    const detail = `${change.process ?? 'unknown process'} (pid ${change.pid ?? '?'}, port ${change.portId}): ${change.summary}`;
    this.log.warn({ detail }, 'table changed by another process');
    this.verifyDetail = detail;
    this.requestVerify('notification');
  }

  /** The kernel dropped notifications (a burst larger than the receive buffer: often a large commit of
   *  our own, which notifies per element): whether someone else changed the table is unknown. */
  private onNotificationsLost(): void {
    this.metrics.notificationsLost.inc();
    if (!this.active) return;
    this.log.debug('table notifications lost; verifying');
    this.verifyDetail ??= 'notifications lost';
    this.requestVerify('notification');
  }

  /** Asks for a full comparison with the kernel; one from a notification waits a moment for the rest of
   *  a burst (a script of several nft commands is one repair). */
  private requestVerify(cause: 'verify' | 'notification'): void {
    if (cause === 'notification') this.verifyCause = 'notification';
    const due = () => {
      this.verifyDue = true;
      this.runner.request();
    };
    if (cause === 'verify') {
      due();
      return;
    }
    if (this.repairTimer !== undefined) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = undefined;
      due();
    }, this.options.repairDebounceMs ?? 20);
  }

  /**
   * The store's objects as a ClusterState, and the pods that changed since the previous call. A kind
   * without changes keeps its list (the same array: the index sees it is unchanged at once).
   */
  private state(): { state: ClusterState; podChanges: PodChanges } {
    const r = this.store.reflectors;
    const valid = <T>(items: Iterable<unknown>): T[] => {
      const out: T[] = [];
      for (const item of items) if (item !== INVALID) out.push(item as T);
      return out;
    };
    // Read from the store as the index iterates (at once, in the same sync): no map of every pod is
    // built for the first sync, whose index is built from the whole list and ignores the changes.
    const changedPods = r.pods.takeChanges();
    const podChanges: PodChanges = {
      *[Symbol.iterator]() {
        for (const key of changedPods) {
          const pod = r.pods.items.get(key);
          yield [key, pod === INVALID ? undefined : (pod as Pod | undefined)] as const;
        }
      },
    };
    const last = this.lastState;
    const changed = (kind: 'namespaces' | 'policies' | 'nodes' | 'clusterPolicies') =>
      r[kind].takeChanges().size > 0;
    // The pod list is only read when the reconciler builds its index from scratch (first sync, or after
    // a failed one): with podChanges it never is, so it is built on demand, once per state (from the
    // store as it is then: a later change is in the next state's podChanges anyway).
    let pods: Pod[] | undefined;
    const state: ClusterState = {
      namespaces:
        !last || changed('namespaces')
          ? new Map(valid<Namespace>(r.namespaces.items.values()).map((n) => [n.name, n]))
          : last.namespaces,
      nodes: !last || changed('nodes') ? valid<Node>(r.nodes.items.values()) : last.nodes,
      get pods() {
        pods ??= valid<Pod>(r.pods.items.values());
        return pods;
      },
      policies: !last || changed('policies') ? valid<Policy>(r.policies.items.values()) : last.policies,
      // Forbidden: the last listed policies stay enforced (ClusterPolicyReport.notReady says why).
      clusterPolicies:
        !last || (changed('clusterPolicies') && r.clusterPolicies.missing !== 'forbidden')
          ? valid<ClusterPolicy>(r.clusterPolicies.items.values())
          : last.clusterPolicies,
    };
    this.clusterPolicyReport.update(state.clusterPolicies ?? [], r.clusterPolicies.missing);
    this.lastState = state;
    return { state, podChanges };
  }

  private logIssue(text: string): void {
    this.log.warn(
      { problem: text },
      'invalid object: the bad part allows nothing, everything else is enforced',
    );
  }

  /** One run of the runner: the boot check, a sync when the store is complete, a verify when due. Never
   *  rejects (the runner does not catch, and an unhandled rejection would end the process). */
  private async run(): Promise<void> {
    try {
      await this.runSteps();
    } catch (error) {
      this.log.error({ err: (error as Error).message }, 'internal error in the sync loop; retrying');
      this.scheduleRetry();
    }
  }

  private async runSteps(): Promise<void> {
    try {
      await this.steps();
    } finally {
      if (!this.startedUp && this.store.synced) {
        this.startedUp = true;
        const t0 = performance.now();
        this.options.afterStartup?.();
        const heap = process.memoryUsage();
        this.log.info(
          {
            hookMs: Math.round(performance.now() - t0),
            heapUsedMb: Math.round(heap.heapUsed / 2 ** 20),
            rssMb: Math.round(heap.rss / 2 ** 20),
          },
          'start-up done',
        );
      }
    }
  }

  private async steps(): Promise<void> {
    if (!this.active) return;
    if (this.bootPending) {
      try {
        await this.boot();
        this.bootPending = false;
      } catch (error) {
        this.log.error({ err: (error as Error).message }, 'boot-closed table failed');
        this.scheduleRetry();
      }
    }
    // Never program a partial view of the cluster.
    if (this.store.synced) await this.sync();
    if (this.verifyDue) {
      this.verifyDue = false;
      const cause = this.verifyCause;
      const detail = this.verifyDetail;
      this.verifyCause = 'verify';
      this.verifyDetail = undefined;
      await this.verify(cause, detail);
    }
  }

  private scheduleRetry(): void {
    const retryMs = Math.min(30_000, 100 * 2 ** Math.min(this.failures, 9));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.runner.request(), retryMs);
    this.retryTimer.unref();
  }

  private async sync(): Promise<void> {
    const since = this.runner.pendingSince;
    this.runner.pendingSince = undefined;
    const start = performance.now();
    try {
      const { state, podChanges } = this.state();
      const stateMs = performance.now() - start;
      this.syncStartedAt = start;
      const result = await this.reconciler.sync(state, { podChanges }).finally(() => {
        this.syncStartedAt = undefined;
      });
      const seconds = (performance.now() - start) / 1000;
      this.metrics.syncDuration.observe({ kind: result.kind }, seconds);
      this.metrics.syncs.inc({ kind: result.kind, result: 'ok' });
      if (since !== undefined && result.kind !== 'none')
        this.metrics.eventToProgrammed.observe((performance.now() - since) / 1000);
      this.metrics.programmed.set({ what: 'chains' }, result.chains);
      this.metrics.programmed.set({ what: 'sets' }, result.sets);
      this.metrics.programmed.set({ what: 'elements' }, result.elements);
      this.metrics.programmed.set({ what: 'pods' }, result.pods);
      this.metrics.invalidObjects.set(result.issues.length);
      const texts = new Set(result.issues.map(formatIssue));
      this.loggedIssues.keepOnly(texts);
      for (const text of texts) if (this.loggedIssues.first(text)) this.logIssue(text);
      this.recordRecovery(result);
      this.recordWatchMetrics();
      if (result.kind === 'none') this.log.debug({ ms: Math.round(result.ms) }, 'nothing to change');
      else {
        this.log.info(
          {
            sync: result.kind,
            from: result.from,
            pods: result.pods,
            chains: result.chains,
            sets: result.sets,
            elements: result.elements,
            messages: result.commit?.messages ?? 0,
            ms: Math.round(result.ms),
            phases: roundAll({ state: stateMs, ...result.phases }),
            queuedMs: since === undefined ? undefined : Math.round((start - since) * 10) / 10,
            changes: result.counts,
          },
          'synced',
        );
      }
      this.syncedOnce = true;
      this.lastError = undefined;
      this.failures = 0;
      this.failingSince = undefined;
      this.metrics.consecutiveFailures.set(0);
      this.metrics.lastSuccess.set(Date.now() / 1000);
      this.rememberPodRanges(state);
      this.cutConnections(result);
    } catch (error) {
      this.failures++;
      this.failingSince ??= performance.now();
      this.lastError = (error as Error).message;
      this.metrics.netlinkErrors.inc();
      this.metrics.consecutiveFailures.set(this.failures);
      this.metrics.syncs.inc({ kind: 'unknown', result: 'error' });
      const retryMs = Math.min(30_000, 100 * 2 ** Math.min(this.failures, 9));
      this.log.error(
        { err: this.lastError, retryInMs: retryMs, failures: this.failures, enforcing: this.enforcing() },
        'sync failed',
      );
      this.runner.pendingSince ??= since;
      this.scheduleRetry();
    }
  }

  /** --established=cut, after a sync that changed the table: asks for a pass and never waits for it. */
  private cutConnections(result: SyncResult): void {
    if (this.options.established !== 'cut' || !this.parts.conntrack || result.kind === 'none') return;
    try {
      this.cutter ??= new ConnectionCutter(
        this.parts.conntrack(),
        this.log,
        this.metrics,
        this.options.nodeName,
      );
    } catch (error) {
      // The table is programmed; only the cut is missing. Tried again after the next sync.
      this.metrics.connectionCutErrors.inc();
      this.log.error(
        { err: (error as Error).message },
        'cannot open the conntrack table: connections are not cut',
      );
      return;
    }
    this.cuts ??= new CutWorker(this.cutter, () => this.reconciler.clusterIndex, this.metrics, this.log);
    this.cuts.request(`${result.kind} sync`);
  }

  /** What the node enforces while the agent cannot program what the policies say. */
  private enforcing(): string {
    return this.reconciler.lastComplete !== undefined
      ? 'the last complete program keeps enforcing (verify restores it if it is changed)'
      : BEFORE_TEXT[this.before];
  }

  /** A sync that had to start from the kernel's listing because our record was wrong is a repair. */
  private recordRecovery(result: SyncResult): void {
    if (result.recovered === undefined && !(result.from === 'kernel' && this.failures > 0)) return;
    if (result.recovered !== undefined) this.metrics.netlinkErrors.inc(); // the kernel did reject a batch
    this.metrics.repairs.inc({ cause: 'recovery' });
    this.log.warn(
      {
        cause: 'recovery',
        detail: result.recovered ?? `after ${this.failures} failed syncs: ${this.lastError}`,
      },
      'repaired',
    );
  }

  /** Keeps this node's pod ranges in the state file, for the boot-closed table after a reboot. */
  private rememberPodRanges(state: ClusterState): void {
    const dir = this.options.stateDir;
    if (dir === undefined) return;
    const node = state.nodes.find((n) => n.name === this.options.nodeName);
    if (node === undefined || node.podCIDRs.length === 0) return;
    const podCIDRs = node.podCIDRs.map(cidrText);
    const text = JSON.stringify(podCIDRs);
    if (text === this.lastKnownText) return;
    try {
      writeLastKnown(dir, { node: this.options.nodeName, podCIDRs });
      this.lastKnownText = text;
    } catch (error) {
      this.lastKnownText = text; // once per change, not at every sync
      this.log.warn({ err: (error as Error).message }, 'cannot write the state file');
    }
  }

  private recordWatchMetrics(): void {
    for (const [kind, r] of Object.entries(this.store.reflectors) as [
      WatchedKind,
      (typeof this.store.reflectors)[WatchedKind],
    ][]) {
      this.metrics.objectsWatched.set({ kind }, r.items.size);
      this.metrics.watchRestarts.set({ kind }, r.stats.watchRestarts);
    }
  }

  /**
   * Full comparison with the kernel; a difference (someone changed our table) is repaired. Runs also
   * while syncs fail (then it restores the last complete program). Before any complete program, a
   * missing table is closed again (the boot check).
   */
  private async verify(cause: 'verify' | 'notification', trigger: string | undefined): Promise<void> {
    if (this.reconciler.lastComplete === undefined) {
      // Nothing complete to restore yet: the boot check closes a table that has gone.
      this.bootPending = true;
      this.runner.request();
      return;
    }
    try {
      const r = await this.reconciler.verify();
      if (!r.drift) return;
      if (r.repaired) {
        this.metrics.repairs.inc({ cause });
        this.log.warn({ cause, detail: r.detail, ...(trigger ? { trigger } : {}) }, 'repaired');
      } else this.log.error({ cause, detail: r.detail }, 'repair failed');
    } catch (error) {
      this.log.error({ err: (error as Error).message }, 'verify failed');
    }
  }

  /** Why /healthz fails (undefined: healthy): the agent should have made progress and has not. */
  health(now = performance.now()): string | undefined {
    if (this.standby) return undefined;
    const limit = this.options.livenessTimeoutMs ?? DEFAULT_AGENT_OPTIONS.livenessTimeoutMs;
    const seconds = (since: number) => Math.round((now - since) / 1000);
    if (this.failingSince !== undefined && now - this.failingSince > limit)
      return `syncs have failed for ${seconds(this.failingSince)} s (${this.failures} in a row): ${this.lastError}`;
    if (this.syncStartedAt !== undefined && now - this.syncStartedAt > limit)
      return `a sync has been running for ${seconds(this.syncStartedAt)} s`;
    const storeOk = this.store.synced && this.store.live;
    if (storeOk) this.storeDownSince = undefined;
    else this.storeDownSince ??= this.syncedOnce ? now : this.startedAt;
    if (this.storeDownSince !== undefined && now - this.storeDownSince > limit)
      return `${this.store.synced ? 'a watch has been down' : 'the cluster has not been listed completely'} for ${seconds(this.storeDownSince)} s`;
    return undefined;
  }

  /** Why /readyz fails (undefined: ready). */
  notReady(): string | undefined {
    if (this.standbyFor !== undefined)
      return `standby: another agent writes this node's table${this.standbyFor === 'unknown' ? '' : ` (pid ${this.standbyFor.pid})`}`;
    if (this.lastError !== undefined)
      return `${this.syncedOnce ? 'last sync failed' : 'first sync failed'}: ${this.lastError}`;
    if (!this.syncedOnce)
      return `not synced yet: ${this.store.synced ? 'the first sync has not completed' : 'waiting for the first complete list of the cluster'}; ${BEFORE_TEXT[this.before]}`;
    if (!this.store.live) return 'a watch is down';
    return this.clusterPolicyReport.notReady();
  }

  private listen(addr: string): Promise<void> {
    const colon = addr.lastIndexOf(':');
    const host = addr.slice(0, colon).replace(/^\[|\]$/g, '') || '0.0.0.0';
    const port = Number(addr.slice(colon + 1));
    this.server = createServer((req, res) => {
      const send = (code: number, body: string, type = 'text/plain') => {
        res.writeHead(code, { 'content-type': type });
        res.end(body);
      };
      if (req.url === '/healthz') {
        const why = this.health();
        return why === undefined ? send(200, 'ok\n') : send(503, `${why}\n`);
      }
      if (req.url === '/readyz') {
        const why = this.notReady();
        // Not a reason to be unready (see DropReporter): shown, not failed.
        const reports = this.reporter?.problem;
        const usage = this.policyUsage?.problem;
        const extra =
          (reports === undefined ? '' : `drop reports: ${reports}\n`) +
          (usage === undefined ? '' : `policy usage: ${usage}\n`);
        return why === undefined ? send(200, `ok\n${extra}`) : send(503, `${why}\n${extra}`);
      }
      if (req.url === '/metrics') {
        this.recordWatchMetrics();
        void Promise.all([this.reporter?.refreshMetrics(), this.refreshPickupsDropped()])
          .then(() => this.metrics.registry.metrics())
          .then((text) => send(200, text, this.metrics.registry.contentType));
        return;
      }
      send(404, 'not found\n');
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
  }

  /** Where /metrics, /healthz and /readyz are served (undefined: no server). */
  get httpAddress(): { address: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { address: a.address, port: a.port } : undefined;
  }

  /** Resolves when no sync is running or pending (tests, benchmarks). */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  /** Resolves when no cut pass runs or waits (tests). */
  cutsIdle(): Promise<void> {
    return this.cuts?.idle() ?? Promise.resolve();
  }
}

/**
 * Our commits with the notifications paused: while nobody listens the kernel builds no notifications
 * (a large batch of ours would make one per element, only to be skipped: 2-3x the commit time and ~15 MB
 * of RSS after a full sync of 10,000 pods). The ruleset generation covers the pause: it is read before
 * pausing and after resuming, and the commit reports the generation it was built against and the one
 * after it; any other step means another process committed meanwhile, and `onOtherCommit` schedules the
 * verify its notification would have. Without a generation (a fake programmer), commits pass through.
 */
function quietCommits(
  inner: Programmer,
  hooks: { pause(): void; resume(): void; onOtherCommit(detail: string): void },
): Programmer {
  const generation = inner.generation?.bind(inner);
  if (generation === undefined) return inner;
  return {
    get portId() {
      return inner.portId;
    },
    generation,
    listTable: () => inner.listTable(),
    readTable: () => inner.readTable(),
    // Without it the report and SYN-drop counters were never read through this wrapper.
    ...(inner.readChainRules ? { readChainRules: (chain: string) => inner.readChainRules!(chain) } : {}),
    close: () => inner.close(),
    async commit(tx) {
      const first = await generation();
      const check = async (ok: boolean, g: CommitInfo['generations']) => {
        const last = await generation().catch(() => -1);
        // Ours: exactly one step, built against the generation read before pausing, nothing after it.
        const clean = ok
          ? (g === undefined || (g.before === first && g.attempts === 1 && g.after === first + 1)) &&
            last === first + 1
          : last === first;
        if (!clean)
          hooks.onOtherCommit(
            `another commit while ours ran (generation ${first} before, ${g ? `${g.before}..${g.after} ours, ` : ''}${last} after)`,
          );
      };
      hooks.pause();
      let info: CommitInfo;
      try {
        info = await inner.commit(tx);
      } catch (error) {
        hooks.resume();
        await check(false, undefined);
        throw error;
      }
      hooks.resume();
      await check(true, info.generations);
      return info;
    },
  };
}

/**
 * normalizePod for a watched pod: changes are reported by the store's key (namespace/name), which must
 * be the pod's own key, so a pod without a namespace (the API server never sends one) is refused.
 */
function normalizeWatchedPod(raw: unknown, memo: Memo): Pod {
  const metadata = (raw as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
  if (typeof metadata?.namespace !== 'string' || metadata.namespace === '')
    throw new ValidationError([
      { object: `Pod ${String(metadata?.name)}`, field: 'metadata.namespace', message: 'is required' },
    ]);
  return normalizePod(raw, memo);
}

/** What the store keeps of an object that cannot be used (its problem was logged when it arrived). */
const INVALID: unique symbol = Symbol('invalid object');

/** A pod CIDR range back to prefix notation (pod CIDRs are always prefixes). */
function cidrText(r: { family: 4 | 6; first: bigint; last: bigint }): string {
  const bits = r.family === 4 ? 32 : 128;
  const prefix = bits - ((r.last - r.first + 1n).toString(2).length - 1);
  return `${formatRange({ family: r.family, first: r.first, last: r.first })}/${prefix}`;
}

const roundAll = (o: Record<string, number>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
