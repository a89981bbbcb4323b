// A real etcd + kube-apiserver inside a lab's network namespace (the underlay router, 198.51.100.254:6443), so
// every node reaches the control plane over the underlay. Test harness only: throwaway credentials (one CA per
// process), RBAC on, the shipped daemonset/rbac.yaml applied, and a token of the `tollgate` service account
// for the agents. Must not listen or connect outside the lab: the harness reaches the API through a unix
// socket forwarder that runs inside the network namespace.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { TollgateError } from '../util/errors.ts';
import { ROUTER } from './addresses.ts';
import { inNamespace } from './exec.ts';
import type { Lab } from './lab.ts';
import { makePki, type Pki } from './pki.ts';
import { registerOpenLab, unregisterOpenLab } from './registry.ts';

const execFileP = promisify(execFile);

export type ApiServerErrorCode =
  | 'E_APISERVER_BINARIES' // kube-apiserver or etcd is not built (scripts/k8s-binaries.sh)
  | 'E_APISERVER_START' // a process exited or did not become ready in time
  | 'E_APISERVER_HTTP' // the API answered with an error status
  | 'E_APISERVER_UNREACHABLE'; // no answer (stopped, frozen, or the forwarder is gone)

export class ApiServerError extends TollgateError<ApiServerErrorCode> {
  readonly status: number | undefined;
  constructor(code: ApiServerErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

const REPO = resolve(import.meta.dirname, '../..');
export const RBAC_MANIFEST = join(REPO, 'daemonset/rbac.yaml');
const PORT = 6443;
const SA_NAMESPACE = 'tollgate-system';
const SA_NAME = 'tollgate';

export type KubeObject = Record<string, unknown> & {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; [k: string]: unknown };
};

// ---- binaries -------------------------------------------------------------------------------------------

export interface K8sBinaries {
  kubeApiserver: string;
  etcd: string;
}

let binaries: Promise<K8sBinaries> | undefined;

/**
 * KUBE_APISERVER and ETCD from the environment (what `eval "$(scripts/k8s-binaries.sh)"` exports), else
 * whatever scripts/k8s-binaries.sh prints (it reuses its cache, or builds: ~9 min cold). Fails loudly:
 * the API tests must not pass by skipping. TOLLGATE_K8S_UNAVAILABLE (set by .ci/run when the build failed)
 * fails at once instead of building again.
 */
export function k8sBinaries(): Promise<K8sBinaries> {
  binaries ??= (async () => {
    if (process.env.TOLLGATE_K8S_UNAVAILABLE)
      throw new ApiServerError(
        'E_APISERVER_BINARIES',
        `kube-apiserver/etcd are not available: ${process.env.TOLLGATE_K8S_UNAVAILABLE}. Build them with scripts/k8s-binaries.sh (needs Go and the module proxy).`,
      );
    let kubeApiserver = process.env.KUBE_APISERVER;
    let etcd = process.env.ETCD;
    if (!kubeApiserver || !etcd) {
      const script = join(REPO, 'scripts/k8s-binaries.sh');
      try {
        const { stdout } = await execFileP(script, [], { maxBuffer: 1 << 20, timeout: 30 * 60_000 });
        kubeApiserver = /^KUBE_APISERVER=(.*)$/m.exec(stdout)?.[1];
        etcd = /^ETCD=(.*)$/m.exec(stdout)?.[1];
      } catch (error) {
        const e = error as { stderr?: string; message: string };
        throw new ApiServerError(
          'E_APISERVER_BINARIES',
          `kube-apiserver/etcd are not available: ${script} failed (${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ')}). Build them with scripts/k8s-binaries.sh (needs Go and the module proxy) or set KUBE_APISERVER and ETCD.`,
          undefined,
          { cause: error },
        );
      }
    }
    for (const [name, path] of [
      ['KUBE_APISERVER', kubeApiserver],
      ['ETCD', etcd],
    ] as const) {
      if (!path || !existsSync(path))
        throw new ApiServerError(
          'E_APISERVER_BINARIES',
          `${name} binary not found ('${path ?? ''}'): run scripts/k8s-binaries.sh or set ${name}`,
        );
    }
    return { kubeApiserver: kubeApiserver!, etcd: etcd! };
  })();
  binaries.catch(() => {
    binaries = undefined; // a later call may find them (e.g. after a build finished)
  });
  return binaries;
}

/** A one-member etcd on the namespace's loopback, for a throwaway API server (no fsync: tests only). */
export function etcdArgs(dataDir: string): string[] {
  return [
    '--name=lab',
    `--data-dir=${dataDir}`,
    '--listen-client-urls=http://127.0.0.1:2379',
    '--advertise-client-urls=http://127.0.0.1:2379',
    '--listen-peer-urls=http://127.0.0.1:2380',
    '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    '--initial-cluster=lab=http://127.0.0.1:2380',
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

// ---- credentials (one set per process) --------------------------------------------------------------------

type Credentials = Pki;

let credentials: Promise<Credentials> | undefined;

/**
 * One set per process: the serving certificate is for 198.51.100.254 (every lab's router has that address,
 * so one certificate serves every lab of this process).
 */
function processCredentials(): Promise<Credentials> {
  credentials ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-k8s-creds-'));
    registerOpenLab({ teardownSync: () => rmSync(dir, { recursive: true, force: true }) });
    return makePki(dir, {
      ca: 'tollgate-lab-ca',
      altNames: [`IP:${ROUTER.nodeNet4}`, 'IP:10.96.0.1', 'DNS:kubernetes', 'DNS:kubernetes.default.svc'],
    });
  })();
  credentials.catch(() => {
    credentials = undefined;
  });
  return credentials;
}

// ---- admin client -----------------------------------------------------------------------------------------

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
          port: PORT,
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

// ---- processes --------------------------------------------------------------------------------------------

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
  name: string;
}

