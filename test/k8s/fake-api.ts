// A fake list/watch source behind the ApiClient interface: objects in memory, a resourceVersion counter,
// open watches that receive events, and switches to inject failures (410 Gone, errors, silence).
import type { ListPage, ListWatch, WatchEventType } from '../../src/k8s/client.ts';
import { WatchError } from '../../src/k8s/client.ts';

type Obj = Record<string, unknown>;
interface OpenWatch {
  path: string;
  onEvent: (type: WatchEventType, object: Obj) => void;
  onDone: (error: unknown) => void;
  abort: AbortController;
}

export class FakeApi implements ListWatch {
  rv = 1;
  readonly objects = new Map<string, Map<string, Obj>>();
  readonly watches: OpenWatch[] = [];
  lists = 0;
  watchCalls = 0;
  /** When set, lists fail with this HTTP status. */
  failLists: number | undefined;
  /** When true, new watches are answered with 410 Gone (their resourceVersion is "too old"). */
  goneOnWatch = false;
  /** Paths answered with an HTTP status, lists and watches alike: 404 for a CRD not installed, 403. */
  readonly refuse = new Map<string, number>();
  /** Requests answered from `refuse`. */
  refusals = 0;

  private bucket(path: string): Map<string, Obj> {
    const b = this.objects.get(path) ?? new Map<string, Obj>();
    this.objects.set(path, b);
    return b;
  }

  put(path: string, name: string, object: Obj, type: 'ADDED' | 'MODIFIED' = 'ADDED'): void {
    const o = {
      ...object,
      metadata: { ...(object.metadata as Obj), name, resourceVersion: String(++this.rv) },
    };
    this.bucket(path).set(name, o);
    for (const w of this.watches.filter((x) => x.path === path)) w.onEvent(type, o);
  }

  remove(path: string, name: string): void {
    const o = this.bucket(path).get(name);
    this.bucket(path).delete(name);
    this.rv++;
    if (o) for (const w of this.watches.filter((x) => x.path === path)) w.onEvent('DELETED', o);
  }

  /** Ends every open watch as the server would on a restart. */
  dropWatches(error?: unknown): void {
    for (const w of this.watches.splice(0)) w.onDone(error ?? null);
  }

  async listPage(path: string, options: { limit: number; continue?: string }): Promise<ListPage> {
    if (this.failLists !== undefined)
      throw new WatchError('E_K8S_HTTP', `list ${path}: ${this.failLists}`, this.failLists);
    const refused = this.refuse.get(path);
    if (refused !== undefined) {
      this.refusals++;
      throw new WatchError('E_K8S_HTTP', `list ${path}: ${refused}`, refused);
    }
    this.lists++;
    const all = [...this.bucket(path).values()];
    const start = options.continue ? Number(options.continue) : 0;
    const items = all.slice(start, start + options.limit);
    const next = start + options.limit < all.length ? String(start + options.limit) : undefined;
    return { items, resourceVersion: String(this.rv), continue: next };
  }

  async watch(
    path: string,
    _rv: string,
    onEvent: OpenWatch['onEvent'],
    onDone: OpenWatch['onDone'],
  ): Promise<AbortController> {
    this.watchCalls++;
    const refused = this.refuse.get(path);
    if (refused !== undefined) {
      this.refusals++;
      throw new WatchError('E_K8S_HTTP', `watch ${path}: ${refused}`, refused);
    }
    const abort = new AbortController();
    if (this.goneOnWatch) {
      queueMicrotask(() => onEvent('ERROR', { code: 410, message: 'too old resource version' }));
      return abort;
    }
    const w: OpenWatch = { path, onEvent, onDone, abort };
    this.watches.push(w);
    abort.signal.addEventListener('abort', () => {
      const i = this.watches.indexOf(w);
      if (i >= 0) this.watches.splice(i, 1);
      const e = new Error('aborted');
      e.name = 'AbortError';
      onDone(e);
    });
    return abort;
  }
}

export async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
