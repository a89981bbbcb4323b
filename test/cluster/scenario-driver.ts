// Runs scenario files on a real cluster (test/cluster/_cluster.ts): namespaces, agnhost pods pinned to the
// scenario's nodes and NetworkPolicies through kubectl, probes from inside the source pod's network
// namespace, convergence read from the agents' metrics. One driver serves many scenarios on one cluster:
// pods a later scenario wants unchanged are kept (only labels patched). Outside hosts are namespaces on the
// node network (outside-hosts.ts). What the real cluster cannot do (SCTP, faults, IPv6; hosts on a cluster
// without a hub namespace) is skipped and counted, never passed. Never touches the machine's own network
// namespace: probes run in pod, node and host namespaces only.
import { fileURLToPath } from 'node:url';
import { CURL_ENV, curlProbeArgv } from '../../src/lab/curl.ts';
import { waitForDrops } from '../../src/lab/drops.ts';
import { inNamespace, mapLimit, run } from '../../src/lab/exec.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import type { DropExpectation, DropOutcome } from '../../src/scenario/drops.ts';
import { modelOutcome } from '../../src/scenario/model.ts';
import { yamlDocuments } from '../../src/scenario/parse.ts';
import {
  endpointText,
  type Probe,
  type ProbeOutcome,
  runScenario,
  type ScenarioDriver,
  type ScenarioReport,
} from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import type { FaultStep, Scenario, Step } from '../../src/scenario/types.ts';
import type { World } from '../../src/scenario/world.ts';
import type { Cluster, CommandResult } from './_cluster.ts';
import { DropsFollower, requireHub } from './drops-follower.ts';
import { hubNetnsOf, OutsideHosts } from './outside-hosts.ts';
import {
  type ApiPod,
  ClusterScenarioError,
  caughtUp,
  faultSkipReason,
  type Labels,
  labelsPatch,
  livePodsByNode,
  NAMESPACE_ANNOTATION,
  nodeSyncState,
  POD_ANNOTATION,
  type PodManifest,
  parseMetrics,
  podManifest,
  probeSkipReason,
  scenarioLabels,
  scenarioSkipReason,
  substituteReal,
} from './scenario-plan.ts';

const UDP_PROBE = fileURLToPath(new URL('./udp-probe.ts', import.meta.url));
/** Where the DaemonSet's agents serve /metrics (daemonset/tollgate-agent.yaml: --metrics-addr). */
const AGENT_METRICS = 'http://127.0.0.1:9808/metrics';
const PROBE_TIMEOUT_MS = 1500;
/** The scenario README's convergence allowance for a probe, scaled by the machine's load. */
const CONVERGE_MS = 10_000;
const RETRY_PAUSE_MS = 250;
const READY_MS = 120_000;
const AGENTS_MS = 20_000;
const PROBE_CONCURRENCY = 8;
// curl's exit codes for a connection that was refused, timed out, reset or got no reply: a denied probe.
// Any other exit (curl missing, the namespace not found) is a broken probe and fails loudly instead.
const CURL_DENIED = new Set([7, 28, 52, 56]);
const UDP_DENIED = 3;
/** A report must reach the agent's log this soon after its probe (scenario README, drops), load-scaled. */
const REPORT_MS = 5000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface SkipRecord {
  where: string;
  what: string;
  reason: string;
}

export interface ConvergenceRecord {
  what: string;
  ms: number;
  converged: boolean;
  pending: string[];
}

export interface ClusterDriverOptions {
  log?: (line: string) => void;
  /**
   * Runs a command in a node's network namespace (probes from node/N and hostNetwork pods, the agents'
   * /metrics); default nsenter into /run/netns/NAME. Tests without a cluster pass a fake.
   */
  nodeExec?: (netns: string, argv: string[], opts: { timeoutMs: number }) => Promise<CommandResult>;
  /** How long a wrong probe is retried before it counts (default 10 s, load-scaled). */
  convergeMs?: number;
  /**
   * The pause before a pod refused for want of its namespace's service account is created again (default
   * 200 ms, the real cluster's race). A stand-in cluster that refuses once per namespace needs no pause.
   */
  createRetryMs?: number;
}

