// A real Kubernetes cluster on this machine, in throwaway namespaces, for the tests that need a real kubelet,
// container runtime, kube-proxy and Flannel (issue 15). Test code only; it never routes anything from the
// machine's own namespace and removes everything it made, also when a test fails or the process is killed.
//
// Layout, the way kind runs a cluster (one "node container" per node, here a box of namespaces, see
// _boxes.ts): a hub box holds the control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler) and the image registry (`crane registry serve`) on 198.51.100.1, and a bridge that wires the
// nodes; each node box runs containerd + runc, kubelet (cgroupfs driver), kube-proxy and flanneld (VXLAN),
// as kind's nodes run containerd + kubelet with kube-proxy and the CNI as pods — here as plain processes,
// since no image of them is served. No default route leaves the hub: the lab reaches nothing outside.
//
// Note for the scenario driver (branch cscen): the Cluster interface below is the contract; fields may be
// added, nothing listed changes without a note here.
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { etcdArgs } from '../../src/lab/control-plane.ts';
import { check, run } from '../../src/lab/exec.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { assertLabRangesFree } from '../../src/lab/overlap.ts';
import { registerOpenLab, unregisterOpenLab } from '../../src/lab/registry.ts';
import {
  acquireClusterLock,
  type Box,
  type BoxProcess,
  boxCgroupDirs,
  ClusterError,
  inBox,
  PREFIX,
  type RunState,
  startBox,
  startInBox,
  sweepDeadRuns,
  tail,
  teardownRunSync,
  writeState,
} from './_boxes.ts';
import {
  API_PORT,
  cniConflist,
  containerdConfig,
  flannelNetConf,
  HUB_IP,
  HUB_IP6,
  hostsToml,
  type Identity,
  KUBELET_SYSCTLS,
  kubeconfig,
  kubeletConfig,
  kubeProxyConfig,
  makePki,
  nodeIp,
  nodeIp6,
  nodeName,
  type Pki,
  podCidr,
  podCidr6,
  REGISTRY_NAME,
  REGISTRY_PORT,
  SERVICE_CIDR,
  SERVICE_CIDR6,
  tokensCsv,
} from './_config.ts';

export { ClusterError } from './_boxes.ts';

export interface ClusterOptions {
  /** Worker nodes (each runs kubelet, containerd, kube-proxy, flanneld); default 2. */
  nodes?: number;
  /** kube-proxy mode; default 'nftables' (IPVS is missing on this kernel). */
  proxyMode?: 'iptables' | 'nftables';
  /** true (default): `kubectl apply -f daemonset/` with the lab's image, then wait for the rollout. */
  installTollgate?: boolean;
  /** Opt-in: IPv6 on nodes, pods (fd00:10:244:N::/64) and Services besides IPv4. Default false. */
  dualStack?: boolean;
}

