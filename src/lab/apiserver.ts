// A real etcd + kube-apiserver inside a lab's network namespace (the underlay router, 198.51.100.254:6443), so
// every node reaches the control plane over the underlay. Test harness only: throwaway credentials (one CA per
// process, pki.ts), RBAC on, the shipped daemonset/rbac.yaml applied, and a token of the `tollgate` service
// account for the agents. This file bootstraps and hands out identities; the processes are control-plane.ts,
// the harness's client admin-client.ts. Must not listen or connect outside the lab.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROUTER } from './addresses.ts';
import { AdminClient, API_PORT, type KubeObject } from './admin-client.ts';
import { installClusterPolicyCrd } from './cnp-crd.ts';
import { ControlPlane } from './control-plane.ts';
import { ApiServerError } from './errors.ts';
import { k8sBinaries } from './k8s-binaries.ts';
import type { Lab } from './lab.ts';
import { labApiCredentials, type Pki } from './pki.ts';
import { registerOpenLab, unregisterOpenLab } from './registry.ts';

const REPO = resolve(import.meta.dirname, '../..');
export const RBAC_MANIFEST = join(REPO, 'daemonset/rbac.yaml');
const SA_NAMESPACE = 'tollgate-system';
const SA_NAME = 'tollgate';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ApiServerOptions {
  /** Node objects to create (World.objects().nodes); status (addresses) is written too. */
  nodes?: KubeObject[];
  /** RBAC manifest applied with the admin identity (default daemonset/rbac.yaml). */
  rbacManifest?: string;
  /** How long to wait for /readyz (default 90 s: parallel tests share two CPUs). */
  readyTimeoutMs?: number;
  /** More kube-apiserver flags (appended; a later flag wins). */
  extraArgs?: string[];
  /** Also install the lab's ClusterNetworkPolicy CRD (src/lab/cnp-crd.ts) before the nodes. */
  clusterPolicyCrd?: boolean;
}

export class ApiServer {
  readonly lab: Lab;
  readonly ns: string;
  readonly url = `https://${ROUTER.nodeNet4}:${API_PORT}`;

  /** What an in-cluster agent reads instead of a kubeconfig (the API's address as the Service's). */
  get inClusterEnv(): NodeJS.ProcessEnv {
    return {
      KUBERNETES_SERVICE_HOST: ROUTER.nodeNet4,
      KUBERNETES_SERVICE_PORT: String(API_PORT),
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
  get readyMs(): number {
    return this.#plane.readyMs;
  }
  /** Milliseconds of the whole start(): ready + RBAC + token + nodes. */
  startMs = 0;
  agentToken = '';
  readonly #creds: Pki;
  readonly #adminToken: string;
  readonly #plane: ControlPlane;
  #stopped = false;

  private constructor(lab: Lab, plane: ControlPlane, creds: Pki, dir: string) {
    this.lab = lab;
    this.ns = lab.networkNs;
    this.dir = dir;
    this.#creds = creds;
    this.#plane = plane;
    this.#adminToken = randomBytes(16).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${this.#adminToken},admin,admin-uid,"system:masters"\n`, {
      mode: 0o600,
    });
    this.adminKubeconfig = join(dir, 'admin.kubeconfig');
    this.agentKubeconfig = join(dir, 'agent.kubeconfig');
    this.agentServiceAccountDir = join(dir, 'serviceaccount');
    writeFileSync(this.adminKubeconfig, this.kubeconfig('admin', this.#adminToken), { mode: 0o600 });
    this.adminClient = new AdminClient(plane.socketPath, this.#adminToken, creds.caPem);
  }

  /**
   * Starts etcd and kube-apiserver in the lab's network namespace, waits for /readyz, applies the RBAC
   * manifest, mints the agents' token and creates the Node objects. Removes everything it made on failure.
   */
  static async start(lab: Lab, options: ApiServerOptions = {}): Promise<ApiServer> {
    const started = performance.now();
    const [creds, bins] = await Promise.all([labApiCredentials(), k8sBinaries()]);
    const dir = mkdtempSync(join(tmpdir(), `tollgate-k8s-${lab.id}-`));
    const plane = new ControlPlane(lab.networkNs, {
      dir,
      tokenFile: join(dir, 'tokens.csv'),
      creds,
      bins,
      extraArgs: options.extraArgs ?? [],
    });
    const api = new ApiServer(lab, plane, creds, dir);
    // Torn down with the labs when the process exits or is signalled before stop().
    registerOpenLab(api);
    try {
      await plane.startForwarder();
      await plane.startServers(api.adminClient, options.readyTimeoutMs ?? 90_000);
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
      if (options.clusterPolicyCrd) await installClusterPolicyCrd(api.adminClient);
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
    return this.#plane.logTail(lines, which);
  }

  get running(): boolean {
    return this.#plane.running;
  }

  /** kube-apiserver's pid (for fault tests: SIGSTOP/SIGCONT). */
  get pid(): number | undefined {
    return this.#plane.pid;
  }

  /** Freezes kube-apiserver (SIGSTOP): connections stay open and silent, as with a hung control plane. */
  freeze(): void {
    this.#plane.freeze();
  }

  thaw(): void {
    this.#plane.thaw();
  }

  /** Stops kube-apiserver then etcd, keeping etcd's data for start-up again. */
  stopServers(): Promise<void> {
    return this.#plane.stopServers();
  }

  /** Starts etcd and kube-apiserver again after stopServers() (same data, token and certificates). */
  async startServers(timeoutMs = 90_000): Promise<void> {
    if (this.running) return;
    await this.restart(timeoutMs);
  }

  /** Stops and starts kube-apiserver + etcd with the same data, token and certificates. */
  async restart(timeoutMs = 90_000): Promise<void> {
    await this.#plane.stopServers();
    await this.#plane.startServers(this.adminClient, timeoutMs);
  }

  /** The control plane is down for `ms`, then back with the same data. */
  async pause(ms: number): Promise<void> {
    await this.#plane.stopServers();
    await sleep(ms);
    await this.#plane.startServers(this.adminClient, 90_000);
  }

  /** For the exit and signal hooks: kill everything at once, synchronously. */
  teardownSync(): void {
    this.#stopped = true;
    this.#plane.killSync();
  }

  /** Stops every process and removes the instance directory; safe to call more than once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#plane.stop();
    unregisterOpenLab(this);
  }
}