function nsenterExec(netns: string, argv: string[], opts: { timeoutMs: number }): Promise<CommandResult> {
  return run(inNamespace(netns, argv), { timeoutMs: opts.timeoutMs, env: CURL_ENV });
}

type K8s = {
  metadata: { name: string; namespace?: string; labels?: Labels; annotations?: Record<string, string> };
};

export class ClusterScenarioDriver implements ScenarioDriver {
  readonly cluster: Cluster;
  /** This scenario's skipped probes and steps (reset at start). */
  skips: SkipRecord[] = [];
  /** This scenario's waits for the agents after each change (reset at start). */
  convergence: ConvergenceRecord[] = [];
  readonly #options: ClusterDriverOptions;
  readonly #skipped = new WeakSet<ProbeOutcome>();
  /** Set by a skipped fault: every later probe of the scenario is skipped with this reason. */
  #faulted: string | undefined;
  /** The scenario's policies as applied (real addresses), by ns/name. */
  #policies = new Map<string, Record<string, unknown>>();
  /** What the cluster holds from this driver: policy key to the JSON last applied. */
  readonly #applied = new Map<string, string>();
  readonly #ownNamespaces = new Set<string>();
  /** Namespaces that existed before (default, kube-system): their labels as found, restored at close. */
  readonly #foundLabels = new Map<string, Labels>();
  #podIps = new Map<string, string>();
  #metricsReadable = true;
  /** `tollgate drops` following the agents, started by the first scenario with a drops step. */
  #follower: DropsFollower | undefined;

  readonly #nodeExec: NonNullable<ClusterDriverOptions['nodeExec']>;

  constructor(cluster: Cluster, options: ClusterDriverOptions = {}) {
    this.cluster = cluster;
    this.#options = options;
    this.#nodeExec = options.nodeExec ?? nsenterExec;
    const hub = hubNetnsOf(cluster);
    this.#hosts = hub === undefined ? undefined : new OutsideHosts(cluster, hub);
  }

  /** Outside hosts, when the cluster tells its hub namespace (their probes are skipped otherwise). */
  readonly #hosts: OutsideHosts | undefined;