export interface ClusterNode {
  name: string;
  ip4: string;
  /** The node's network namespace name (under /run/netns). */
  netns: string;
  /** Only with dualStack. */
  ip6?: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cluster {
  /** Admin kubeconfig file (its server address is reachable only inside the lab: use kubectl() below). */
  kubeconfig: string;
  nodes: ClusterNode[];
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** Runs a command inside a pod's network namespace (found via the container runtime), e.g. curl. */
  inPodNetns(
    namespace: string,
    pod: string,
    argv: string[],
    opts?: { timeoutMs?: number },
  ): Promise<CommandResult>;
  agnhostImage: string;
  tollgateImage: string;
  stop(): Promise<void>;
}

/** What the harness adds for its own tests (not part of the contract above). */
export interface LabCluster extends Cluster {
  id: string;
  dir: string;
  proxyMode: 'iptables' | 'nftables';
  /** IPv6 besides IPv4 on nodes, pods and Services (ClusterOptions.dualStack). */
  dualStack: boolean;
  /** kubectl that throws (naming the command and its stderr) on a non-zero exit; resolves with stdout. */
  kubectlOk(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** Runs argv in every namespace of a node (its mount namespace too: the node's /run, /var/lib). */
  onNode(node: string, argv: string[], opts?: { timeoutMs?: number }): Promise<CommandResult>;
  /** daemonset/<sub> copied with the lab's image reference (see installTollgate). */
  manifestsWithLabImage(sub?: string, image?: string): string;
  rollout(limitMs?: number): Promise<void>;
  /** Pushes an image under another tag to the lab registry (a "new" image for rolling updates). */
  retagImage(from: string, toTag: string): Promise<string>;
  /** Milliseconds of startCluster: total and per phase. */
  timings: Record<string, number>;
  /** Last lines of a component's log on a box ('hub' or a node name). */
  logTail(box: string, component: string, lines?: number): string;
}

const REPO = resolve(import.meta.dirname, '../..');

export interface ClusterBinaries {
  KUBE_APISERVER: string;
  ETCD: string;
  KUBELET: string;
  KUBE_PROXY: string;
  KUBE_CONTROLLER_MANAGER: string;
  KUBE_SCHEDULER: string;
  KUBECTL: string;
  AGNHOST: string;
  CRANE: string;
  CONTAINERD: string;
  CONTAINERD_SHIM: string;
  CTR: string;
  RUNC: string;
  CNI_BIN_DIR: string;
  FLANNELD: string;
  PAUSE: string;
}
const BINARY_NAMES = [
  'KUBE_APISERVER',
  'ETCD',
  'KUBELET',
  'KUBE_PROXY',
  'KUBE_CONTROLLER_MANAGER',
  'KUBE_SCHEDULER',
  'KUBECTL',
  'AGNHOST',
  'CRANE',
  'CONTAINERD',
  'CONTAINERD_SHIM',
  'CTR',
  'RUNC',
  'CNI_BIN_DIR',
  'FLANNELD',
  'PAUSE',
] as const satisfies readonly (keyof ClusterBinaries)[];

/**
 * The components from the environment (what `eval "$(scripts/cluster-binaries.sh)"` exports), else from
 * running that script (its cache, or a cold build of ~10+ min). TOLLGATE_CLUSTER_UNAVAILABLE (set by .ci/run
 * when the build failed) fails at once, naming the reason: these tests must not pass by skipping.
 */
export async function clusterBinaries(): Promise<ClusterBinaries> {
  if (process.env.TOLLGATE_CLUSTER_UNAVAILABLE)
    throw new ClusterError(
      'E_CLUSTER_BINARIES',
      `the cluster components are not available: ${process.env.TOLLGATE_CLUSTER_UNAVAILABLE}. Build them with scripts/cluster-binaries.sh.`,
    );
  const env: Record<string, string | undefined> = { ...process.env };
  if (BINARY_NAMES.some((n) => !env[n])) {
    const r = await run([join(REPO, 'scripts/cluster-binaries.sh')], { timeoutMs: 60 * 60_000 });
    if (r.code !== 0)
      throw new ClusterError(
        'E_CLUSTER_BINARIES',
        `scripts/cluster-binaries.sh failed: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`,
      );
    for (const line of r.stdout.split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2];
    }
  }
  const missing = BINARY_NAMES.filter((n) => !env[n] || !existsSync(env[n]!));
  if (missing.length > 0)
    throw new ClusterError(
      'E_CLUSTER_BINARIES',
      `missing cluster components: ${missing.map((n) => `${n}=${env[n] ?? ''}`).join(', ')} (scripts/cluster-binaries.sh builds them)`,
    );
  return Object.fromEntries(BINARY_NAMES.map((n) => [n, env[n]!])) as unknown as ClusterBinaries;
}

/** The agent image archive: TOLLGATE_IMAGE_TAR, else what scripts/build-image.sh prints as IMAGE_TAR=. */
async function agentImageTar(): Promise<string> {
  const fromEnv = process.env.TOLLGATE_IMAGE_TAR;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const script = join(REPO, 'scripts/build-image.sh');
  if (!existsSync(script))
    throw new ClusterError(
      'E_CLUSTER_BINARIES',
      'no agent image: set TOLLGATE_IMAGE_TAR or add scripts/build-image.sh (prints IMAGE_TAR=<path>)',
    );
  const r = await run([script], { timeoutMs: 30 * 60_000 });
  const tar = /^IMAGE_TAR=(.*)$/m.exec(r.stdout)?.[1];
  // The archive is what counts: build-image.sh has been seen to exit 143 from its cleanup trap after
  // printing a complete image (the registry it kills), so a printed, existing tar is taken, the code logged.
  if (!tar || !existsSync(tar))
    throw new ClusterError(
      'E_CLUSTER_BINARIES',
      `scripts/build-image.sh failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`,
    );
  if (r.code !== 0) console.error(`startCluster: scripts/build-image.sh exited ${r.code} but printed ${tar}`);
  return tar;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value (not undefined), or fails naming `what` with the last observation. */
export async function waitFor<T>(
  what: string,
  limitMs: number,
  fn: () => Promise<T | undefined>,
  intervalMs = 250,
): Promise<T> {
  const deadline = performance.now() + scaledMs(limitMs);
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline)
      throw new ClusterError(
        'E_CLUSTER_START',
        `timed out after ${scaledMs(limitMs)} ms waiting for ${what}`,
      );
    await sleep(intervalMs);
  }
}

const NO_PROXY_ENV = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' };

class RealCluster implements LabCluster {
  readonly id: string;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly nodes: ClusterNode[] = [];
  readonly proxyMode: 'iptables' | 'nftables';
  dualStack = false;
  readonly agnhostImage = `${REGISTRY_NAME}/agnhost:lab`;
  readonly pauseImage = `${REGISTRY_NAME}/pause:lab`;
  tollgateImage = `${REGISTRY_NAME}/tollgate:lab`;
  readonly timings: Record<string, number> = {};
  readonly state: RunState;
  readonly bins: ClusterBinaries;
  hub: Box | undefined;
  readonly boxes = new Map<string, Box>();
  readonly procs: BoxProcess[] = [];
  readonly #podNetns = new Map<string, string>();
  #release: (() => void) | undefined;
  #stopped = false;

