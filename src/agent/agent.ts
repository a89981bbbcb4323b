// The per-node agent: watches the cluster through a ClusterStore and keeps the node's `inet tollgate`
// table equal to what the policies say, one atomic batch per change. Level-triggered: every sync
// recomputes the desired state from the whole store and diffs it against what was programmed.
// Also serves /healthz, /readyz and /metrics. Never exits the process (src/cli does).
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { ListWatch } from '../k8s/client.ts';
import { ClusterStore, type WatchedKind } from '../k8s/store.ts';
import { formatIssue } from '../policy/errors.ts';
import { normalizeNamespace, normalizeNode, normalizePod, normalizePolicy } from '../policy/normalize.ts';
import type { ClusterState, Namespace } from '../policy/types.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import type { Programmer } from './programmer.ts';
import { NodeReconciler } from './reconciler.ts';
import { BoundedRunner } from './runner.ts';

export interface AgentOptions {
  nodeName: string;
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
}

export { DEFAULT_AGENT_OPTIONS } from './options.ts';

export class Agent {
  readonly options: AgentOptions;
  readonly store: ClusterStore;
  readonly metrics: Metrics;
  readonly reconciler: NodeReconciler;
  private readonly log: Logger;
  private readonly runner: BoundedRunner;
  private server: Server | undefined;
  private verifyTimer: NodeJS.Timeout | undefined;
  private readonly loggedIssues = new Set<string>();
  private readonly normalized = new WeakMap<object, unknown>();
  private verifyDue = false;
  private syncedOnce = false;
  private lastError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(client: ListWatch, programmer: Programmer, log: Logger, options: AgentOptions) {
    this.options = options;
    this.log = log.child({ component: 'agent', node: options.nodeName });
    this.metrics = createMetrics();
    this.store = new ClusterStore(client, log, {
      quietMs: options.watchQuietMs,
      resyncMs: options.relistIntervalMs,
    });
    this.reconciler = new NodeReconciler(options.nodeName, programmer);
    this.runner = new BoundedRunner(() => this.sync(), options.minSyncIntervalMs);
    this.store.onChange(() => this.runner.request());
  }

  async start(): Promise<void> {
    this.log.info({ options: this.options }, 'starting');
    // Until the first full sync, an existing table from a previous run keeps enforcing: nothing is
    // programmed before every kind has been listed, and that sync replaces the table in one batch.
    this.store.start();
    if (this.options.metricsAddr) await this.listen(this.options.metricsAddr);
    // Verification goes through the runner like every sync: never two batches in flight.
    this.verifyTimer = setInterval(() => {
      this.verifyDue = true;
      this.runner.request();
    }, this.options.verifyIntervalMs);
    this.verifyTimer.unref();
  }

  /** Stops watching and serving; the table stays in place so enforcement continues. */
  async stop(): Promise<void> {
    clearInterval(this.verifyTimer);
    clearTimeout(this.retryTimer);
    this.store.stop();
    await this.runner.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.log.info('stopped; the table stays in place');
  }

  get ready(): boolean {
    return this.syncedOnce && this.store.live && this.lastError === undefined;
  }

  /**
   * The store's objects as normalized state; an object that cannot be used is logged once and skipped.
   * Normalized objects are cached by identity: the store replaces an object when it changes, so a sync
   * only normalizes what changed since the last one.
   */
  private state(): ClusterState {
    const o = this.store.objects();
    const keep = <T>(items: unknown[], fn: (x: unknown) => T, kind: string): T[] => {
      const out: T[] = [];
      for (const item of items) {
        const cached = this.normalized.get(item as object);
        if (cached !== undefined) {
          out.push(cached as T);
          continue;
        }
        try {
          const n = fn(item);
          this.normalized.set(item as object, n);
          out.push(n);
        } catch (error) {
          this.logIssueOnce(`${kind}: ${(error as Error).message}`);
        }
      }
      return out;
    };
    const namespaces = keep(o.namespaces, normalizeNamespace, 'Namespace');
    return {
      namespaces: new Map<string, Namespace>(namespaces.map((n) => [n.name, n])),
      nodes: keep(o.nodes, normalizeNode, 'Node'),
      pods: keep(o.pods, normalizePod, 'Pod'),
      policies: keep(o.policies, normalizePolicy, 'NetworkPolicy'),
    };
  }

  private logIssueOnce(text: string): void {
    if (this.loggedIssues.has(text)) return;
    this.loggedIssues.add(text);
    this.log.warn(
      { problem: text },
      'invalid object: the bad part allows nothing, everything else is enforced',
    );
  }

  private async sync(): Promise<void> {
    if (!this.store.synced) return; // never program a partial view of the cluster
    const since = this.runner.pendingSince;
    this.runner.pendingSince = undefined;
    const start = performance.now();
    try {
      const result = await this.reconciler.sync(this.state());
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
      for (const issue of result.issues) this.logIssueOnce(formatIssue(issue));
      this.recordWatchMetrics();
      if (result.kind === 'none') this.log.debug({ ms: Math.round(result.ms) }, 'nothing to change');
      else {
        this.log.info(
          {
            sync: result.kind,
            pods: result.pods,
            chains: result.chains,
            sets: result.sets,
            elements: result.elements,
            messages: result.commit?.messages ?? 0,
            ms: Math.round(result.ms),
            phases: roundAll(result.phases),
            changes: result.counts,
          },
          'synced',
        );
      }
      this.syncedOnce = true;
      this.lastError = undefined;
      this.failures = 0;
      if (this.verifyDue) {
        this.verifyDue = false;
        await this.verify();
      }
    } catch (error) {
      this.failures++;
      this.lastError = (error as Error).message;
      this.metrics.netlinkErrors.inc();
      this.metrics.syncs.inc({ kind: 'unknown', result: 'error' });
      const retryMs = Math.min(30_000, 100 * 2 ** Math.min(this.failures, 9));
      this.log.error(
        { err: this.lastError, retryInMs: retryMs },
        'sync failed; nothing was applied, the previous table keeps enforcing',
      );
      this.runner.pendingSince ??= since;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.runner.request(), retryMs);
      this.retryTimer.unref();
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

  /** Full comparison with the kernel; a difference (someone changed our table) is repaired in one batch. */
  private async verify(): Promise<void> {
    if (!this.syncedOnce) return;
    try {
      const r = await this.reconciler.verify();
      if (r.drift)
        this.log.warn({ detail: r.detail }, 'the table differed from what was programmed; repaired');
    } catch (error) {
      this.log.error({ err: (error as Error).message }, 'verify failed');
    }
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
      if (req.url === '/healthz') return send(200, 'ok\n');
      if (req.url === '/readyz') {
        if (this.ready) return send(200, 'ok\n');
        const why = !this.syncedOnce
          ? 'not synced yet'
          : !this.store.live
            ? 'a watch is down'
            : `last sync failed: ${this.lastError}`;
        return send(503, `${why}\n`);
      }
      if (req.url === '/metrics') {
        this.recordWatchMetrics();
        void this.metrics.registry
          .metrics()
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

  /** Resolves when no sync is running or pending (tests, benchmarks). */
  idle(): Promise<void> {
    return this.runner.idle();
  }
}

const roundAll = (o: Record<string, number>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
