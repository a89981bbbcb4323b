// The harness's own client of a lab API server (the agents use src/k8s): HTTPS with a bearer token through
// the forwarder's unix socket, JSON in and out, manifests applied by discovery. Must not be used by the agent.
import { request as httpsRequest } from 'node:https';
import { parseAllDocuments } from 'yaml';
import { ROUTER } from './addresses.ts';
import { ApiServerError } from './errors.ts';

/** The API server's port on the lab router (198.51.100.254). */
export const API_PORT = 6443;

export type KubeObject = Record<string, unknown> & {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; [k: string]: unknown };
};

export interface CallOptions {
  /** application/json (default), application/merge-patch+json, ... */
  contentType?: string;
  query?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/**
 * The harness's client: HTTPS with the admin token through the forwarder's unix socket, the serving
 * certificate verified against the lab CA for 198.51.100.254. JSON in, JSON out; errors carry the status.
 */
export class AdminClient {
  readonly socketPath: string;
  readonly #token: string;
  readonly #ca: string;

  constructor(socketPath: string, token: string, ca: string) {
    this.socketPath = socketPath;
    this.#token = token;
    this.#ca = ca;
  }

  /** Raw request: resolves with the status and parsed body (or text) whatever the status. */
  request(
    method: string,
    path: string,
    body?: unknown,
    options: CallOptions = {},
  ): Promise<{ status: number; body: KubeObject }> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) query.set(k, v);
    const fullPath = query.size > 0 ? `${path}${path.includes('?') ? '&' : '?'}${query}` : path;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolvePromise, reject) => {
      const req = httpsRequest(
        {
          socketPath: this.socketPath,
          host: ROUTER.nodeNet4, // for certificate identity (IP SAN) and the Host header
          port: API_PORT,
          method,
          path: fullPath,
          ca: this.#ca,
          agent: false,
          headers: {
            authorization: `Bearer ${this.#token}`,
            accept: 'application/json',
            ...(payload === undefined
              ? {}
              : {
                  'content-type': options.contentType ?? 'application/json',
                  'content-length': Buffer.byteLength(payload),
                }),
          },
          timeout: options.timeoutMs ?? 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: KubeObject;
            try {
              parsed = text ? (JSON.parse(text) as KubeObject) : {};
            } catch {
              parsed = { message: text };
            }
            resolvePromise({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 15_000} ms`)));
      req.on('error', (error) =>
        reject(
          new ApiServerError('E_APISERVER_UNREACHABLE', `${method} ${path}: ${error.message}`, undefined, {
            cause: error,
          }),
        ),
      );
      req.end(payload);
    });
  }

  /** Like request, but a status >= 300 becomes an ApiServerError naming the request and the API's message. */
  async call(method: string, path: string, body?: unknown, options: CallOptions = {}): Promise<KubeObject> {
    const r = await this.request(method, path, body, options);
    if (r.status >= 300) {
      const message =
        typeof r.body.message === 'string' ? r.body.message : JSON.stringify(r.body).slice(0, 300);
      throw new ApiServerError('E_APISERVER_HTTP', `${method} ${path}: ${r.status} ${message}`, r.status);
    }
    return r.body;
  }

  get(path: string): Promise<KubeObject> {
    return this.call('GET', path);
  }

  /** GET that resolves undefined on 404. */
  async find(path: string): Promise<KubeObject | undefined> {
    const r = await this.request('GET', path);
    if (r.status === 404) return undefined;
    if (r.status >= 300)
      throw new ApiServerError(
        'E_APISERVER_HTTP',
        `GET ${path}: ${r.status} ${String(r.body.message)}`,
        r.status,
      );
    return r.body;
  }

  mergePatch(path: string, patch: unknown): Promise<KubeObject> {
    return this.call('PATCH', path, patch, { contentType: 'application/merge-patch+json' });
  }

  /** DELETE that treats 404 as done. */
  async remove(path: string, query: Record<string, string> = {}): Promise<void> {
    const r = await this.request('DELETE', path, undefined, { query });
    if (r.status >= 300 && r.status !== 404)
      throw new ApiServerError(
        'E_APISERVER_HTTP',
        `DELETE ${path}: ${r.status} ${String(r.body.message)}`,
        r.status,
      );
  }

  // ---- manifests --------------------------------------------------------------------------------------

  #discovery = new Map<string, Promise<{ name: string; kind: string; namespaced: boolean }[]>>();

  /** The collection path of an object's kind, from API discovery (so any manifest kind works). */
  async collectionPath(obj: KubeObject): Promise<string> {
    const apiVersion = String(obj.apiVersion ?? '');
    const kind = String(obj.kind ?? '');
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let resources = this.#discovery.get(base);
    if (!resources) {
      resources = this.get(base).then(
        (r) => (r.resources ?? []) as { name: string; kind: string; namespaced: boolean }[],
      );
      this.#discovery.set(base, resources);
      resources.catch(() => this.#discovery.delete(base));
    }
    const resource = (await resources).find((r) => r.kind === kind && !r.name.includes('/'));
    if (!resource)
      throw new ApiServerError('E_APISERVER_HTTP', `the API server has no kind ${kind} in ${apiVersion}`);
    if (!resource.namespaced) return `${base}/${resource.name}`;
    return `${base}/namespaces/${obj.metadata?.namespace ?? 'default'}/${resource.name}`;
  }

  /**
   * Creates every document of a YAML manifest in order, replacing objects that exist (like kubectl apply
   * without the three-way merge). `dryRun`: validated and admitted by the server, nothing stored.
   */
  async applyManifest(text: string, options: { dryRun?: boolean } = {}): Promise<KubeObject[]> {
    const out: KubeObject[] = [];
    const query = options.dryRun ? { dryRun: 'All' } : {};
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0)
        throw new ApiServerError('E_APISERVER_HTTP', `manifest: ${doc.errors[0]!.message}`);
      const obj = doc.toJS() as KubeObject | null;
      if (!obj) continue;
      const collection = await this.collectionPath(obj);
      const created = await this.request('POST', collection, obj, { query });
      if (created.status === 409) {
        const path = `${collection}/${obj.metadata?.name}`;
        const current = await this.get(path);
        const metadata = {
          ...obj.metadata,
          resourceVersion: (current.metadata as { resourceVersion?: string }).resourceVersion,
        };
        out.push(await this.call('PUT', path, { ...obj, metadata }, { query }));
      } else if (created.status >= 300) {
        throw new ApiServerError(
          'E_APISERVER_HTTP',
          `create ${obj.kind} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name}: ${created.status} ${String(created.body.message)}`,
          created.status,
        );
      } else out.push(created.body);
    }
    return out;
  }
}