  constructor(bins: ClusterBinaries, proxyMode: 'iptables' | 'nftables', release: () => void) {
    this.bins = bins;
    this.proxyMode = proxyMode;
    this.#release = release;
    this.id = randomBytes(3).toString('hex');
    this.dir = mkdtempSync(join(tmpdir(), `${PREFIX}${this.id}-`));
    this.kubeconfig = join(this.dir, 'admin.kubeconfig');
    this.state = { id: this.id, pid: process.pid, dir: this.dir, netns: [], cgroups: [] };
    writeState(this.state);
    registerOpenLab(this);
  }

  get serviceCidrs(): string {
    return this.dualStack ? `${SERVICE_CIDR},${SERVICE_CIDR6}` : SERVICE_CIDR;
  }

  get hubNetns(): string {
    return `${PREFIX}${this.id}-hub`;
  }

  kubectl(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    return run(
      [
        'nsenter',
        `--net=/run/netns/${this.hubNetns}`,
        this.bins.KUBECTL,
        `--kubeconfig=${this.kubeconfig}`,
        ...args,
      ],
      { input: opts.input, timeoutMs: opts.timeoutMs ?? scaledMs(60_000), env: NO_PROXY_ENV },
    );
  }

  async kubectlOk(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0)
      throw new ClusterError(
        'E_CLUSTER_COMMAND',
        `kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`,
      );
    return r.stdout;
  }

  box(name: string): Box {
    const b = name === 'hub' ? this.hub : this.boxes.get(name);
    if (!b) throw new ClusterError('E_CLUSTER_COMMAND', `no box named ${name} in cluster ${this.id}`);
    return b;
  }

  onNode(node: string, argv: string[], opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
    const b = this.box(node);
    return run(inBox(b, argv), {
      timeoutMs: opts.timeoutMs ?? scaledMs(60_000),
      env: NO_PROXY_ENV,
    });
  }

  logTail(box: string, component: string, lines = 20): string {
    return tail(join(this.box(box).root, 'logs', `${component}.log`), lines);
  }