function startInNamespace(ns: string, argv: string[], logFile: string, name: string): Proc {
  const fd = openSync(logFile, 'a');
  const [file, ...args] = inNamespace(ns, argv);
  // nsenter without --fork execs the program: the pid is the server's own (SIGSTOP/SIGCONT reach it).
  const child = spawn(file!, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((resolvePromise) => {
    child.once('exit', () => resolvePromise());
    child.once('error', () => resolvePromise());
  });
  return { child, exited, name };
}

function running(p: Proc | undefined): boolean {
  return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
}

async function stopProcess(p: Proc | undefined, graceMs = 10_000): Promise<void> {
  if (!p || !running(p)) return;
  try {
    p.child.kill('SIGCONT'); // a frozen process cannot act on SIGTERM
    p.child.kill('SIGTERM');
  } catch {}
  const timer = setTimeout(() => {
    try {
      p.child.kill('SIGKILL');
    } catch {}
  }, graceMs);
  await p.exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Copies bytes between a unix socket in the harness's filesystem and the API server's TCP port; runs inside
// the network namespace, so the harness never needs a route into the lab. Stopped by stop() or the lab's
// teardown (which kills every process in its namespaces).
const FORWARDER = `
const net = require('node:net'); const fs = require('node:fs');
const [path, host, port] = process.argv.slice(-3);
try { fs.unlinkSync(path); } catch {}
net.createServer((c) => {
  const u = net.connect(Number(port), host);
  c.pipe(u); u.pipe(c);
  c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
  c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
}).listen(path, () => process.stdout.write('ready\\n'));
`;

// ---- the API server ---------------------------------------------------------------------------------------

export interface ApiServerOptions {
  /** Node objects to create (World.objects().nodes); status (addresses) is written too. */
  nodes?: KubeObject[];
  /** RBAC manifest applied with the admin identity (default daemonset/rbac.yaml). */
  rbacManifest?: string;
  /** How long to wait for /readyz (default 90 s: parallel tests share two CPUs). */
  readyTimeoutMs?: number;
  /** More kube-apiserver flags (appended; a later flag wins). */
  extraArgs?: string[];
}

export class ApiServer {
  readonly lab: Lab;
  readonly ns: string;
  readonly url = `https://${ROUTER.nodeNet4}:${PORT}`;

  /** What an in-cluster agent reads instead of a kubeconfig (the API's address as the Service's). */
  get inClusterEnv(): NodeJS.ProcessEnv {
    return {
      KUBERNETES_SERVICE_HOST: ROUTER.nodeNet4,
      KUBERNETES_SERVICE_PORT: String(PORT),
      TOLLGATE_SERVICEACCOUNT_DIR: this.agentServiceAccountDir,
    };
  }
  /** Instance directory: etcd data, logs, token file, kubeconfigs, the forwarder socket. */
  readonly dir: string;
  readonly adminKubeconfig: string;
  /** Kubeconfig with the `tollgate` service account's token (TokenRequest), CA pinned. */
  readonly agentKubeconfig: string;
  /** The same token and CA as a pod's service-account directory (token, ca.crt, namespace). */
  readonly agentServiceAccountDir: string;
  readonly adminClient: AdminClient;
  /** Milliseconds from start() to the API being ready (last start or restart). */
  readyMs = 0;
  /** Milliseconds of the whole start(): ready + RBAC + token + nodes. */
  startMs = 0;
  agentToken = '';
  #creds: Credentials;
  #bins: K8sBinaries;
  #adminToken: string;
  #etcd: Proc | undefined;
  #apiserver: Proc | undefined;
  #forwarder: Proc | undefined;
  #stopped = false;
  #extraArgs: string[] = [];

  private constructor(lab: Lab, creds: Credentials, bins: K8sBinaries, dir: string) {
    this.lab = lab;
    this.ns = lab.networkNs;
    this.dir = dir;
    this.#creds = creds;
    this.#bins = bins;
    this.#adminToken = randomBytes(16).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${this.#adminToken},admin,admin-uid,"system:masters"\n`, {
      mode: 0o600,
    });
    this.adminKubeconfig = join(dir, 'admin.kubeconfig');
    this.agentKubeconfig = join(dir, 'agent.kubeconfig');
    this.agentServiceAccountDir = join(dir, 'serviceaccount');
    writeFileSync(this.adminKubeconfig, this.kubeconfig('admin', this.#adminToken), { mode: 0o600 });
    this.adminClient = new AdminClient(join(dir, 'api.sock'), this.#adminToken, creds.caPem);
  }

  /**
   * Starts etcd and kube-apiserver in the lab's network namespace, waits for /readyz, applies the RBAC
   * manifest, mints the agents' token and creates the Node objects. Removes everything it made on failure.
   */
  static async start(lab: Lab, options: ApiServerOptions = {}): Promise<ApiServer> {
    const started = performance.now();
    const [creds, bins] = await Promise.all([processCredentials(), k8sBinaries()]);
    const dir = mkdtempSync(join(tmpdir(), `tollgate-k8s-${lab.id}-`));
    const api = new ApiServer(lab, creds, bins, dir);
    // Torn down with the labs when the process exits or is signalled before stop().
    registerOpenLab(api);
    api.#extraArgs = options.extraArgs ?? [];
    try {
      api.#forwarder = await api.#startForwarder();
      await api.#startServers(options.readyTimeoutMs ?? 90_000);
      await api.adminClient.applyManifest(readFileSync(options.rbacManifest ?? RBAC_MANIFEST, 'utf8'));
      api.agentToken = await api.#mintAgentToken();
      mkdirSync(api.agentServiceAccountDir, { recursive: true });
      writeFileSync(join(api.agentServiceAccountDir, 'token'), api.agentToken, { mode: 0o600 });
      writeFileSync(join(api.agentServiceAccountDir, 'ca.crt'), creds.caPem);
      writeFileSync(join(api.agentServiceAccountDir, 'namespace'), SA_NAMESPACE);
      writeFileSync(
        api.agentKubeconfig,
        api.kubeconfig(`system:serviceaccount:${SA_NAMESPACE}:${SA_NAME}`, api.agentToken),
        {
          mode: 0o600,
        },
      );
      for (const node of options.nodes ?? []) await api.createNode(node);
    } catch (error) {
      const tail = api.logTail();
      await api.stop();
      if (error instanceof ApiServerError && error.code === 'E_APISERVER_START' && tail)
        error.message += `\n${tail}`;
      throw error;
    }
    api.startMs = Math.round(performance.now() - started);
    return api;
  }

  kubeconfig(user: string, token: string): string {
    const ca = Buffer.from(this.#creds.caPem).toString('base64');
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: lab-${this.lab.id}`,
      `  cluster: {server: '${this.url}', certificate-authority-data: ${ca}}`,
      'users:',
      `- name: '${user}'`,
      `  user: {token: '${token}'}`,
      'contexts:',
      `- name: lab-${this.lab.id}`,
      `  context: {cluster: lab-${this.lab.id}, user: '${user}'}`,
      `current-context: lab-${this.lab.id}`,
      '',
    ].join('\n');
  }

  async #startForwarder(): Promise<Proc> {
    const proc = startInNamespace(
      this.ns,
      [process.execPath, '-e', FORWARDER, join(this.dir, 'api.sock'), ROUTER.nodeNet4, String(PORT)],
      join(this.dir, 'forwarder.log'),
      'forwarder',
    );
    const deadline = performance.now() + 10_000;
    while (!existsSync(join(this.dir, 'api.sock'))) {
      if (!running(proc) || performance.now() > deadline)
        throw new ApiServerError(
          'E_APISERVER_START',
          `the API forwarder did not start: ${this.logTail(5, 'forwarder')}`,
        );
      await sleep(20);
    }
    return proc;
  }

  async #startServers(timeoutMs: number): Promise<void> {
    const started = performance.now();
    mkdirSync(join(this.dir, 'etcd'), { recursive: true });
    this.#etcd = startInNamespace(
      this.ns,
      [this.#bins.etcd, ...etcdArgs(join(this.dir, 'etcd'))],
      join(this.dir, 'etcd.log'),
      'etcd',
    );
    // The API server retries etcd until it answers, so both start at once.
    this.#apiserver = startInNamespace(
      this.ns,
      [
        this.#bins.kubeApiserver,
        '--etcd-servers=http://127.0.0.1:2379',
        `--bind-address=${ROUTER.nodeNet4}`,
        `--advertise-address=${ROUTER.nodeNet4}`,
        `--secure-port=${PORT}`,
        // No controller manager maintains the kubernetes Endpoints; nothing here needs them.
        '--endpoint-reconciler-type=none',
        `--cert-dir=${join(this.dir, 'cert-dir')}`,
        `--tls-cert-file=${this.#creds.servingCert}`,
        `--tls-private-key-file=${this.#creds.servingKey}`,
        `--client-ca-file=${this.#creds.caCert}`,
        `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
        '--authorization-mode=Node,RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${this.#creds.saPub}`,
        `--service-account-signing-key-file=${this.#creds.saKey}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        // No controller manager creates each namespace's `default` service account, which this plugin
        // would require of every pod; the pods here are never run by a kubelet anyway.
        '--disable-admission-plugins=ServiceAccount',
        '--allow-privileged=true',
        '--profiling=false',
        ...this.#extraArgs,
      ],
      join(this.dir, 'apiserver.log'),
      'kube-apiserver',
    );
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      for (const p of [this.#etcd, this.#apiserver])
        if (!running(p))
          throw new ApiServerError(
            'E_APISERVER_START',
            `${p.name} exited (${p.child.exitCode ?? p.child.signalCode})`,
          );
      const r = await this.adminClient
        .request('GET', '/readyz', undefined, { timeoutMs: 5000 })
        .catch(() => undefined);
      if (r?.status === 200) break;
      if (performance.now() > deadline) {
        const why = await this.adminClient.request('GET', '/readyz?verbose').catch(() => undefined);
        throw new ApiServerError(
          'E_APISERVER_START',
          `kube-apiserver not ready after ${timeoutMs} ms: ${JSON.stringify(why?.body ?? {}).slice(0, 1500)}`,
        );
      }
      await sleep(200);
    }
    this.readyMs = Math.round(performance.now() - started);
  }

  async #mintAgentToken(): Promise<string> {
    const review = await this.adminClient.call(
      'POST',
      `/api/v1/namespaces/${SA_NAMESPACE}/serviceaccounts/${SA_NAME}/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 86_400 } },
    );
    const token = (review.status as { token?: string } | undefined)?.token;
    if (!token) throw new ApiServerError('E_APISERVER_HTTP', 'TokenRequest returned no token');
    return token;
  }

  /** Creates a Node (or replaces one with the same name) and writes its status (addresses). */
  async createNode(node: KubeObject): Promise<void> {
    const name = node.metadata?.name;
    const { status, ...rest } = node;
    const r = await this.adminClient.request('POST', '/api/v1/nodes', rest);
    if (r.status >= 300 && r.status !== 409)
      throw new ApiServerError(
        'E_APISERVER_HTTP',
        `create node ${name}: ${r.status} ${String(r.body.message)}`,
        r.status,
      );
    if (status) await this.adminClient.mergePatch(`/api/v1/nodes/${name}/status`, { status });
  }

  /** A client with another bearer token (e.g. the agents' service-account token) through the same forwarder. */
  clientFor(token: string): AdminClient {
    return new AdminClient(this.adminClient.socketPath, token, this.#creds.caPem);
  }

  /** Last lines of a process's log (default: etcd and kube-apiserver). */
  logTail(lines = 20, which?: 'etcd' | 'apiserver' | 'forwarder'): string {
    const names = which ? [which] : (['etcd', 'apiserver'] as const);
    return names
      .map((n) => {
        try {
          const text = readFileSync(join(this.dir, `${n}.log`), 'utf8')
            .trimEnd()
            .split('\n')
            .slice(-lines)
            .join('\n');
          return text ? `--- ${n}.log (last ${lines} lines) ---\n${text}` : '';
        } catch {
          return '';
        }
      })
      .filter(Boolean)
      .join('\n');
  }

  get running(): boolean {
    return running(this.#apiserver) && running(this.#etcd);
  }

  /** kube-apiserver's pid (for fault tests: SIGSTOP/SIGCONT). */
  get pid(): number | undefined {
    return this.#apiserver?.child.pid;
  }

  /** Freezes kube-apiserver (SIGSTOP): connections stay open and silent, as with a hung control plane. */
  freeze(): void {
    this.#apiserver?.child.kill('SIGSTOP');
  }

  thaw(): void {
    this.#apiserver?.child.kill('SIGCONT');
  }

  /** Stops kube-apiserver then etcd, keeping etcd's data for start-up again. */
  async stopServers(): Promise<void> {
    await stopProcess(this.#apiserver);
    await stopProcess(this.#etcd);
  }

  /** Starts etcd and kube-apiserver again after stopServers() (same data, token and certificates). */
  async startServers(timeoutMs = 90_000): Promise<void> {
    if (this.running) return;
    await this.stopServers();
    await this.#startServers(timeoutMs);
  }

  /** Stops and starts kube-apiserver + etcd with the same data, token and certificates. */
  async restart(timeoutMs = 90_000): Promise<void> {
    await this.stopServers();
    await this.#startServers(timeoutMs);
  }

  /** The control plane is down for `ms`, then back with the same data. */
  async pause(ms: number): Promise<void> {
    await this.stopServers();
    await sleep(ms);
    await this.#startServers(90_000);
  }

  /** For the exit and signal hooks: kill everything at once, synchronously. */
  teardownSync(): void {
    this.#stopped = true;
    for (const p of [this.#apiserver, this.#etcd, this.#forwarder])
      if (running(p))
        try {
          p!.child.kill('SIGKILL');
        } catch {}
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops every process and removes the instance directory; safe to call more than once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.stopServers();
    await stopProcess(this.#forwarder, 2000);
    rmSync(this.dir, { recursive: true, force: true });
    unregisterOpenLab(this);
  }
}
