// Keeps an in-memory copy of one resource kind: paged list, then watch from the list's resourceVersion.
// Never stalls silently: relists on 410 Gone, restarts with capped exponential backoff after errors (the
// client library's watch just ends), a watchdog restarts a watch that has been quiet too long (bookmarks
// count as activity), and a periodic full relist repairs anything missed. No policy logic here.
// Records which keys changed (see takeChanges) so that a consumer pays for what changed, not for the
// whole kind; a relist keeps the stored object of every item whose resourceVersion is unchanged.
// An optional kind (a CRD that may not be installed) whose list is answered 404 or 403 counts as listed and
// empty, says why in `missing`, and is listed again every `missingRecheckMs`: installed later, it is seen.
import type { Logger } from 'pino';
import { type ListWatch, WatchError } from './client.ts';

type Obj = Record<string, unknown>;

export interface ReflectorOptions<T = Obj> {
  /** e.g. 'pods' */
  kind: string;
  /** API path of the cluster-wide list, e.g. /api/v1/pods */
  path: string;
  /** What is kept of each object (a trimmed copy, or the consumer's own form of it). */
  trim: (o: Obj) => T;
  pageSize?: number;
  /** A watch with no event for this long is restarted. */
  quietMs?: number;
  /** Full relist period. */
  resyncMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /**
   * Set for an optional kind: how long to wait before listing again after a 404 (not served: the CRD is
   * not installed) or 403 (RBAC does not allow it). Unset: those are errors like any other.
   */
  missingRecheckMs?: number;
}

/** Why an optional kind holds nothing: its API is not served, or this client may not list it. */
export type MissingReason = 'not served' | 'forbidden';

export interface ReflectorStats {
  lists: number;
  watchRestarts: number;
  events: number;
}

