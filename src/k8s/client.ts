// The only code that talks HTTP to the Kubernetes API: paged lists and watch streams, both as plain JSON
// objects, authenticated through @kubernetes/client-node's KubeConfig. No caching or retry policy here.
import { HttpMethod, KubeConfig, RequestContext, Watch } from '@kubernetes/client-node';
// The client library's dispatcher (TLS from the kubeconfig) is an undici 8 Agent: it only works with the
// fetch of that same undici (Node's global fetch bundles an older undici and fails: 'invalid onRequestStart').
import { fetch } from 'undici';
import { TollgateError } from '../util/errors.ts';

export class WatchError extends TollgateError {
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

export interface ListPage {
  items: Record<string, unknown>[];
  resourceVersion: string;
  continue: string | undefined;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** In-cluster (service account) by default; a kubeconfig file when given. */
export function loadKubeConfig(kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

/** What a reflector needs from the API: paged lists and watches (a fake implements it in tests). */
export type ListWatch = Pick<ApiClient, 'listPage' | 'watch'>;

export class ApiClient {
  readonly kc: KubeConfig;
  private readonly watcher: Watch;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.watcher = new Watch(kc);
  }

  get server(): string {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new WatchError('E_K8S_CONFIG', 'the kubeconfig has no current cluster');
    return cluster.server;
  }

  private async request(
    method: HttpMethod,
    path: string,
    query: Record<string, string | undefined>,
    body?: unknown,
  ) {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const ctx = new RequestContext(url.toString(), method);
    await this.kc.applySecurityAuthentication(ctx);
    const headers = {
      ...ctx.getHeaders(),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    };
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
        dispatcher: ctx.getDispatcher(),
      });
    } catch (error) {
      throw new WatchError('E_K8S_UNREACHABLE', `${method} ${path}: ${(error as Error).message}`, undefined, {
        cause: error,
      });
    }
    const text = await response.text();
    if (!response.ok) {
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // not a Status object
      }
      throw new WatchError(
        response.status === 410 ? 'E_K8S_GONE' : 'E_K8S_HTTP',
        `${method} ${path}: ${response.status} ${message}`,
        response.status,
      );
    }
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** One page of a list (limit/continue pagination keeps memory flat on big clusters). */
  async listPage(path: string, options: { limit: number; continue?: string }): Promise<ListPage> {
    const body = await this.request(HttpMethod.GET, path, {
      limit: String(options.limit),
      continue: options.continue,
    });
    const metadata = (body.metadata ?? {}) as { resourceVersion?: string; continue?: string };
    return {
      items: (body.items ?? []) as Record<string, unknown>[],
      resourceVersion: metadata.resourceVersion ?? '',
      continue: metadata.continue || undefined,
    };
  }

  /** Generic JSON request, for tests and tools (create, patch, delete). */
  call(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    return this.request(method as HttpMethod, path, {}, body);
  }

  /**
   * Starts a watch from `resourceVersion` with bookmarks. `onEvent` gets every event; `onDone` is called
   * once when the stream ends for any reason (error or server-side close). Returns the abort handle.
   */
  watch(
    path: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: Record<string, unknown>) => void,
    onDone: (error: unknown) => void,
  ): Promise<AbortController> {
    return this.watcher.watch(
      path,
      { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
      (type: string, object: Record<string, unknown>) => onEvent(type as WatchEventType, object),
      onDone,
    );
  }
}
