// The per-node agent: watches the cluster through a ClusterStore and keeps the node's `inet tollgate`
// table equal to what the policies say, one atomic batch per change. Level-triggered: every sync
// recomputes the desired state from the whole store and diffs it against what was programmed. The store
// keeps objects in normalized form only, and reports which pods changed, so a sync's cost follows the
// change rather than the number of pods.
// Also serves /healthz, /readyz and /metrics. Never exits the process (src/cli does).
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { ListWatch } from '../k8s/client.ts';
import { ClusterStore, type WatchedKind } from '../k8s/store.ts';
import { formatIssue, ValidationError } from '../policy/errors.ts';
import type { PodChanges } from '../policy/index.ts';
import { normalizeNamespace, normalizeNode, normalizePod, normalizePolicy } from '../policy/normalize.ts';
import type { ClusterState, Namespace, Node, Pod, Policy } from '../policy/types.ts';
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
  /** Cap on one netlink batch in bytes (hidden flag --max-batch-bytes; undefined: the socket's limit). */
  maxBatchBytes?: number;
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
  /** The last ClusterState handed to the reconciler; its lists are rebuilt only for kinds that changed. */
  private lastState: ClusterState | undefined;
  private verifyDue = false;
  private syncedOnce = false;
  private lastError: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(client: ListWatch, programmer: Programmer, log: Logger, options: AgentOptions) {
    this.options = options;
    this.log = log.child({ component: 'agent', node: options.nodeName });
    this.metrics = createMetrics();
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
          this.logIssueOnce(error instanceof ValidationError ? message : `${kind}: ${message}`);
          return INVALID;
        }
      };
    this.store = new ClusterStore(client, log, {
      quietMs: options.watchQuietMs,
      resyncMs: options.relistIntervalMs,
      ingest: {
        pods: ingest('Pod', normalizeWatchedPod),
        namespaces: ingest('Namespace', normalizeNamespace),
        policies: ingest('NetworkPolicy', normalizePolicy),
        nodes: ingest('Node', normalizeNode),
      },
    });
    this.reconciler = new NodeReconciler(options.nodeName, programmer, {
      ...(options.maxBatchBytes === undefined ? {} : { maxBatchBytes: options.maxBatchBytes }),
    });
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
    const podChanges = new Map<string, Pod | undefined>();
    for (const key of r.pods.takeChanges()) {
      const pod = r.pods.items.get(key);
      podChanges.set(key, pod === INVALID ? undefined : (pod as Pod | undefined));
    }
    const last = this.lastState;
    const changed = (kind: 'namespaces' | 'policies' | 'nodes') => r[kind].takeChanges().size > 0;
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
    };
    this.lastState = state;
    return { state, podChanges };
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
      const { state, podChanges } = this.state();
      const stateMs = performance.now() - start;
      const result = await this.reconciler.sync(state, { podChanges });
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

/**
 * normalizePod for a watched pod: changes are reported by the store's key (namespace/name), which must
 * be the pod's own key, so a pod without a namespace (the API server never sends one) is refused.
 */
function normalizeWatchedPod(raw: unknown): Pod {
  const metadata = (raw as { metadata?: { name?: unknown; namespace?: unknown } }).metadata;
  if (typeof metadata?.namespace !== 'string' || metadata.namespace === '')
    throw new ValidationError([
      { object: `Pod ${String(metadata?.name)}`, field: 'metadata.namespace', message: 'is required' },
    ]);
  return normalizePod(raw);
}

/** What the store keeps of an object that cannot be used (its problem was logged when it arrived). */
const INVALID: unique symbol = Symbol('invalid object');

const roundAll = (o: Record<string, number>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10]));