/**
 * One turn of the event loop. A request is only written to its socket from process.nextTick callbacks and
 * after awaits (the client's options, the connection): they run once the current task ends, so a page's
 * items processed right after asking for the next page kept that request back until they were done (at
 * 100,000 pods 3.3 ms a page, 0.65 s of the list in which the server had nothing to do).
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const keyOf = (o: Obj): string => {
  const m = (o.metadata ?? {}) as { name?: string; namespace?: string };
  return m.namespace ? `${m.namespace}/${m.name}` : String(m.name);
};

const versionOf = (o: Obj): string | undefined => {
  const v = (o.metadata as Obj | undefined)?.resourceVersion;
  return typeof v === 'string' && v !== '' ? v : undefined;
};

export class Reflector<T = Obj> {
  readonly kind: string;
  #items = new Map<string, T>();
  readonly stats: ReflectorStats = { lists: 0, watchRestarts: 0, events: 0 };
  /** True after the first complete list. */
  synced = false;
  /** True while a watch stream is open. */
  watching = false;
  /** An optional kind that could not be listed, and why (undefined: listed). */
  missing: MissingReason | undefined;
  lastActivity = 0;

  /** The objects by key (namespace/name); a complete relist replaces the map. */
  get items(): Map<string, T> {
    return this.#items;
  }

  private readonly client: ListWatch;
  private readonly options: Required<Omit<ReflectorOptions<T>, 'missingRecheckMs'>>;
  private readonly missingRecheckMs: number | undefined;
  /** resourceVersion of each item: a relist keeps the stored object of an item that did not change. */
  private versions = new Map<string, string>();
  private changed = new Set<string>();
  private readonly log: Logger;
  private readonly onChange: (kind: string) => void;
  private resourceVersion = '';
  private abort: AbortController | undefined;
  /** Ends the current watch also while its request waits for the server's headers (abort is unset then). */
  private pending: AbortController | undefined;
  private stopped = false;
  private failures = 0;
  private timers: NodeJS.Timeout[] = [];
  private wake: (() => void) | undefined;
  private generation = 0;

  constructor(
    client: ListWatch,
    options: ReflectorOptions<T>,
    log: Logger,
    onChange: (kind: string) => void,
  ) {
    this.client = client;
    this.kind = options.kind;
    this.options = {
      pageSize: 500,
      quietMs: 120_000,
      resyncMs: 600_000,
      backoffMinMs: 200,
      backoffMaxMs: 10_000,
      ...options,
    };
    this.missingRecheckMs = options.missingRecheckMs;
    this.log = log.child({ component: 'reflector', kind: options.kind });
    this.onChange = onChange;
  }

  start(): void {
    void this.loop();
    const watchdog = setInterval(
      () => {
        if (this.watching && Date.now() - this.lastActivity > this.options.quietMs) {
          this.log.warn(
            { quietMs: Date.now() - this.lastActivity },
            'watch has been quiet too long, restarting it',
          );
          this.restart(false);
        }
      },
      Math.max(50, Math.min(this.options.quietMs / 4, 5_000)),
    );
    const resync = setInterval(() => this.restart(true), this.options.resyncMs);
    watchdog.unref();
    resync.unref();
    this.timers.push(watchdog, resync);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.abort?.abort();
    this.pending?.abort();
    this.wake?.();
  }

  /**
   * The keys added, modified or removed since the last call (look each up in `items`: absent means
   * removed). For one consumer: the set is handed over and a new one started.
   */
  takeChanges(): Set<string> {
    const out = this.changed;
    this.changed = new Set();
    return out;
  }

  /** Ends the current watch; with `relist` the next round lists everything again. */
  restart(relist: boolean): void {
    if (relist) this.resourceVersion = '';
    this.abort?.abort();
    this.pending?.abort();
    this.wake?.();
  }

  private async list(): Promise<void> {
    const fresh = new Map<string, T>();
    const versions = new Map<string, string>();
    let cont: string | undefined;
    let rv = '';
    const fetch = (from: string | undefined) => {
      const p = this.client.listPage(this.options.path, {
        limit: this.options.pageSize,
        ...(from ? { continue: from } : {}),
      });
      // Awaited below; until then a failure must not count as unhandled.
      p.catch(() => {});
      return p;
    };
    let next = fetch(undefined);
    do {
      const page = await next;
      // The next page is asked for, and sent, before this one is processed: the server prepares it
      // while the agent trims and normalizes (at 100k pods, 200 pages back to back).
      if (page.continue) {
        next = fetch(page.continue);
        await nextTurn();
      }
      for (const item of page.items) {
        const key = keyOf(item);
        const version = versionOf(item);
        const old = this.items.get(key);
        if (old !== undefined && version !== undefined && this.versions.get(key) === version) {
          fresh.set(key, old); // unchanged since we last saw it: same object, not reported
        } else {
          fresh.set(key, this.options.trim(item));
          this.changed.add(key);
        }
        if (version !== undefined) versions.set(key, version);
      }
      cont = page.continue;
      rv = page.resourceVersion;
    } while (cont);
    for (const key of this.items.keys()) if (!fresh.has(key)) this.changed.add(key);
    // Swapped, not copied: at 100k pods a copy is 200k more Map insertions in the full sync.
    this.#items = fresh;
    this.versions = versions;
    this.resourceVersion = rv;
    this.stats.lists++;
    this.synced = true;
    if (this.missing !== undefined) {
      this.log.info(`${this.kind}: listed now (was ${this.missing}); watching`);
      this.missing = undefined;
    }
    this.onChange(this.kind);
  }

  /** Up to date: a watch is open, or the optional kind is known to be missing (nothing to watch). */
  get live(): boolean {
    return this.watching || this.missing !== undefined;
  }

  /** The reason to treat a list or watch failure as "missing", for an optional kind. */
  private missingFrom(error: unknown): MissingReason | undefined {
    if (this.missingRecheckMs === undefined || !(error instanceof WatchError)) return undefined;
    return error.status === 404 ? 'not served' : error.status === 403 ? 'forbidden' : undefined;
  }

  /** Nothing of the kind can be read: it holds nothing (what it held is reported as removed). */
  private markMissing(reason: MissingReason): void {
    const news = this.missing !== reason || this.#items.size > 0 || !this.synced;
    if (this.missing !== reason)
      this.log.info(
        { reason, recheckMs: this.missingRecheckMs },
        `${this.kind}: ${reason === 'not served' ? 'the API does not serve it' : 'listing it is forbidden'}; listing again later`,
      );
    for (const key of this.#items.keys()) this.changed.add(key);
    this.#items = new Map();
    this.versions = new Map();
    this.resourceVersion = '';
    this.missing = reason;
    this.synced = true;
    this.failures = 0;
    // Re-checks that find it still missing are no change: no sync for them.
    if (news) this.onChange(this.kind);
  }

  /** Runs one watch until it ends; resolves with the error that ended it (undefined: clean close). */
  private async watchOnce(): Promise<unknown> {
    const generation = ++this.generation;
    return new Promise<unknown>((resolve) => {
      let settled = false;
      const finish = (error: unknown) => {
        if (settled) return;
        settled = true;
        this.watching = false;
        this.wake = undefined;
        resolve(error);
      };
      this.wake = () => finish(undefined);
      this.lastActivity = Date.now();
      const pending = new AbortController();
      this.pending = pending;
      this.client
        .watch(
          this.options.path,
          this.resourceVersion,
          (type, object) => {
            if (generation !== this.generation) return;
            this.lastActivity = Date.now();
            this.stats.events++;
            if (type === 'BOOKMARK') {
              this.resourceVersion = String(
                (object.metadata as Obj | undefined)?.resourceVersion ?? this.resourceVersion,
              );
              return;
            }
            if (type === 'ERROR') {
              const code = Number(object.code);
              finish(
                new WatchError(
                  code === 410 ? 'E_K8S_GONE' : 'E_K8S_WATCH',
                  `watch ${this.kind}: ${String(object.message)}`,
                  code,
                ),
              );
              return;
            }
            const key = keyOf(object);
            const version = versionOf(object);
            if (type === 'DELETED') {
              this.items.delete(key);
              this.versions.delete(key);
            } else {
              this.items.set(key, this.options.trim(object));
              if (version === undefined) this.versions.delete(key);
              else this.versions.set(key, version);
            }
            this.changed.add(key);
            this.resourceVersion = version ?? this.resourceVersion;
            this.failures = 0;
            this.onChange(this.kind);
          },
          (error) => finish(error ?? undefined),
          pending.signal,
        )
        .then((abort) => {
          this.abort = abort;
          this.watching = !settled;
          if (settled) abort.abort();
        })
        .catch((error) => finish(error));
    });
  }

  private async backoff(error: unknown): Promise<void> {
    this.failures++;
    const delay = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffMinMs * 2 ** Math.min(this.failures - 1, 10),
    );
    this.log.warn(
      { err: error instanceof Error ? error.message : String(error), retryInMs: delay },
      'list/watch failed, retrying',
    );
    await this.pause(delay);
  }

  /** Waits `ms`, or less when stopped or restarted. */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') await this.list();
        const started = Date.now();
        const ended = await this.watchOnce();
        if (this.stopped) break;
        this.stats.watchRestarts++;
        const aborted = ended instanceof Error && ended.name === 'AbortError';
        if (ended instanceof WatchError && ended.status === 410) {
          this.log.info('resourceVersion too old (410 Gone), relisting');
          this.resourceVersion = '';
        } else if (ended !== undefined && ended !== null && !aborted) {
          throw ended;
        }
        // A watch that ends right away (a 410 right after a list, a server closing at once) must not
        // turn into a hot loop against the API server.
        if (!aborted && Date.now() - started < 1000) await this.backoff(ended ?? 'watch closed immediately');
        else this.failures = 0;
      } catch (error) {
        if (this.stopped) break;
        const missing = this.missingFrom(error);
        if (missing !== undefined) {
          this.markMissing(missing);
          await this.pause(this.missingRecheckMs!);
          continue;
        }
        if (error instanceof WatchError && error.status === 410) this.resourceVersion = '';
        this.stats.watchRestarts++;
        await this.backoff(error);
      }
    }
  }
}
