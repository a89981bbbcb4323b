// The lab: a Flannel-like cluster of network namespaces on this machine (nodes, pods, outside hosts) with
// servers in every pod and probes run from inside the source namespace. Must never configure the root
// namespace or send traffic outside 10.244/16, fd00:10:244::/48, 198.51.100/24, 2001:db8::/64, 203.0.113/24,
// 2001:db8:203::/64.
import { isIP } from 'node:net';
import { type Cidr, cidrRange, parseAddress, parseCidr, rangeContains } from '../policy/address.ts';
import {
  gateway4,
  HOST_NET6,
  hostAddress6,
  hostNumber4,
  podIP4,
  podIP6,
  prefix4,
  prefix6,
  ROUTER,
} from './addresses.ts';
import { AgentClient } from './agent-client.ts';
import { CURL_ENV, curlProbeArgv } from './curl.ts';
import { LabError } from './errors.ts';
import { bridgeBatch, check, inNamespace, ipBatch, mapLimit, run, sysctls } from './exec.ts';
import { assertLabRangesFree } from './overlap.ts';
import {
  NS_PREFIX,
  newLabId,
  registerOpenLab,
  removeNamespaces,
  removeNamespacesSync,
  removeOwner,
  unregisterOpenLab,
  writeOwner,
} from './registry.ts';
import type {
  ExecResult,
  HostSpec,
  LabSpec,
  NodeSpec,
  PodSpec,
  ProbeOptions,
  ProbeRequest,
  ProbeResult,
  Protocol,
} from './types.ts';
import {
  hostLines,
  networkLines,
  nodeBridgeLines,
  nodeLines,
  podAttachLines,
  podLines,
  SYSCTLS,
} from './wiring.ts';

export interface LabOptions {
  /** Lab id used in every namespace name (default: random). */
  id?: string;
  /** Agents outlive this process (for `tollgate lab up`); such a lab cannot add pods or send UDP probes. */
  detached?: boolean;
}

/** A pod as the lab runs it: the spec with its addresses filled in. */
export interface LabPod extends PodSpec {
  ip4: string;
  ip6: string;
  /** The pod's own namespace, or the node's for a hostNetwork pod. */
  ns: string;
}

interface PodState {
  pod: LabPod;
  veth?: string;
  agent?: AgentClient;
}

interface HostState {
  host: HostSpec;
  ns: string;
  agent?: AgentClient;
}

interface NodeState {
  node: NodeSpec;
  ns: string;
  agent?: AgentClient;
  /** Host numbers in use in the pod CIDR, and the next never-used one (fresh pods do not reuse addresses). */
  used: Set<number>;
  nextHost: number;
  nextVeth: number;
}

const ENDPOINT_HOST = 'host/';
const ENDPOINT_NODE = 'node/';
const DEFAULT_TIMEOUT_MS = 2000;
const PROBE_CONCURRENCY = 16;
const SETUP_CONCURRENCY = 16;

function sanitize(part: string): string {
  return part.replace(/[^A-Za-z0-9.-]/g, '-');
}

export class Lab {
  readonly id: string;
  readonly detached: boolean;
  readonly networkNs: string;
  #nodes = new Map<number, NodeState>();
  #pods = new Map<string, PodState>();
  #hosts = new Map<string, HostState>();
  #down = false;
  #hostPorts = 0;

  private constructor(id: string, detached: boolean) {
    this.id = id;
    this.detached = detached;
    this.networkNs = `${NS_PREFIX}${id}-net`;
  }

  /** Builds the whole cluster and resolves once every server listens; on failure removes what it made. */
  static async up(spec: LabSpec, options: LabOptions = {}): Promise<Lab> {
    const lab = new Lab(options.id ?? newLabId(), options.detached ?? false);
    validateSpec(spec);
    await assertLabRangesFree();
    writeOwner(lab.id, lab.detached);
    registerOpenLab(lab);
    try {
      await lab.#build(spec);
    } catch (error) {
      await lab.down();
      throw error;
    }
    if (lab.detached) unregisterOpenLab(lab);
    return lab;
  }

