// The only code that talks HTTP to the Kubernetes API: paged lists and watch streams as plain JSON objects,
// over node:https directly. No caching or retry policy here (src/k8s/reflector.ts has it).
// In-cluster (the DaemonSet) the configuration comes from the service-account files and never loads
// @kubernetes/client-node (~85 MB of RSS and ~0.8 s for its generated API); with a kubeconfig file the
// library is imported on demand, only to parse the file and its auth (certificates, exec, oidc).
import { readFileSync, statSync } from 'node:fs';
import {
  type ClientRequest,
  type Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { TollgateError } from '../util/errors.ts';

export type WatchErrorCode =
  | 'E_K8S_CONFIG' // no usable kubeconfig or in-cluster service account
  | 'E_K8S_UNREACHABLE' // the API server did not answer
  | 'E_K8S_HTTP' // the API server answered with an error status
  | 'E_K8S_WATCH' // a watch stream sent an error event
  | 'E_K8S_GONE'; // the watch's resourceVersion is too old (410): list again

export class WatchError extends TollgateError<WatchErrorCode> {
  readonly status: number | undefined;
  constructor(code: WatchErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
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

/** Where the API is and how to authenticate: what both configuration sources produce. */
export interface ClientConfig {
  /** https://host:port (http: only from a kubeconfig that asks for it). */
  server: string;
  /** Where the configuration came from, for messages. */
  source: string;
  /** TLS material, headers (Authorization) and agent for the next request; may refresh a token. */
  requestOptions(): Promise<RequestOptions>;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface InClusterOptions {
  /** Directory holding token, ca.crt and namespace (default SERVICE_ACCOUNT_DIR). */
  dir?: string;
  /** KUBERNETES_SERVICE_HOST/PORT come from here (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The token file is read again when it is older than this (bound tokens rotate; default 60 s). */
  tokenRefreshMs?: number;
}

function configError(message: string, cause?: unknown): WatchError {
  return new WatchError('E_K8S_CONFIG', message, undefined, cause === undefined ? undefined : { cause });
}

function readConfigFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw configError(
      `cannot read the service account's ${what} (${path}): ${(error as Error).message}; not running in a pod? pass --kubeconfig`,
      error,
    );
  }
}

/**
 * The pod's service account: token, CA and KUBERNETES_SERVICE_HOST/PORT, as client-go's rest.InClusterConfig
 * reads them. The token file is re-read at most every `tokenRefreshMs` (kubelet rotates bound tokens);
 * a failed re-read keeps the last token, the API answers 401 once it has expired.
 */
export function inClusterConfig(options: InClusterOptions = {}): ClientConfig {
  const env = options.env ?? process.env;
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw configError(
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a pod? pass --kubeconfig',
    );
  if (!/^\d{1,5}$/.test(port)) throw configError(`KUBERNETES_SERVICE_PORT is not a port: '${port}'`);
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const tokenFile = join(dir, 'token');
  const refreshMs = options.tokenRefreshMs ?? 60_000;
  const readToken = () => {
    const t = readConfigFile(tokenFile, 'token').trim();
    if (!t) throw configError(`the service account's token file ${tokenFile} is empty`);
    return t;
  };
  let token = readToken();
  let readAt = performance.now();
  const agent = new HttpsAgent({
    keepAlive: true,
    ca: readConfigFile(join(dir, 'ca.crt'), 'CA certificate'),
  });
  return {
    server,
    source: `in-cluster service account (${dir}, ${server})`,
    async requestOptions() {
      if (performance.now() - readAt >= refreshMs) {
        readAt = performance.now();
        try {
          token = readToken();
        } catch {
          // keep the last token; kubelet rewrites the file atomically, a miss is transient
        }
      }
      return { agent, headers: { authorization: `Bearer ${token}` } };
    },
  };
}

export interface KubeconfigOptions {
  /** How often at most the file is looked at (mtime, size, inode) for new credentials (default 5 s). */
  reloadCheckMs?: number;
}

/**
 * A kubeconfig file through @kubernetes/client-node (loaded here, on demand): its current context's server,
 * and per request the options its applyToHTTPSOptions fills (CA, client certificate, token, exec/oidc
 * credentials it caches and refreshes, proxy agent). When the file changes (rotated certificates or
 * token, as the in-cluster token is re-read) the next request uses what it says now; a file that does not
 * load (half written, removed) keeps the last good one until it does. The server is the one of the start.
 */
export async function kubeconfigConfig(file: string, options: KubeconfigOptions = {}): Promise<ClientConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const stamp = () => {
    try {
      const st = statSync(file);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return undefined;
    }
  };
  const load = () => {
    const kc = new KubeConfig();
    kc.loadFromFile(file);
    return kc;
  };
  let loadedStamp = stamp();
  let kc: InstanceType<typeof KubeConfig>;
  try {
    kc = load();
  } catch (error) {
    throw configError(`cannot load kubeconfig ${file}: ${(error as Error).message}`, error);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw configError(`kubeconfig ${file} has no current cluster (current-context)`);
  const checkMs = options.reloadCheckMs ?? 5000;
  let checkedAt = performance.now();
  return {
    server: cluster.server,
    source: `kubeconfig ${file} (${cluster.server})`,
    async requestOptions() {
      if (performance.now() - checkedAt >= checkMs) {
        checkedAt = performance.now();
        const now = stamp();
        if (now !== undefined && now !== loadedStamp) {
          try {
            const next = load();
            if (next.getCurrentCluster() && next.getCurrentUser()) {
              kc = next;
              loadedStamp = now;
            }
          } catch {
            // keep the last good configuration: the file may be in the middle of being rewritten
          }
        }
      }
      const out: RequestOptions = {};
      await kc.applyToHTTPSOptions(out);
      return out;
    },
  };
}

/** A kubeconfig file when given, else the in-cluster service account. */
export function loadClientConfig(kubeconfig?: string, inCluster?: InClusterOptions): Promise<ClientConfig> {
  return kubeconfig ? kubeconfigConfig(kubeconfig) : Promise.resolve(inClusterConfig(inCluster));
}

/** What a reflector needs from the API: paged lists and watches (a fake implements it in tests). */
export type ListWatch = Pick<ApiClient, 'listPage' | 'watch'>;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const abortError = () => Object.assign(new Error('the watch was aborted'), { name: 'AbortError' });

export class ApiClient {
  readonly config: ClientConfig;
  /** Milliseconds without an answer (headers, or the whole body of a non-watch request) before giving up. */
  requestTimeoutMs = 30_000;
  readonly #base: URL;

  constructor(config: ClientConfig) {
    this.config = config;
    try {
      this.#base = new URL(config.server);
    } catch (error) {
      throw configError(`${config.source}: the server '${config.server}' is not a URL`, error);
    }
    if (this.#base.protocol !== 'https:' && this.#base.protocol !== 'http:')
      throw configError(`${config.source}: the server '${config.server}' is neither https: nor http:`);
  }

  get server(): string {
    return this.config.server;
  }

  /** Sends one request; resolves with the response once its headers are in (any status). */
  async #open(
    method: Method,
    path: string,
    query: Record<string, string | undefined>,
    body: string | undefined,
    accept = 'application/json',
    signal?: AbortSignal,
  ): Promise<{ req: ClientRequest; res: IncomingMessage }> {
    const url = new URL(this.#base.pathname.replace(/\/$/, '') + path, this.#base);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const options = await this.config.requestOptions();
    const headers: Record<string, string | number> = {
      ...(options.headers as Record<string, string>),
      accept,
      'user-agent': 'tollgate',
    };
    if (body !== undefined) {
      headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const https = url.protocol === 'https:';
    const send = https ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send({
        ...options,
        agent: options.agent as HttpAgent | HttpsAgent | undefined,
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || (https ? 443 : 80),
        path: url.pathname + url.search,
        method,
        headers,
        ...(signal ? { signal } : {}),
      });
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${this.requestTimeoutMs} ms`)),
        this.requestTimeoutMs,
      );
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve({ req, res });
      });
      req.once('error', (error) => {
        clearTimeout(timer);
        reject(
          new WatchError('E_K8S_UNREACHABLE', `${method} ${path}: ${error.message}`, undefined, {
            cause: error,
          }),
        );
      });
      req.end(body);
    });
  }

  /** The error for a response with a status other than 2xx: the API's Status message when it sent one. */
  static #statusError(method: string, path: string, status: number, text: string): WatchError {
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not a Status object
    }
    return new WatchError(
      status === 410 ? 'E_K8S_GONE' : 'E_K8S_HTTP',
      `${method} ${path}: ${status} ${message}`,
      status,
    );
  }

  private async request(
    method: Method,
    path: string,
    query: Record<string, string | undefined>,
    body?: unknown,
  ): Promise<Record<string, unknown>> {
    const { req, res } = await this.#open(
      method,
      path,
      query,
      body === undefined ? undefined : JSON.stringify(body),
    );
    const text = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const timer = setTimeout(
        () => req.destroy(new Error(`body not complete within ${this.requestTimeoutMs} ms`)),
        this.requestTimeoutMs,
      );
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString('utf8'));
      });
      res.once('error', (error) => {
        clearTimeout(timer);
        reject(
          new WatchError('E_K8S_UNREACHABLE', `${method} ${path}: ${error.message}`, undefined, {
            cause: error,
          }),
        );
      });
    });
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw ApiClient.#statusError(method, path, status, text);
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch (error) {
      throw new WatchError(
        'E_K8S_HTTP',
        `${method} ${path}: ${status} with a body that is not JSON: ${text.slice(0, 200)}`,
        status,
        { cause: error },
      );
    }
  }

  /** One page of a list (limit/continue pagination keeps memory flat on big clusters). */
  async listPage(path: string, options: { limit: number; continue?: string }): Promise<ListPage> {
    const body = await this.request('GET', path, {
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

  /** Generic JSON request, for tests and tools (create, merge-patch, delete). */
  call(method: Method, path: string, body?: unknown): Promise<Record<string, unknown>> {
    return this.request(method, path, {}, body);
  }

  /**
   * Starts a watch from `resourceVersion` with bookmarks. `onEvent` gets every event, ERROR events too (their
   * object is the Status: code 410 when the resourceVersion is too old); `onDone` is called once when the
   * stream ends for any reason: null for a server-side close, a WatchError for an HTTP error status
   * (E_K8S_GONE for 410) or a broken connection, an Error named AbortError after abort(). Resolves with the
   * abort handle once the request is under way; never rejects. `signal` ends it like abort(), also before
   * the server has answered (the handle is not there yet then: a server that never sends the headers
   * would otherwise keep the request, and the process, alive until the request timeout).
   */
  watch(
    path: string,
    resourceVersion: string,
    onEvent: (type: WatchEventType, object: Record<string, unknown>) => void,
    onDone: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<AbortController> {
    const query = {
      watch: 'true',
      resourceVersion: resourceVersion || undefined,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '300',
    };
    const label = `${path} (watch)`;
    const onLine = (line: string, stop: (error: unknown) => void) => {
      if (line.trim() === '') return;
      let event: { type?: string; object?: Record<string, unknown> };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        stop(new WatchError('E_K8S_WATCH', `GET ${label}: an event is not JSON: ${line.slice(0, 200)}`));
        return;
      }
      onEvent(event.type as WatchEventType, event.object ?? {});
    };
    return this.#lines(path, query, 'application/json', label, onLine, onDone, signal);
  }

  /**
   * Follows a text stream line by line (a pod's log with follow=true, for `tollgate drops`): `onLine` per
   * complete line, `onDone` once as for watch. Logs are text/plain: an Accept of JSON alone could be
   * refused. Never rejects.
   */
  followLines(
    path: string,
    query: Record<string, string | undefined>,
    onLine: (line: string) => void,
    onDone: (error: unknown) => void,
  ): Promise<AbortController> {
    return this.#lines(path, query, '*/*', path, (line) => onLine(line), onDone);
  }

  /** A streamed GET, line by line, for watch and followLines; `onLine` may end it with `stop(error)`. */
  async #lines(
    path: string,
    query: Record<string, string | undefined>,
    accept: string,
    label: string,
    onLine: (line: string, stop: (error: unknown) => void) => void,
    onDone: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<AbortController> {
    const controller = new AbortController();
    let done = false;
    let req: ClientRequest | undefined;
    const finish = (error: unknown) => {
      if (done) return;
      done = true;
      req?.destroy();
      onDone(error);
    };
    controller.signal.addEventListener('abort', () => finish(abortError()), { once: true });
    if (signal?.aborted) controller.abort();
    else signal?.addEventListener('abort', () => controller.abort(), { once: true });
    let res: IncomingMessage;
    try {
      // Aborted before the headers are in: the signal destroys the pending request.
      ({ req, res } = await this.#open('GET', path, query, undefined, accept, controller.signal));
    } catch (error) {
      finish(controller.signal.aborted ? abortError() : error);
      return controller;
    }
    if (done) {
      req.destroy();
      return controller;
    }
    // A silent dead peer is caught by TCP keepalive here and by the reflector's watchdog above.
    req.socket?.setKeepAlive(true, 30_000);
    const status = res.statusCode ?? 0;
    res.setEncoding('utf8');
    if (status !== 200) {
      let text = '';
      res.on('data', (c: string) => {
        if (text.length < 4096) text += c;
      });
      res.once('end', () => finish(ApiClient.#statusError('GET', label, status, text)));
      res.once('error', () => finish(ApiClient.#statusError('GET', label, status, text)));
      return controller;
    }
    let pending = '';
    res.on('data', (chunk: string) => {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl >= 0 && !done) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
        onLine(line, finish);
      }
    });
    res.once('end', () => finish(null));
    res.once('error', (error) =>
      finish(
        new WatchError('E_K8S_UNREACHABLE', `GET ${label}: ${error.message}`, undefined, {
          cause: error,
        }),
      ),
    );
    res.once('close', () => finish(null));
    return controller;
  }
}