  /**
   * The pod's sandbox, asked of the node's containerd (its CRI labels name the pod), gives the network
   * namespace path inside the node; /proc/<node init>/root reaches it from here. Cached per pod until the
   * file is gone (a pod recreated under the same name gets a new sandbox).
   */
  async podNetnsPath(namespace: string, pod: string): Promise<string> {
    const key = `${namespace}/${pod}`;
    const cached = this.#podNetns.get(key);
    if (cached && existsSync(cached)) return cached;
    const node = (
      await this.kubectlOk(['get', 'pod', '-n', namespace, pod, '-o', 'jsonpath={.spec.nodeName}'])
    ).trim();
    if (!node) throw new ClusterError('E_CLUSTER_COMMAND', `pod ${key} is not scheduled yet`);
    const b = this.box(node);
    const sock = `/proc/${b.initPid}/root/run/containerd/containerd.sock`;
    const ctr = [this.bins.CTR, '--address', sock, '--namespace', 'k8s.io'];
    const filter = `labels."io.kubernetes.pod.namespace"==${namespace},labels."io.kubernetes.pod.name"==${pod},labels."io.cri-containerd.kind"==sandbox`;
    const ids = (await check([...ctr, 'containers', 'list', '--quiet', filter])).stdout
      .trim()
      .split('\n')
      .filter(Boolean);
    for (const id of ids) {
      const info = JSON.parse((await check([...ctr, 'containers', 'info', id])).stdout) as {
        Spec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
      };
      const path = info.Spec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
      // /var/run is an absolute symlink to /run: under /proc/<pid>/root it would resolve in *our* root.
      const full = path ? `/proc/${b.initPid}/root${path.replace(/^\/var\/run\//, '/run/')}` : '';
      if (full && existsSync(full)) {
        this.#podNetns.set(key, full);
        return full;
      }
    }
    throw new ClusterError(
      'E_CLUSTER_COMMAND',
      `no live sandbox with a network namespace for pod ${key} on ${node}`,
    );
  }

  async inPodNetns(
    namespace: string,
    pod: string,
    argv: string[],
    opts: { timeoutMs?: number } = {},
  ): Promise<CommandResult> {
    const path = await this.podNetnsPath(namespace, pod);
    return run(['nsenter', `--net=${path}`, '--', ...argv], {
      timeoutMs: opts.timeoutMs ?? scaledMs(30_000),
      env: NO_PROXY_ENV,
    });
  }

  crane(args: string[], timeoutMs = 120_000): Promise<CommandResult> {
    return check(['nsenter', `--net=/run/netns/${this.hubNetns}`, this.bins.CRANE, ...args], {
      timeoutMs: scaledMs(timeoutMs),
      env: NO_PROXY_ENV,
    });
  }

  async retagImage(from: string, toTag: string): Promise<string> {
    const src = from.replace(REGISTRY_NAME, `${HUB_IP}:${REGISTRY_PORT}`);
    const repo = src.replace(/:[^:/]+$/, '');
    await this.crane(['tag', '--insecure', src, toTag]);
    return `${repo.replace(`${HUB_IP}:${REGISTRY_PORT}`, REGISTRY_NAME)}:${toTag}`;
  }

  // ---- bring-up ---------------------------------------------------------------------------------------