  #log(line: string): void {
    this.#options.log?.(line);
  }

  #nodeName(index: number): string {
    const n = this.cluster.nodes[index - 1];
    if (!n) throw new ClusterScenarioError('E_CLUSTER_SKIP', `the cluster has no node ${index}`);
    return n.name;
  }

  async #kubectl(args: string[], input?: string, timeoutMs = scaledMs(60_000)): Promise<CommandResult> {
    const r = await this.cluster.kubectl(args, { ...(input === undefined ? {} : { input }), timeoutMs });
    if (r.code !== 0)
      throw new ClusterScenarioError(
        'E_CLUSTER_KUBECTL',
        `kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`,
      );
    return r;
  }

  async #getJson<T>(args: string[]): Promise<T> {
    const r = await this.#kubectl([...args, '-o', 'json']);
    return JSON.parse(r.stdout) as T;
  }

  // ---- ScenarioDriver ------------------------------------------------------------------------------------

  async start(world: World): Promise<void> {
    this.skips = [];
    this.convergence = [];
    this.#faulted = undefined;
    this.#policies = new Map();
    const reason = scenarioSkipReason(world.scenario, this.cluster.nodes.length);
    if (reason) throw new ClusterScenarioError('E_CLUSTER_SKIP', `${world.scenario.file}: ${reason}`);
    for (const p of world.pods.values()) this.#nodeName(p.node);
    await this.#hosts?.ensure(world.hosts);
    // Started before the probes so that its own start-up (list the agents, open their logs) is over when
    // the first drops step waits.
    if (world.scenario.steps.some((s) => s.kind === 'drops')) {
      const hub = requireHub(hubNetnsOf(this.cluster), world.scenario.file);
      this.#follower ??= new DropsFollower(hub, this.cluster.kubeconfig);
      this.#follower.start();
    }
    await this.#reconcile(world, 'start');
  }

  async stop(): Promise<void> {
    // Nothing: the next scenario's start reconciles (and keeps the pods it wants); close() cleans up.
  }

  async sync(world: World, step: Step): Promise<void> {
    if (step.kind === 'apply') {
      const text = substituteReal(step.text, world, this.#real(), step.where);
      for (const doc of yamlDocuments(text, step.where)) {
        const o = doc as (K8s & { kind?: string }) | null;
        // Namespace and Pod documents change labels only: those come from the world, like every label.
        if (o === null || o.kind !== 'NetworkPolicy') continue;
        const namespace = o.metadata.namespace ?? 'default';
        this.#policies.set(`${namespace}/${o.metadata.name}`, {
          ...o,
          metadata: { ...o.metadata, namespace },
        });
      }
    } else if (step.kind === 'delete' && step.resource === 'networkpolicy') {
      this.#policies.delete(step.key.includes('/') ? step.key : `default/${step.key}`);
    } else if (step.kind === 'delete' && step.resource === 'namespace') {
      for (const k of [...this.#policies.keys()]) if (k.startsWith(`${step.key}/`)) this.#policies.delete(k);
    }
    const mine = [...this.#policies.keys()].sort().join(',');
    const theirs = [...world.policies.keys()].sort().join(',');
    if (mine !== theirs)
      throw new ClusterScenarioError(
        'E_CLUSTER_STATE',
        `${step.where}: the driver's policies (${mine}) differ from the world's (${theirs})`,
      );
    await this.#reconcile(world, step.where);
  }

  async fault(_world: World, step: FaultStep): Promise<void> {
    const reason = faultSkipReason(step)!;
    this.skips.push({ where: step.where, what: step.kind, reason });
    this.#faulted ??= reason;
  }

  async probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    const skipReasons = probes.map((p) => this.#faulted ?? probeSkipReason(p, this.#hosts !== undefined));
    const live = probes.map((_, i) => i).filter((i) => skipReasons[i] === undefined);
    const results = new Map<number, ProbeResult>();
    const send = async (indexes: number[]) => {
      const got = await mapLimit(indexes, PROBE_CONCURRENCY, (i) => this.#probeOnce(world, probes[i]!));
      indexes.forEach((i, k) => {
        results.set(i, got[k]!);
      });
    };
    await send(live);
    const deadline = performance.now() + scaledMs(this.#options.convergeMs ?? CONVERGE_MS);
    let wrong = live.filter((i) => results.get(i)!.ok !== probes[i]!.expectAllow);
    while (wrong.length > 0 && performance.now() < deadline) {
      await sleep(RETRY_PAUSE_MS);
      await send(wrong);
      wrong = wrong.filter((i) => results.get(i)!.ok !== probes[i]!.expectAllow);
    }
    const index = wrong.length > 0 ? new ClusterIndex(world.state()) : undefined;
    return probes.map((probe, i) => {
      const reason = skipReasons[i];
      if (reason !== undefined) {
        // Counted as failed by the runner until clusterResult moves it to the skipped: never a pass.
        const outcome = { probe, allowed: !probe.expectAllow, explanation: `skipped: ${reason}` };
        this.#skipped.add(outcome);
        this.skips.push({ where: probe.where, what: probe.text, reason });
        return outcome;
      }
      const r = results.get(i)!;
      let explanation: string | undefined;
      if (index && r.ok !== probe.expectAllow)
        explanation = `cluster: ${r.ok ? 'answered' : 'no answer'} (${r.detail}, ${r.address})\nmodel (layout addresses): ${modelOutcome(world, index, probe).explanation}\n${this.#diagnostics()}`;
      return { probe, allowed: r.ok, explanation };
    });
  }

  /**
   * Every line must match a report that `tollgate drops` printed from the agent of the node that makes it,
   * with the lab's matching and windows (src/lab/drops.ts).
   */
  async drops(world: World, expectations: DropExpectation[]): Promise<DropOutcome[]> {
    const follower = this.#follower;
    if (!follower)
      throw new ClusterScenarioError(
        'E_CLUSTER_STATE',
        `${world.scenario.file}: a drops step without a follower`,
      );
    const outcomes = await waitForDrops(world, expectations, () => [follower], {
      timeoutMs: scaledMs(REPORT_MS),
    });
    const trouble = follower.trouble();
    if (trouble === undefined) return outcomes;
    return outcomes.map((o) => (o.matched ? o : { ...o, explanation: `${o.explanation}\n${trouble}` }));
  }

  /** The follower of the drops steps, if one ran (tests read its reports and their arrival times). */
  get dropsFollower(): DropsFollower | undefined {
    return this.#follower;
  }

  /** Whether the runner's outcome is one this driver skipped. */
  isSkipped(outcome: ProbeOutcome): boolean {
    return this.#skipped.has(outcome);
  }

  #diagnostics(): string {
    return this.convergence
      .filter((c) => !c.converged)
      .map((c) => `agents not caught up after ${c.ms} ms (${c.what}): ${c.pending.join('; ')}`)
      .join('\n');
  }

  // ---- probes --------------------------------------------------------------------------------------------

  #real() {
    return {
      pod: (key: string) => this.#podIps.get(key),
      node: (index: number) => this.cluster.nodes[index - 1]?.ip4,
    };
  }

  #address(world: World, probe: Probe): string {
    const e = probe.to;
    if (e.kind === 'node') return this.cluster.nodes[e.index - 1]!.ip4;
    if (e.kind === 'host') return world.host(e.name, probe.where).ip;
    const ip = this.#podIps.get(e.key);
    if (ip === undefined)
      throw new ClusterScenarioError(
        'E_CLUSTER_STATE',
        `${probe.where}: ${e.key} has no address in the cluster`,
      );
    return ip;
  }

  async #probeOnce(world: World, probe: Probe): Promise<ProbeResult> {
    const address = this.#address(world, probe);
    const argv = probeArgv(probe.protocol, address, probe.port, PROBE_TIMEOUT_MS);
    const timeoutMs = PROBE_TIMEOUT_MS + scaledMs(10_000);
    let r: CommandResult;
    const from = probe.from;
    const pod = from.kind === 'pod' ? world.pods.get(from.key) : undefined;
    if (pod && !pod.hostNetwork)
      r = await this.cluster.inPodNetns(pod.namespace, pod.name, argv, { timeoutMs });
    else if (from.kind === 'host') {
      const netns = this.#hosts?.netns(from.name);
      if (!netns)
        throw new ClusterScenarioError(
          'E_CLUSTER_STATE',
          `${probe.where}: no namespace for host/${from.name}`,
        );
      r = await nsenterExec(netns, argv, { timeoutMs });
    } else {
      const index = pod ? pod.node : from.kind === 'node' ? from.index : 0;
      const node = this.cluster.nodes[index - 1];
      if (!node)
        throw new ClusterScenarioError(
          'E_CLUSTER_STATE',
          `${probe.where}: no node to probe from (${endpointText(from)})`,
        );
      r = await this.#nodeExec(node.netns, argv, { timeoutMs });
    }
    return { address, ...judgeProbe(probe.protocol, r, `${probe.where}: ${probe.text}`) };
  }

  // ---- making the cluster hold the world -----------------------------------------------------------------

  async #pods(): Promise<ApiPod[]> {
    return (await this.#getJson<{ items: ApiPod[] }>(['get', 'pods', '--all-namespaces'])).items;
  }

  /**
   * Makes the cluster hold the world: policies the world no longer has go first, then pods that are not
   * wanted (or wanted on another node, with other ports), then namespaces; then namespaces, pods and
   * policies are created or patched. Waits for new pods to be Ready and for every agent to catch up.
   */
  async #reconcile(world: World, what: string): Promise<void> {
    const started = performance.now();
    const changedAt = Date.now();
    for (const key of [...this.#applied.keys()]) {
      if (this.#policies.has(key)) continue;
      const [ns, name] = key.split('/') as [string, string];
      await this.#kubectl(['delete', 'networkpolicy', '-n', ns, name, '--ignore-not-found']);
      this.#applied.delete(key);
    }
    const wanted = new Map<string, PodManifest>();
    for (const p of world.labPods())
      wanted.set(p.key, podManifest(p, this.#nodeName(p.node), this.cluster.agnhostImage));
    let pods = await this.#pods();
    const byKey = new Map(pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    const remove: ApiPod[] = [];
    for (const [key, p] of byKey) {
      const fingerprint = p.metadata.annotations?.[POD_ANNOTATION];
      if (fingerprint === undefined) {
        if (wanted.has(key))
          throw new ClusterScenarioError(
            'E_CLUSTER_SKIP',
            `${world.scenario.file}: the cluster already has a pod ${key} that the scenario driver did not make`,
          );
        continue;
      }
      const want = wanted.get(key);
      if (!want || want.metadata.annotations[POD_ANNOTATION] !== fingerprint) remove.push(p);
    }
    await this.#deletePods(remove);
    for (const p of remove) byKey.delete(`${p.metadata.namespace}/${p.metadata.name}`);

    const namespaces = (await this.#getJson<{ items: K8s[] }>(['get', 'namespaces'])).items;
    const gone = namespaces
      .filter((n) => n.metadata.annotations?.[NAMESPACE_ANNOTATION] !== undefined)
      .filter((n) => !world.namespaces.has(n.metadata.name))
      .map((n) => n.metadata.name);
    if (gone.length > 0) {
      await this.#kubectl(
        ['delete', 'namespace', ...gone, '--wait=true', `--timeout=${seconds(scaledMs(READY_MS))}`],
        undefined,
        scaledMs(READY_MS) + 10_000,
      );
      for (const n of gone) this.#ownNamespaces.delete(n);
    }
    const existing = new Map(
      namespaces.filter((n) => !gone.includes(n.metadata.name)).map((n) => [n.metadata.name, n]),
    );
    for (const [name, labels] of this.#foundLabels)
      if (!world.namespaces.has(name))
        await this.#patchLabels(
          'namespace',
          undefined,
          name,
          scenarioLabels(existing.get(name)?.metadata.labels),
          labels,
        );
    for (const [name, labels] of world.namespaces) {
      const ns = existing.get(name);
      if (!ns) {
        await this.#kubectl(
          ['create', '-f', '-'],
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name, labels, annotations: { [NAMESPACE_ANNOTATION]: 'true' } },
          }),
        );
        this.#ownNamespaces.add(name);
        continue;
      }
      const found = scenarioLabels(ns.metadata.labels);
      if (ns.metadata.annotations?.[NAMESPACE_ANNOTATION] === undefined && !this.#foundLabels.has(name))
        this.#foundLabels.set(name, found);
      await this.#patchLabels('namespace', undefined, name, found, scenarioLabels(labels));
    }

    const create: PodManifest[] = [];
    for (const [key, want] of wanted) {
      const have = byKey.get(key);
      if (!have) create.push(want);
      else
        await this.#patchLabels(
          'pod',
          want.metadata.namespace,
          want.metadata.name,
          have.metadata.labels ?? {},
          want.metadata.labels,
        );
    }
    if (create.length > 0) await this.#createPods(create);

    for (const [key, policy] of this.#policies) {
      const json = JSON.stringify(policy);
      if (this.#applied.get(key) === json) continue;
      await this.#kubectl(['apply', '-f', '-'], json);
      this.#applied.set(key, json);
    }

    if (create.length > 0) await this.#waitReady(create);
    pods = await this.#pods();
    this.#podIps = new Map();
    for (const p of pods)
      if (p.metadata.annotations?.[POD_ANNOTATION] !== undefined && p.status?.podIP)
        this.#podIps.set(`${p.metadata.namespace}/${p.metadata.name}`, p.status.podIP);
    for (const key of wanted.keys())
      if (!this.#podIps.has(key))
        throw new ClusterScenarioError('E_CLUSTER_NOT_READY', `${what}: pod ${key} has no address`);
    await this.#waitAgents(what, changedAt, pods);
    this.#log(
      `cluster driver: ${what}: ${Math.round(performance.now() - started)} ms (${create.length} pods created, ${remove.length} removed)`,
    );
  }

  async #patchLabels(
    kind: 'namespace' | 'pod',
    namespace: string | undefined,
    name: string,
    from: Labels,
    to: Labels,
  ): Promise<void> {
    const patch = labelsPatch(from, to);
    if (!patch) return;
    await this.#kubectl([
      'patch',
      kind,
      name,
      ...(namespace ? ['-n', namespace] : []),
      '--type=merge',
      '-p',
      JSON.stringify({ metadata: { labels: patch } }),
    ]);
  }

  async #deletePods(pods: ApiPod[]): Promise<void> {
    const byNs = new Map<string, string[]>();
    for (const p of pods)
      byNs.set(p.metadata.namespace, [...(byNs.get(p.metadata.namespace) ?? []), p.metadata.name]);
    const limit = scaledMs(READY_MS);
    await Promise.all(
      [...byNs].map(([ns, names]) =>
        this.#kubectl(
          ['delete', 'pod', '-n', ns, ...names, '--wait=true', `--timeout=${seconds(limit)}`],
          undefined,
          limit + 10_000,
        ),
      ),
    );
  }

  /**
   * Creates pods; a namespace made a moment ago may not have its `default` service account yet (the
   * admission plugin then refuses the pod), so that refusal is retried within a load-scaled limit.
   */
  async #createPods(pods: PodManifest[]): Promise<void> {
    const input = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods });
    const deadline = performance.now() + scaledMs(30_000);
    for (;;) {
      const r = await this.cluster.kubectl(['apply', '-f', '-'], { input, timeoutMs: scaledMs(60_000) });
      if (r.code === 0) return;
      if (!/serviceaccount/i.test(r.stderr) || performance.now() > deadline)
        throw new ClusterScenarioError(
          'E_CLUSTER_KUBECTL',
          `creating pods: kubectl apply exited ${r.code}: ${r.stderr.trim()}`,
        );
      await sleep(this.#options.createRetryMs ?? 200);
    }
  }

  async #waitReady(pods: PodManifest[]): Promise<void> {
    const byNs = new Map<string, string[]>();
    for (const p of pods)
      byNs.set(p.metadata.namespace, [...(byNs.get(p.metadata.namespace) ?? []), `pod/${p.metadata.name}`]);
    const limit = scaledMs(READY_MS);
    await Promise.all(
      [...byNs].map(async ([ns, names]) => {
        const r = await this.cluster.kubectl(
          ['wait', '--for=condition=Ready', '-n', ns, ...names, `--timeout=${seconds(limit)}`],
          { timeoutMs: limit + 10_000 },
        );
        if (r.code === 0) return;
        const status = await this.cluster.kubectl(['get', 'pods', '-n', ns, '-o', 'wide'], {
          timeoutMs: 30_000,
        });
        const events = await this.cluster.kubectl(['get', 'events', '-n', ns, '--sort-by=.lastTimestamp'], {
          timeoutMs: 30_000,
        });
        throw new ClusterScenarioError(
          'E_CLUSTER_NOT_READY',
          `pods ${names.join(' ')} in ${ns} not Ready within ${limit} ms (the kubelet's readiness probe on a pod under a deny policy must pass, semantics point 12): ${r.stderr.trim()}\n${status.stdout}\n${events.stdout.split('\n').slice(-15).join('\n')}`,
        );
      }),
    );
  }

  async #metrics(netns: string): Promise<string | undefined> {
    const r = await this.#nodeExec(netns, ['curl', '-s', '--noproxy', '*', '-m', '3', AGENT_METRICS], {
      timeoutMs: 10_000,
    });
    return r.code === 0 ? r.stdout : undefined;
  }

  /**
   * Waits (load-scaled limit) until every node's agent reports a successful sync after `changedAt`, no
   * failing syncs, and as many programmed pods as the API has live pods on the node. Never throws: what
   * did not catch up is recorded and printed with a failing probe (the probes decide).
   */
  async #waitAgents(what: string, changedAt: number, pods: ApiPod[]): Promise<void> {
    if (!this.#metricsReadable) return;
    const live = livePodsByNode(pods);
    const started = performance.now();
    const limit = scaledMs(AGENTS_MS);
    let pending: string[] = [];
    for (;;) {
      const texts = await Promise.all(this.cluster.nodes.map((n) => this.#metrics(n.netns)));
      if (texts.every((t) => t === undefined)) {
        this.#metricsReadable = false;
        pending = ['no agent serves /metrics on 127.0.0.1:9808 of its node: not waiting on agents again'];
        break;
      }
      pending = this.cluster.nodes
        .map((n, i) => {
          const text = texts[i];
          if (text === undefined) return `${n.name}: /metrics unreachable`;
          const why = caughtUp(nodeSyncState(parseMetrics(text)), changedAt, live.get(n.name) ?? 0);
          return why === undefined ? undefined : `${n.name}: ${why}`;
        })
        .filter((x): x is string => x !== undefined);
      if (pending.length === 0 || performance.now() - started > limit) break;
      await sleep(100);
    }
    const record = {
      what,
      ms: Math.round(performance.now() - started),
      converged: pending.length === 0,
      pending,
    };
    this.convergence.push(record);
    if (!record.converged) this.#log(`cluster driver: ${what}: agents not caught up: ${pending.join('; ')}`);
  }

  /** Removes everything this driver made and restores the labels of namespaces it found. */
  async close(): Promise<void> {
    await this.#follower?.close();
    this.#follower = undefined;
    await this.#hosts?.close();
    for (const key of [...this.#applied.keys()]) {
      const [ns, name] = key.split('/') as [string, string];
      await this.#kubectl(['delete', 'networkpolicy', '-n', ns, name, '--ignore-not-found']);
      this.#applied.delete(key);
    }
    const pods = await this.#pods();
    await this.#deletePods(
      pods.filter(
        (p) =>
          p.metadata.annotations?.[POD_ANNOTATION] !== undefined &&
          !this.#ownNamespaces.has(p.metadata.namespace),
      ),
    );
    if (this.#ownNamespaces.size > 0)
      await this.#kubectl(
        [
          'delete',
          'namespace',
          ...this.#ownNamespaces,
          '--wait=true',
          `--timeout=${seconds(scaledMs(READY_MS))}`,
        ],
        undefined,
        scaledMs(READY_MS) + 10_000,
      );
    this.#ownNamespaces.clear();
    const namespaces = (await this.#getJson<{ items: K8s[] }>(['get', 'namespaces'])).items;
    for (const [name, labels] of this.#foundLabels) {
      const ns = namespaces.find((n) => n.metadata.name === name);
      if (ns)
        await this.#patchLabels('namespace', undefined, name, scenarioLabels(ns.metadata.labels), labels);
    }
    this.#foundLabels.clear();
  }
}

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
  address: string;
}

/** The command a probe runs inside its source's namespace: curl for TCP (an HTTP answer is ok), udp-probe. */
export function probeArgv(protocol: string, address: string, port: number, timeoutMs: number): string[] {
  if (protocol === 'TCP') return curlProbeArgv(address, port, timeoutMs);
  if (protocol === 'UDP') return [process.execPath, UDP_PROBE, address, String(port), String(timeoutMs)];
  throw new ClusterScenarioError('E_CLUSTER_SKIP', `no ${protocol} probes on the real cluster`);
}

/**
 * Allowed: the command exited 0 (an HTTP answer, a UDP echo). Denied: curl's refused/timed-out/reset/empty
 * exits, udp-probe's 3. Anything else means the probe itself broke: an error, never a deny that would pass.
 */
export function judgeProbe(
  protocol: string,
  r: CommandResult,
  what: string,
): { ok: boolean; detail: string } {
  if (r.code === 0) return { ok: true, detail: r.stdout.trim() };
  const denied = protocol === 'TCP' ? CURL_DENIED.has(r.code) : r.code === UDP_DENIED;
  if (denied)
    return {
      ok: false,
      detail: `${protocol === 'TCP' ? 'curl' : 'udp-probe'} exit ${r.code}: ${r.stderr.trim()}`,
    };
  throw new ClusterScenarioError(
    'E_CLUSTER_STATE',
    `${what}: the probe could not run (exit ${r.code}): ${r.stderr.trim()}`,
  );
}

// ---- reports -------------------------------------------------------------------------------------------

export interface ClusterScenarioResult {
  label: string;
  /** The runner's report without the skipped outcomes (so passed/failed count real probes only). */
  report: ScenarioReport | undefined;
  passed: number;
  failed: number;
  skipped: number;
  skips: SkipRecord[];
  /** The whole scenario was skipped (or could not start): why. */
  skippedScenario: string | undefined;
  ms: number;
}

/** Moves the driver's skipped outcomes out of the runner's counts (they were counted as failed). */
export function withoutSkipped(
  report: ScenarioReport,
  isSkipped: (o: ProbeOutcome) => boolean,
): { report: ScenarioReport; skipped: number } {
  let skipped = 0;
  const steps = report.steps.map((s) => {
    const outcomes = s.outcomes.filter((o) => {
      if (!isSkipped(o)) return true;
      skipped++;
      return false;
    });
    return { ...s, outcomes };
  });
  return { report: { ...report, steps, failed: report.failed - skipped }, skipped };
}

/** Runs one scenario through the driver; a scenario the cluster cannot offer comes back skipped. */
export async function runOnCluster(
  driver: ClusterScenarioDriver,
  label: string,
  scenario: Scenario,
): Promise<ClusterScenarioResult> {
  const started = performance.now();
  const stepsWithProbes = scenario.steps.filter((s) => s.kind === 'expect' || s.kind === 'matrix').length;
  try {
    const raw = await runScenario(scenario, driver);
    const { report, skipped } = withoutSkipped(raw, (o) => driver.isSkipped(o));
    return {
      label,
      report,
      passed: report.passed,
      failed: report.failed,
      skipped,
      skips: [...driver.skips],
      skippedScenario: undefined,
      ms: Math.round(performance.now() - started),
    };
  } catch (error) {
    if (!(error instanceof ClusterScenarioError) || error.code !== 'E_CLUSTER_SKIP') throw error;
    return {
      label,
      report: undefined,
      passed: 0,
      failed: 0,
      skipped: 0,
      skips: [
        {
          where: scenario.file,
          what: `the whole scenario (${stepsWithProbes} expect/matrix steps)`,
          reason: error.message,
        },
      ],
      skippedScenario: error.message,
      ms: Math.round(performance.now() - started),
    };
  }
}

/** The report as `tollgate lab run` prints it, plus the skips grouped by reason. */
export function formatClusterResult(r: ClusterScenarioResult, options: { matrices: boolean }): string {
  const lines: string[] = [];
  if (r.report) lines.push(formatScenarioReport(r.report, options));
  else lines.push(`SKIP ${r.label}: ${r.skippedScenario}`);
  const byReason = new Map<string, SkipRecord[]>();
  for (const s of r.skips) if (r.report) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s]);
  for (const [reason, list] of byReason) {
    // Places without the file name (the report's first line names the scenario).
    const file = r.report?.scenario.file ?? '';
    const shown = list.slice(0, 4).map((s) => `${s.where.replace(`${file}: `, '')} ${s.what}`);
    if (list.length > 4) shown.push(`+${list.length - 4} more`);
    lines.push(`  skipped ${list.length}: ${reason} (${shown.join('; ')})`);
  }
  lines.push(`  ${countsLine(r)}`);
  return lines.join('\n');
}

export function countsLine(
  r: Pick<ClusterScenarioResult, 'passed' | 'failed' | 'skipped' | 'skippedScenario' | 'ms'>,
): string {
  return `${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped${r.skippedScenario ? ' (whole scenario skipped)' : ''}, ${r.ms} ms`;
}