  async #build(spec: LabSpec): Promise<void> {
    for (const node of spec.nodes) {
      this.#nodes.set(node.index, {
        node,
        ns: `${NS_PREFIX}${this.id}-node${node.index}`,
        used: new Set([0, 1, 255]),
        nextHost: 10,
        nextVeth: 1,
      });
    }
    for (const host of spec.hosts) {
      this.#hosts.set(host.name, {
        host: { ...host, ip6: hostAddress6(host) },
        ns: `${NS_PREFIX}${this.id}-host-${sanitize(host.name)}`,
      });
    }
    const pods = spec.pods.map((p) => this.#admitPod(p));

    const nodes = [...this.#nodes.values()];
    const hosts = [...this.#hosts.values()];
    const podNamespaces = pods.filter((p) => !p.pod.hostNetwork).map((p) => p.pod.ns);
    const all = [this.networkNs, ...nodes.map((n) => n.ns), ...hosts.map((h) => h.ns), ...podNamespaces];
    await ipBatch(
      undefined,
      all.map((ns) => `netns add ${ns}`),
    );
    await mapLimit(all, SETUP_CONCURRENCY, (ns) =>
      sysctls(
        ns,
        ns === this.networkNs
          ? SYSCTLS.network
          : nodes.some((n) => n.ns === ns)
            ? SYSCTLS.node
            : hosts.some((h) => h.ns === ns)
              ? SYSCTLS.host
              : SYSCTLS.pod,
      ),
    );
    const nodeSpecs = nodes.map((n) => n.node);
    await ipBatch(
      this.networkNs,
      networkLines(
        nodeSpecs,
        (n) => this.#node(n.index).ns,
        hosts.map((h) => ({ port: this.#hostPort(), ns: h.ns })),
      ),
    );
    await mapLimit([...nodes, ...hosts], SETUP_CONCURRENCY, async (x) => {
      if ('node' in x) {
        const attach = pods
          .filter((p) => p.pod.node === x.node.index && !p.pod.hostNetwork)
          .flatMap((p) => {
            p.veth = `veth${x.nextVeth++}`;
            return podAttachLines(p.veth, p.pod.ns, p.pod.ip4);
          });
        await ipBatch(x.ns, [...nodeLines(x.node, nodeSpecs), ...attach]);
        const fdb = nodeBridgeLines(x.node, nodeSpecs);
        if (fdb.length > 0) await bridgeBatch(x.ns, fdb);
      } else {
        await ipBatch(x.ns, hostLines(x.host));
      }
    });
    await mapLimit(
      pods.filter((p) => !p.pod.hostNetwork),
      SETUP_CONCURRENCY,
      (p) => ipBatch(p.pod.ns, podLines(this.#node(p.pod.node).node, p.pod.ip4, p.pod.ip6)),
    );
    await this.#startAgents(pods);
  }

  async #startAgents(pods: PodState[]): Promise<void> {
    const start: (() => Promise<void>)[] = [];
    for (const node of this.#nodes.values()) {
      const ports = pods
        .filter((p) => p.pod.node === node.node.index && p.pod.hostNetwork)
        .flatMap((p) => p.pod.ports);
      start.push(async () => {
        node.agent = await AgentClient.start(node.ns, `node/${node.node.index}`, ports, this.detached);
      });
    }
    for (const host of this.#hosts.values()) {
      start.push(async () => {
        host.agent = await AgentClient.start(
          host.ns,
          `host/${host.host.name}`,
          host.host.ports,
          this.detached,
        );
      });
    }
    for (const p of pods.filter((p) => !p.pod.hostNetwork)) {
      start.push(async () => {
        p.agent = await AgentClient.start(p.pod.ns, p.pod.key, p.pod.ports, this.detached);
      });
    }
    await mapLimit(start, SETUP_CONCURRENCY, (f) => f());
  }

  #hostPort(): string {
    return `h${++this.#hostPorts}`;
  }

  #node(index: number): NodeState {
    const node = this.#nodes.get(index);
    if (!node) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no node ${index}`);
    return node;
  }

  /** Validates a pod against the lab, assigns its addresses and records it (no kernel changes yet). */
  #admitPod(spec: PodSpec): PodState {
    if (this.#pods.has(spec.key))
      throw new LabError('E_LAB_SPEC', `pod ${spec.key} already exists in lab ${this.id}`);
    if (!/^[^/\s]+\/[^/\s]+$/.test(spec.key)) {
      throw new LabError('E_LAB_SPEC', `pod key '${spec.key}' is not namespace/name`);
    }
    const node = this.#node(spec.node);
    let pod: LabPod;
    if (spec.hostNetwork) {
      for (const other of this.#pods.values()) {
        if (other.pod.hostNetwork && other.pod.node === spec.node) {
          const clash = spec.ports.find((p) =>
            other.pod.ports.some((q) => q.port === p.port && q.protocol === p.protocol),
          );
          if (clash) {
            throw new LabError(
              'E_LAB_SPEC',
              `hostNetwork pods ${other.pod.key} and ${spec.key} both serve ${clash.port}/${clash.protocol} on node ${spec.node}`,
            );
          }
        }
      }
      pod = { ...spec, ports: [...spec.ports], ip4: node.node.ip4, ip6: node.node.ip6, ns: node.ns };
    } else {
      let host: number;
      if (spec.ip4 !== undefined) {
        const h = hostNumber4(node.node.podCIDR4, spec.ip4);
        if (h === undefined || h < 2 || h > 254) {
          throw new LabError(
            'E_LAB_SPEC',
            `pod ${spec.key}: ${spec.ip4} is not a pod address of node ${spec.node} (${node.node.podCIDR4})`,
          );
        }
        if (node.used.has(h))
          throw new LabError('E_LAB_SPEC', `pod ${spec.key}: ${spec.ip4} is already in use`);
        host = h;
      } else {
        while (node.used.has(node.nextHost) && node.nextHost < 255) node.nextHost++;
        if (node.nextHost >= 255)
          throw new LabError('E_LAB_SPEC', `node ${spec.node} has no free pod address left`);
        host = node.nextHost++;
      }
      const ip6 = spec.ip6 ?? podIP6(node.node, host);
      if (!ip6.startsWith(prefix6(node.node.podCIDR6)) || isIP(ip6) !== 6) {
        throw new LabError('E_LAB_SPEC', `pod ${spec.key}: ${ip6} is not in ${node.node.podCIDR6}`);
      }
      node.used.add(host);
      const [namespace, name] = spec.key.split('/') as [string, string];
      pod = {
        ...spec,
        ports: [...spec.ports],
        ip4: podIP4(node.node, host),
        ip6,
        ns: `${NS_PREFIX}${this.id}-pod-${sanitize(namespace)}_${sanitize(name)}`.slice(0, 200),
      };
    }
    const state: PodState = { pod };
    this.#pods.set(spec.key, state);
    return state;
  }

  #assertUp(): void {
    if (this.#down) throw new LabError('E_LAB_DOWN', `lab ${this.id} is down`);
  }

  #assertAttached(what: string): void {
    if (this.detached) throw new LabError('E_LAB_UNSUPPORTED', `lab ${this.id} is detached: cannot ${what}`);
  }

  /** Adds a pod at run time (a scenario's add-pods step); `ip4` may be a deleted pod's address. */
  async addPod(spec: PodSpec): Promise<LabPod> {
    this.#assertUp();
    this.#assertAttached('add pods');
    const state = this.#admitPod(spec);
    const node = this.#node(spec.node);
    try {
      if (state.pod.hostNetwork) {
        await node.agent?.listen(state.pod.ports);
      } else {
        await check(['ip', 'netns', 'add', state.pod.ns]);
        await sysctls(state.pod.ns, SYSCTLS.pod);
        state.veth = `veth${node.nextVeth++}`;
        await ipBatch(node.ns, podAttachLines(state.veth, state.pod.ns, state.pod.ip4));
        await ipBatch(state.pod.ns, podLines(node.node, state.pod.ip4, state.pod.ip6));
        state.agent = await AgentClient.start(state.pod.ns, state.pod.key, state.pod.ports);
      }
    } catch (error) {
      await this.removePod(spec.key).catch(() => {});
      throw error;
    }
    return { ...state.pod };
  }

  /** Deletes a pod: its server stops, its namespace and veth go, its address becomes free for reuse. */
  async removePod(key: string): Promise<void> {
    this.#assertUp();
    this.#assertAttached('remove pods');
    const state = this.#pods.get(key);
    if (!state) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no pod ${key}`);
    this.#pods.delete(key);
    const node = this.#node(state.pod.node);
    if (state.pod.hostNetwork) {
      await node.agent?.close(state.pod.ports);
      return;
    }
    await state.agent?.stop();
    await removeNamespaces([state.pod.ns]);
    const host = hostNumber4(node.node.podCIDR4, state.pod.ip4);
    if (host !== undefined) node.used.delete(host);
  }

  // ---- inspection -------------------------------------------------------------------------------------

  get nodes(): NodeSpec[] {
    return [...this.#nodes.values()].map((n) => ({ ...n.node }));
  }

  get pods(): LabPod[] {
    return [...this.#pods.values()].map((p) => ({ ...p.pod, ports: [...p.pod.ports] }));
  }

  get hosts(): HostSpec[] {
    return [...this.#hosts.values()].map((h) => ({ ...h.host }));
  }

  pod(key: string): LabPod {
    const state = this.#pods.get(key);
    if (!state) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no pod ${key}`);
    return { ...state.pod };
  }

  /** The node's namespace: where the enforcer of node N programs nftables. */
  nodeNamespace(index: number): string {
    return this.#node(index).ns;
  }

  podNamespace(key: string): string {
    return this.pod(key).ns;
  }

  hostNamespace(name: string): string {
    const host = this.#hosts.get(name);
    if (!host) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no host ${name}`);
    return host.ns;
  }

  /** Every namespace of the lab, the network namespace first. */
  namespaces(): string[] {
    return [
      this.networkNs,
      ...[...this.#nodes.values()].map((n) => n.ns),
      ...[...this.#hosts.values()].map((h) => h.ns),
      ...[...this.#pods.values()].filter((p) => !p.pod.hostNetwork).map((p) => p.pod.ns),
    ];
  }

  /** Runs argv inside one of this lab's namespaces (nsenter: network namespace only). */
  exec(
    ns: string,
    argv: string[],
    options: { input?: string; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    this.#assertUp();
    if (!this.namespaces().includes(ns)) {
      throw new LabError('E_LAB_UNKNOWN', `namespace ${ns} does not belong to lab ${this.id}`);
    }
    return run(inNamespace(ns, argv), options);
  }

  execNode(
    index: number,
    argv: string[],
    options: { input?: string; timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    return this.exec(this.nodeNamespace(index), argv, options);
  }

  // ---- probes -----------------------------------------------------------------------------------------

  /**
   * Where a probe from `from` runs: the pod's namespace, the node's for hostNetwork pods and node/N. A node
   * probes from its own address (`bind`): the route to a pod would pick cni0's or the VXLAN device's, which
   * the model (and a policy naming the node's address) does not know as the node's.
   */
  #source(from: string): { ns: string; agent?: AgentClient; bind?: NodeSpec } {
    if (from.startsWith(ENDPOINT_NODE)) {
      const node = this.#node(Number(from.slice(ENDPOINT_NODE.length)));
      return { ...node, bind: node.node };
    }
    if (from.startsWith(ENDPOINT_HOST)) {
      const host = this.#hosts.get(from.slice(ENDPOINT_HOST.length));
      if (!host) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no host ${from}`);
      return host;
    }
    const pod = this.#pods.get(from);
    if (!pod) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no pod ${from}`);
    if (!pod.pod.hostNetwork) return { ns: pod.pod.ns, agent: pod.agent };
    const node = this.#node(pod.pod.node);
    return { ...node, bind: node.node };
  }

  /** The address of an endpoint (pod key, host/NAME, node/N) or an IP literal as is. */
  address(to: string, family: 4 | 6 = 4): string {
    if (isIP(to)) return to;
    if (to.startsWith(ENDPOINT_NODE)) {
      const node = this.#node(Number(to.slice(ENDPOINT_NODE.length))).node;
      return family === 4 ? node.ip4 : node.ip6;
    }
    if (to.startsWith(ENDPOINT_HOST)) {
      const host = this.#hosts.get(to.slice(ENDPOINT_HOST.length));
      if (!host) throw new LabError('E_LAB_UNKNOWN', `lab ${this.id} has no host ${to}`);
      return family === 4 ? host.host.ip4 : hostAddress6(host.host);
    }
    const pod = this.pod(to);
    return family === 4 ? pod.ip4 : pod.ip6;
  }

  /**
   * Sends one probe from inside `from`'s namespace: curl for TCP (an HTTP answer is ok), a datagram for UDP
   * (the echo is ok). Refused, reset and timed out all give ok=false with the reason in `detail`.
   */
  async probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    options: ProbeOptions = {},
  ): Promise<ProbeResult> {
    this.#assertUp();
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const address = this.address(to, options.family ?? 4);
    const source = this.#source(from);
    const bind = source.bind && (isIP(address) === 6 ? source.bind.ip6 : source.bind.ip4);
    const started = performance.now();
    const result = (ok: boolean, detail: string): ProbeResult => ({
      from,
      to,
      address,
      port,
      protocol,
      ok,
      detail,
      ms: Math.round(performance.now() - started),
    });
    if (protocol === 'TCP') {
      const argv = inNamespace(source.ns, curlProbeArgv(address, port, timeoutMs, bind));
      const r = await run(argv, { timeoutMs: timeoutMs + 5000, env: CURL_ENV });
      return r.code === 0
        ? result(true, r.stdout.trim())
        : result(false, `curl exit ${r.code}: ${r.stderr.trim()}`);
    }
    if (protocol === 'UDP') {
      if (!source.agent) {
        throw new LabError(
          'E_LAB_UNSUPPORTED',
          `no agent in ${source.ns} to send UDP probes (detached lab?)`,
        );
      }
      const r = await source.agent.udpProbe(address, port, timeoutMs, bind);
      return result(r.ok, r.detail);
    }
    throw new LabError(
      'E_LAB_UNSUPPORTED',
      `cannot probe ${protocol}: the lab has no SCTP (${from} -> ${to}:${port})`,
    );
  }

  /** Many probes, at most `concurrency` at once; results in the order of the requests. */
  probeMany(requests: ProbeRequest[], options: { concurrency?: number } = {}): Promise<ProbeResult[]> {
    return mapLimit(requests, options.concurrency ?? PROBE_CONCURRENCY, (r) =>
      this.probe(r.from, r.to, r.port, r.protocol, r),
    );
  }

  // ---- teardown ---------------------------------------------------------------------------------------

  /** Removes every namespace and process of the lab; safe to call more than once. */
  async down(): Promise<void> {
    if (this.#down) return;
    this.#down = true;
    const agents = this.#agents();
    await Promise.all(agents.map((a) => a.stop()));
    await removeNamespaces(this.#allNamespaces());
    removeOwner(this.id);
    unregisterOpenLab(this);
  }

  /** For the process-exit hook: same as down() with synchronous calls only. */
  teardownSync(): void {
    if (this.#down) return;
    this.#down = true;
    for (const agent of this.#agents()) agent.killSync();
    removeNamespacesSync(this.#allNamespaces());
    removeOwner(this.id);
  }

  #agents(): AgentClient[] {
    return [
      ...[...this.#nodes.values()].map((n) => n.agent),
      ...[...this.#hosts.values()].map((h) => h.agent),
      ...[...this.#pods.values()].map((p) => p.agent),
    ].filter((a): a is AgentClient => a !== undefined);
  }

  /** Namespaces by name, including ones that a failed build may have half-made. */
  #allNamespaces(): string[] {
    return this.namespaces();
  }

  /** Human-readable summary: namespaces and addresses, and how to enter them. */
  describe(): string {
    const lines = [`lab ${this.id}: network namespace ${this.networkNs} (underlay router)`];
    for (const n of this.#nodes.values()) {
      lines.push(
        `  node/${n.node.index} ${n.node.name} ${n.node.ip4} ${n.node.ip6} pods ${n.node.podCIDR4} gw ${gateway4(n.node)}  ns ${n.ns}`,
      );
    }
    for (const p of this.#pods.values()) {
      const ports = p.pod.ports.map((x) => `${x.port}/${x.protocol}`).join(',');
      lines.push(
        `  pod ${p.pod.key} node/${p.pod.node} ${p.pod.ip4} ${p.pod.ip6} [${ports}]  ns ${p.pod.ns}`,
      );
    }
    for (const h of this.#hosts.values()) {
      const ports = h.host.ports.map((x) => `${x.port}/${x.protocol}`).join(',');
      lines.push(`  host/${h.host.name} ${h.host.ip4} ${hostAddress6(h.host)} [${ports}]  ns ${h.ns}`);
    }
    return lines.join('\n');
  }
}

const HOST_NET6_RANGE = cidrRange(parseCidr(HOST_NET6) as Cidr);
const ROUTER6 = parseAddress(ROUTER.hostNet6);

/** Checks what can be checked without the kernel: unique names, nodes and addresses inside the conventions. */
export function validateSpec(spec: LabSpec): void {
  const indexes = new Set<number>();
  for (const node of spec.nodes) {
    if (indexes.has(node.index)) throw new LabError('E_LAB_SPEC', `node index ${node.index} appears twice`);
    indexes.add(node.index);
    prefix4(node.podCIDR4);
    prefix6(node.podCIDR6);
    if (!node.ip4.startsWith('198.51.100.') || isIP(node.ip4) !== 4) {
      throw new LabError('E_LAB_SPEC', `node ${node.index}: ${node.ip4} is not in 198.51.100.0/24`);
    }
    if (!node.ip6.toLowerCase().startsWith('2001:db8::') || isIP(node.ip6) !== 6) {
      throw new LabError('E_LAB_SPEC', `node ${node.index}: ${node.ip6} is not in 2001:db8::/64`);
    }
    if (!node.podCIDR4.startsWith('10.244.')) {
      throw new LabError(
        'E_LAB_SPEC',
        `node ${node.index}: pod CIDR ${node.podCIDR4} is not in 10.244.0.0/16`,
      );
    }
    if (!node.podCIDR6.toLowerCase().startsWith('fd00:10:244:')) {
      throw new LabError(
        'E_LAB_SPEC',
        `node ${node.index}: pod CIDR ${node.podCIDR6} is not in fd00:10:244::/48`,
      );
    }
  }
  if (spec.nodes.length === 0) throw new LabError('E_LAB_SPEC', 'a lab needs at least one node');
  const names = new Set<string>();
  for (const host of spec.hosts) {
    if (names.has(host.name)) throw new LabError('E_LAB_SPEC', `host ${host.name} appears twice`);
    names.add(host.name);
    if (!/^203\.0\.113\.\d+$/.test(host.ip4) || isIP(host.ip4) !== 4 || /\.(0|254|255)$/.test(host.ip4)) {
      throw new LabError(
        'E_LAB_SPEC',
        `host ${host.name}: ${host.ip4} is not a usable address in 203.0.113.0/24 (.254 is the router)`,
      );
    }
    const ip6 = hostAddress6(host);
    const a6 = parseAddress(ip6);
    if (a6?.family !== 6 || !rangeContains(HOST_NET6_RANGE, a6) || a6.value === ROUTER6?.value) {
      throw new LabError(
        'E_LAB_SPEC',
        `host ${host.name}: ip6 ${ip6} is not a usable address in ${HOST_NET6} (${ROUTER.hostNet6} is the router)`,
      );
    }
  }
}