  async start(nodeCount: number, installTollgate: boolean): Promise<void> {
    const t0 = performance.now();
    const mark = (phase: string, since: number) => {
      this.timings[phase] = Math.round(performance.now() - since);
    };
    const pkiDir = join(this.dir, 'pki');
    mkdirSync(pkiDir);
    const tokens = (user: string, groups: string[]): Identity => ({
      file: join(this.dir, `${user.replaceAll(':', '-')}.kubeconfig`),
      user,
      groups,
      token: randomBytes(16).toString('hex'),
    });
    const admin = tokens('admin', ['system:masters']);
    admin.file = this.kubeconfig;
    const ids = [
      admin,
      // Lab only: the controllers share one identity (no per-controller service accounts to wait for).
      tokens('system:kube-controller-manager', ['system:masters']),
      tokens('system:kube-scheduler', []),
      tokens('system:kube-proxy', []),
      // flanneld patches Node annotations; lab only, so it shares the admin group.
      tokens('flannel', ['system:masters']),
      ...Array.from({ length: nodeCount }, (_, k) =>
        tokens(`system:node:${nodeName(k + 1)}`, ['system:nodes']),
      ),
    ];
    const [pki] = await Promise.all([makePki(pkiDir), this.#network(nodeCount)]);
    for (const id of ids) writeFileSync(id.file, kubeconfig(pki, id.user, id.token), { mode: 0o600 });
    writeFileSync(join(this.dir, 'tokens.csv'), tokensCsv(ids), { mode: 0o600 });
    mark('network+pki', t0);

    let t = performance.now();
    this.hub = await startBox({
      name: 'hub',
      netns: this.hubNetns,
      root: join(this.dir, 'hub'),
      initBinary: this.bins.PAUSE,
      hostname: 'hub',
      timeoutMs: scaledMs(20_000),
    });
    await this.#controlPlane(pki, ids);
    mark('control-plane', t);

    t = performance.now();
    await Promise.all([this.#pushBaseImages(), this.#createNodes(nodeCount)]);
    mark('images+node-objects', t);

    t = performance.now();
    await Promise.all(Array.from({ length: nodeCount }, (_, k) => this.#startNode(k + 1, ids)));
    await waitFor(
      `${nodeCount} nodes Ready`,
      180_000,
      async () => {
        const r = await this.kubectl(['get', 'nodes', '-o', 'json']);
        if (r.code !== 0) return undefined;
        const items = (JSON.parse(r.stdout) as { items: NodeJson[] }).items;
        const ready = items.filter((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        return ready.length === nodeCount ? true : undefined;
      },
      1000,
    );
    // Pods need their namespace's `default` service account (the controller manager makes it).
    await waitFor('the default service account', 60_000, async () =>
      (await this.kubectl(['get', 'serviceaccount', 'default', '-n', 'default'])).code === 0
        ? true
        : undefined,
    );
    mark('nodes-ready', t);

    if (installTollgate) {
      t = performance.now();
      await this.installTollgate();
      mark('install-tollgate', t);
    }
    mark('total', t0);
  }

  async #network(nodeCount: number): Promise<void> {
    const hub = this.hubNetns;
    this.state.netns.push(hub);
    writeState(this.state);
    await check(['ip', 'netns', 'add', hub]);
    const hubLines = [
      'link set lo up',
      'link add br0 type bridge',
      `addr add ${HUB_IP}/24 dev br0`,
      ...(this.dualStack ? [`addr add ${HUB_IP6}/64 dev br0 nodad`] : []),
      'link set br0 up',
    ];
    for (let i = 1; i <= nodeCount; i++) {
      const ns = `${PREFIX}${this.id}-n${i}`;
      this.state.netns.push(ns);
      writeState(this.state);
      await check(['ip', 'netns', 'add', ns]);
      // Created inside the hub with its peer straight in the node: no link ever exists in the machine's namespace.
      hubLines.push(
        `link add v${i} type veth peer name eth0 netns ${ns}`,
        `link set v${i} master br0`,
        `link set v${i} up`,
      );
      this.nodes.push({
        name: nodeName(i),
        ip4: nodeIp(i),
        netns: ns,
        ...(this.dualStack ? { ip6: nodeIp6(i) } : {}),
      });
    }
    await check(['ip', '-n', hub, '-batch', '-'], { input: `${hubLines.join('\n')}\n` });
    for (const n of this.nodes) {
      await check(['ip', '-n', n.netns, '-batch', '-'], {
        input: [
          'link set lo up',
          `addr add ${n.ip4}/24 dev eth0`,
          'link set eth0 up',
          // The hub forwards nothing and routes nowhere else: this default route ends in the lab.
          `route add default via ${HUB_IP}`,
          ...(this.dualStack && n.ip6
            ? [`addr add ${n.ip6}/64 dev eth0 nodad`, `route add default via ${HUB_IP6}`]
            : []),
          '',
        ].join('\n'),
      });
      // br_netfilter for the node's bridge (per network namespace): same-node pod traffic reaches the
      // forward hook (kube-proxy and tollgate) as on every real bridge-CNI node.
      await check([
        'nsenter',
        `--net=/run/netns/${n.netns}`,
        'sh',
        '-ec',
        'echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv6/conf/all/forwarding; echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables',
      ]);
    }
  }

  #start(box: Box, name: string, argv: string[], env: NodeJS.ProcessEnv = {}): BoxProcess {
    const p = startInBox(box, name, argv, env);
    this.procs.push(p);
    return p;
  }

  async #controlPlane(pki: Pki, ids: Identity[]): Promise<void> {
    const hub = this.hub!;
    const d = this.dir;
    mkdirSync(join(d, 'etcd'));
    this.#start(hub, 'etcd', [this.bins.ETCD, ...etcdArgs(join(d, 'etcd'))]);
    this.#start(hub, 'kube-apiserver', [
      this.bins.KUBE_APISERVER,
      '--etcd-servers=http://127.0.0.1:2379',
      `--bind-address=${HUB_IP}`,
      `--advertise-address=${HUB_IP}`,
      `--secure-port=${API_PORT}`,
      `--cert-dir=${join(d, 'apiserver-certs')}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--token-auth-file=${join(d, 'tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${this.serviceCidrs}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--allow-privileged=true',
      '--profiling=false',
    ]);
    await waitFor('kube-apiserver /readyz', 120_000, async () => {
      this.#assertRunning(['etcd', 'kube-apiserver']);
      const r = await this.kubectl(['get', '--raw', '/readyz'], { timeoutMs: 10_000 });
      return r.code === 0 ? true : undefined;
    });
    const kubeconfigOf = (user: string) => ids.find((i) => i.user === user)!.file;
    this.#start(hub, 'kube-controller-manager', [
      this.bins.KUBE_CONTROLLER_MANAGER,
      `--kubeconfig=${kubeconfigOf('system:kube-controller-manager')}`,
      `--authentication-kubeconfig=${kubeconfigOf('system:kube-controller-manager')}`,
      `--authorization-kubeconfig=${kubeconfigOf('system:kube-controller-manager')}`,
      '--leader-elect=false',
      `--root-ca-file=${pki.caCert}`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${this.serviceCidrs}`,
      '--bind-address=127.0.0.1',
      '--controllers=*,-nodeipam',
      '--use-service-account-credentials=false',
    ]);
    this.#start(hub, 'kube-scheduler', [
      this.bins.KUBE_SCHEDULER,
      `--kubeconfig=${kubeconfigOf('system:kube-scheduler')}`,
      `--authentication-kubeconfig=${kubeconfigOf('system:kube-scheduler')}`,
      `--authorization-kubeconfig=${kubeconfigOf('system:kube-scheduler')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
    ]);
    mkdirSync(join(d, 'registry'));
    this.#start(hub, 'registry', [
      this.bins.CRANE,
      'registry',
      'serve',
      `--address=${HUB_IP}:${REGISTRY_PORT}`,
      `--disk=${join(d, 'registry')}`,
    ]);
    await waitFor('the lab registry', 30_000, async () => {
      this.#assertRunning(['registry']);
      const r = await run(
        [
          'nsenter',
          `--net=/run/netns/${this.hubNetns}`,
          'curl',
          '-sf',
          '--max-time',
          '2',
          `http://${HUB_IP}:${REGISTRY_PORT}/v2/`,
        ],
        { env: NO_PROXY_ENV },
      );
      return r.code === 0 ? true : undefined;
    });
  }

  #assertRunning(names: string[]): void {
    for (const p of this.procs)
      if (names.includes(p.name) && p.child.exitCode !== null)
        throw new ClusterError('E_CLUSTER_START', `${p.name} exited ${p.child.exitCode}:\n${tail(p.log)}`);
  }

  /** pause and agnhost as one-layer images, built from the static binaries; no base image from outside. */
  async #pushBaseImages(): Promise<void> {
    const reg = `${HUB_IP}:${REGISTRY_PORT}`;
    for (const [name, binary, entrypoint] of [
      ['pause', this.bins.PAUSE, '/pause'],
      ['agnhost', this.bins.AGNHOST, '/agnhost'],
    ] as const) {
      const root = join(this.dir, `image-${name}`);
      mkdirSync(root);
      await check(['cp', binary, join(root, entrypoint.slice(1))]);
      await check(['tar', '-C', root, '--owner=0', '--group=0', '-cf', `${root}.tar`, '.']);
      await this.crane([
        'append',
        '--insecure',
        '--oci-empty-base',
        '-f',
        `${root}.tar`,
        '-t',
        `${reg}/${name}:base`,
      ]);
      await this.crane([
        'mutate',
        '--insecure',
        `--entrypoint=${entrypoint}`,
        '--set-platform=linux/amd64',
        '-t',
        `${reg}/${name}:lab`,
        `${reg}/${name}:base`,
      ]);
    }
  }

  async #createNodes(nodeCount: number): Promise<void> {
    // Made before the kubelets register so that each gets its podCIDR (10.244.N.0/24) and carries an
    // annotation: flanneld panics on a Node without any.
    for (let i = 1; i <= nodeCount; i++) {
      const node = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: nodeName(i),
          labels: { 'kubernetes.io/hostname': nodeName(i), 'kubernetes.io/os': 'linux' },
          annotations: { 'tollgate.test/lab': this.id },
        },
        spec: {
          podCIDR: podCidr(i),
          podCIDRs: this.dualStack ? [podCidr(i), podCidr6(i)] : [podCidr(i)],
        },
      };
      await this.kubectlOk(['create', '-f', '-'], { input: JSON.stringify(node) });
    }
  }

  async #startNode(i: number, ids: Identity[]): Promise<void> {
    const n = this.nodes[i - 1]!;
    const root = join(this.dir, n.name);
    const etc = join(root, 'etc');
    mkdirSync(join(etc, 'cni'), { recursive: true });
    mkdirSync(join(etc, 'certs.d', REGISTRY_NAME), { recursive: true });
    writeFileSync(join(etc, 'certs.d', REGISTRY_NAME, 'hosts.toml'), hostsToml());
    writeFileSync(join(etc, 'cni', '10-bridge.conflist'), cniConflist(i, this.dualStack));
    writeFileSync(
      join(etc, 'containerd.toml'),
      containerdConfig({
        runc: this.bins.RUNC,
        cniBinDir: this.bins.CNI_BIN_DIR,
        cniConfDir: join(etc, 'cni'),
        certsDir: join(etc, 'certs.d'),
        pauseImage: this.pauseImage,
      }),
    );
    writeFileSync(join(etc, 'resolv.conf'), '');
    writeFileSync(join(etc, 'kubelet.yaml'), kubeletConfig(i, join(etc, 'resolv.conf')));
    const kubeconfigOf = (user: string) => ids.find((x) => x.user === user)!.file;
    writeFileSync(
      join(etc, 'kube-proxy.yaml'),
      kubeProxyConfig(i, this.proxyMode, kubeconfigOf('system:kube-proxy'), this.dualStack),
    );
    writeFileSync(join(etc, 'net-conf.json'), flannelNetConf(this.dualStack));
    const cgroupName = `${PREFIX}${this.id}-${n.name}`;
    this.state.cgroups.push(...boxCgroupDirs(cgroupName));
    writeState(this.state);
    const box = await startBox({
      name: n.name,
      netns: n.netns,
      root,
      initBinary: this.bins.PAUSE,
      hostname: n.name,
      cgroupName,
      sysctls: KUBELET_SYSCTLS,
      timeoutMs: scaledMs(20_000),
    });
    this.boxes.set(n.name, box);
    const path = `${resolve(this.bins.CONTAINERD, '..')}:${process.env.PATH}`;
    this.#start(box, `containerd`, [this.bins.CONTAINERD, '--config', join(etc, 'containerd.toml')], {
      PATH: path,
    });
    await waitFor(`containerd on ${n.name}`, 60_000, async () => {
      this.#assertRunning(['containerd']);
      return existsSync(join(root, 'run', 'containerd', 'containerd.sock')) ? true : undefined;
    });
    this.#start(
      box,
      'kubelet',
      [
        this.bins.KUBELET,
        `--config=${join(etc, 'kubelet.yaml')}`,
        `--kubeconfig=${kubeconfigOf(`system:node:${n.name}`)}`,
        `--hostname-override=${n.name}`,
        `--node-ip=${n.ip6 ? `${n.ip4},${n.ip6}` : n.ip4}`,
        '--v=1',
      ],
      { PATH: path },
    );
    this.#start(
      box,
      'kube-proxy',
      [this.bins.KUBE_PROXY, `--config=${join(etc, 'kube-proxy.yaml')}`, '--v=1'],
      {
        PATH: path,
      },
    );
    this.#start(
      box,
      'flanneld',
      [
        this.bins.FLANNELD,
        '--kube-subnet-mgr',
        `--kubeconfig-file=${kubeconfigOf('flannel')}`,
        '--iface=eth0',
        `--net-config-path=${join(etc, 'net-conf.json')}`,
        '--subnet-file=/run/flannel/subnet.env',
      ],
      { PATH: path, NODE_NAME: n.name, POD_NAME: 'flannel', POD_NAMESPACE: 'kube-system' },
    );
  }

  // ---- tollgate ---------------------------------------------------------------------------------------

  /**
   * As a user installs it with their own registry: the manifests of daemonset/ (or a subdirectory) copied to
   * a temp dir with only `image: tollgate:0.1.0` replaced by the lab's reference (a sed, no kustomize), then
   * `kubectl apply -f <copy>/`. Returns the copy's directory.
   */
  manifestsWithLabImage(sub = '', image = this.tollgateImage): string {
    const src = join(REPO, 'daemonset', sub);
    const dst = mkdtempSync(join(this.dir, 'manifests-'));
    for (const f of readdirSync(src).filter((n) => /\.ya?ml$/.test(n))) {
      const text = readFileSync(join(src, f), 'utf8');
      writeFileSync(join(dst, f), text.replaceAll(/image: tollgate:[0-9.]+/g, `image: ${image}`));
    }
    return dst;
  }

  async installTollgate(): Promise<void> {
    // A copy: another run of build-image.sh may replace its cache entry while this one pushes.
    const tar = join(this.dir, 'tollgate-image.tar');
    copyFileSync(await agentImageTar(), tar);
    await this.crane(['push', '--insecure', tar, `${HUB_IP}:${REGISTRY_PORT}/tollgate:lab`], 300_000);
    await this.kubectlOk(['apply', '-f', `${this.manifestsWithLabImage()}/`]);
    await this.rollout();
  }

  async rollout(limitMs = 300_000): Promise<void> {
    const r = await this.kubectl(
      [
        '-n',
        'tollgate-system',
        'rollout',
        'status',
        'daemonset/tollgate',
        `--timeout=${Math.round(scaledMs(limitMs) / 1000)}s`,
      ],
      { timeoutMs: scaledMs(limitMs) + 30_000 },
    );
    if (r.code !== 0) {
      const pods = await this.kubectl(['-n', 'tollgate-system', 'get', 'pods', '-o', 'wide']);
      throw new ClusterError(
        'E_CLUSTER_START',
        `tollgate rollout did not finish: ${r.stderr.trim()}\n${pods.stdout}`,
      );
    }
  }

  // ---- teardown ---------------------------------------------------------------------------------------

  teardownSync(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const inits = [this.hub, ...this.boxes.values()]
      .filter((b): b is Box => b !== undefined)
      .map((b) => b.initPid);
    teardownRunSync(this.state, inits);
    this.#release?.();
    this.#release = undefined;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.teardownSync();
    unregisterOpenLab(this);
  }
}

interface NodeJson {
  metadata: { name: string };
  status?: { conditions?: { type: string; status: string }[] };
}

/**
 * Brings up a cluster (binaries built or reused, see clusterBinaries()) and, by default, installs tollgate
 * from daemonset/. One cluster at a time on the machine: a second caller waits for the first to stop.
 * Everything is removed on failure; stop() removes it afterwards.
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<LabCluster> {
  const nodeCount = opts.nodes ?? 2;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9)
    throw new ClusterError('E_CLUSTER_START', `nodes must be 1..9, got ${opts.nodes}`);
  await assertLabRangesFree();
  const bins = await clusterBinaries();
  await sweepDeadRuns();
  const release = await acquireClusterLock(scaledMs(30 * 60_000));
  const cluster = new RealCluster(bins, opts.proxyMode ?? 'nftables', release);
  cluster.dualStack = opts.dualStack ?? false;
  try {
    await cluster.start(nodeCount, opts.installTollgate ?? true);
  } catch (error) {
    const logs = [...cluster.procs]
      .filter((p) => p.child.exitCode !== null)
      .map((p) => `--- ${p.name} exited ${p.child.exitCode} ---\n${tail(p.log, 10)}`)
      .join('\n');
    await cluster.stop();
    if (error instanceof Error && logs) error.message += `\n${logs}`;
    throw error;
  }
  return cluster;
}

/** For a manual look: `node test/cluster/_cluster.ts` starts a cluster, prints its timings, stops it. */
if (import.meta.main) {
  const c = await startCluster({
    installTollgate: process.argv.includes('--install'),
    dualStack: process.argv.includes('--dual-stack'),
  });
  console.log(JSON.stringify({ id: c.id, timings: c.timings, nodes: c.nodes }));
  console.log((await c.kubectl(['get', 'nodes,pods', '-A', '-o', 'wide'])).stdout);
  if (process.argv.includes('--keep')) {
    console.log(`kubeconfig ${c.kubeconfig}; hub netns ${PREFIX}${c.id}-hub; Ctrl-C stops`);
    await new Promise(() => {});
  }
  await c.stop();
}
