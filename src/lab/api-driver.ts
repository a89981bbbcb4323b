// Runs scenario files through a real API server: the world's objects are written to kube-apiserver (pods
// kubelet-less: created with spec.nodeName, status written by us), one `tollgate agent` per node watches
// it with the shipped RBAC and programs its node, and probes wait for that asynchronous convergence.
// Fault steps (scenario README, "Faults") act on this: nft run in a node, agents stopped, killed or
// doubled, the API server stopped and started; `expect: {within}` measures the convergence window.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CUT_PASS_MESSAGE } from '../agent/cut.ts';
import type { HeldConnection } from '../scenario/connections.ts';
import type { DropExpectation, DropOutcome } from '../scenario/drops.ts';
import type { Probe, ProbeOutcome, ScenarioDriver, WindowReport } from '../scenario/probes.ts';
import type { AgentAction, FaultStep, Scenario } from '../scenario/types.ts';
import type { World } from '../scenario/world.ts';
import type { KubeObject } from './admin-client.ts';
import {
  AGENT_METRICS_ADDR,
  AgentProcess,
  agentHasFlag,
  READY_MS,
  SECOND_AGENT_METRICS_ADDR,
} from './agent-process.ts';
import { ApiServer, type ApiServerOptions } from './apiserver.ts';
import { CNP_COLLECTION } from './cnp-crd.ts';
import { ConnectionHolders, CUT_WITHIN_MS } from './connections.ts';
import { waitForDrops } from './drops.ts';
import { LabError } from './errors.ts';
import { Lab } from './lab.ts';
import { loadFactor, scaledMs } from './load.ts';
import { labCanProbe, labSpecOf, ProbeSampler, podSpecs, probeInLab, refuseUnprobeable } from './scenario.ts';
import { TableChecker } from './table-checker.ts';

const CONVERGE_MS = 10_000;
/** A report must reach the agent's log this soon after its probe (scenario README, drops). */
const REPORT_MS = 5000;
/** After `api: start`: the agents' watches back off while the API is down, so relisting takes longer. */
const API_BACK_MS = 40_000;
// A pod needs an image to pass validation; no kubelet ever pulls it.
const POD_IMAGE = 'registry.invalid/tollgate-lab-server:1';
const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type K8s = KubeObject & { metadata: { name: string; namespace?: string; labels?: Record<string, string> } };

function labelsOf(o: K8s): Record<string, string> {
  return { ...(o.metadata.labels ?? {}) };
}

/** A JSON merge patch turning labels `from` into `to` (null removes a key). */
function labelPatch(from: Record<string, string>, to: Record<string, string>): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const k of Object.keys(from)) if (!(k in to)) patch[k] = null;
  for (const [k, v] of Object.entries(to)) if (from[k] !== v) patch[k] = v;
  return patch;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

const CNP_KIND = 'ClusterNetworkPolicy';

/**
 * Whether a scenario ever holds a ClusterNetworkPolicy (an apply of one or a delete of one): only then is
 * the CRD installed, so every other scenario's agents see the kind not served, as on most clusters.
 */
export function usesClusterPolicies(scenario: Scenario): boolean {
  return scenario.steps.some((step) =>
    step.kind === 'delete'
      ? step.resource === 'clusternetworkpolicy'
      : step.kind === 'apply' && /^\s*kind:\s*['"]?ClusterNetworkPolicy['"]?\s*$/m.test(step.text),
  );
}

// ---- the driver --------------------------------------------------------------------------------------------

export interface ApiDriverOptions {
  /** Extra `tollgate agent` flags, e.g. ['--watch-quiet-ms', '3000']. */
  agentArgs?: string[];
  /**
   * How agents reach the API: a kubeconfig file (default; loads @kubernetes/client-node, as `--kubeconfig`
   * users run it) or the service-account files and KUBERNETES_SERVICE_HOST/PORT, as the DaemonSet runs it.
   */
  agentConfig?: 'kubeconfig' | 'in-cluster';
  apiserver?: Omit<ApiServerOptions, 'nodes'>;
  /** Progress lines (start-up times, convergence), for logs. */
  log?: (line: string) => void;
  /**
   * Probes the lab cannot send (SCTP) get a wrong outcome marked skipped (isSkipped, `skips`) instead of
   * refusing the scenario, so its other probes still run; the caller must not count those as failures.
   * A scenario with no probe the lab can send is still refused before its lab is built.
   */
  skipUnprobeable?: boolean;
}

/** How long a state change took to reach every node's table (through API, watch, agent, netlink). */
export interface Convergence {
  what: string;
  ms: number;
  converged: boolean;
  /** Nodes whose table still differed at the deadline, with what differed. */
  pending: string[];
}

export class ApiScenarioDriver implements ScenarioDriver {
  /** The agents program ClusterNetworkPolicy tiers; the CRD is installed when the scenario has any. */
  readonly enforcesClusterPolicies = true;
  lab: Lab | undefined;
  api: ApiServer | undefined;
  agents: AgentProcess[] = [];
  readonly convergence: Convergence[] = [];
  /** Start-up phases in ms: lab, apiserver (of which ready), objects, agents ready, converged. */
  readonly timings: Record<string, number> = {};
  readonly #options: ApiDriverOptions;
  #checkers: TableChecker[] = [];
  /** What was last written for each object (`kind ns/name`), as the world gave it. */
  #written = new Map<string, K8s>();
  /** Second agents (`second-start`), by node index. */
  readonly seconds = new Map<number, AgentProcess>();
  /** Per-node `--state-dir` directories (when the agent has the flag), removed at stop. */
  readonly stateDirs = new Map<number, string>();
  /** `api: stop` until `api: start`: changes wait in the world and are written when it is back. */
  #apiDown = false;
  /** When the tables last converged (performance.now()), for `expect: {within}`. */
  #lastConvergedAt: number | undefined;
  #sampler: ProbeSampler | undefined;
  /** The scenario's `established` header, passed to every agent as --established. */
  #established: string | undefined;
  #holders: ConnectionHolders | undefined;
  /** Outcomes of probes not sent (skipUnprobeable): wrong on purpose, never a pass. */
  readonly #skipped = new WeakSet<ProbeOutcome>();
  /** The probes not sent (skipUnprobeable), as `where: text`. */
  readonly skips: string[] = [];

  constructor(options: ApiDriverOptions = {}) {
    this.#options = options;
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }

  async start(world: World): Promise<void> {
    let t = performance.now();
    const lap = (name: string) => {
      this.timings[name] = Math.round(performance.now() - t);
      t = performance.now();
    };
    await refuseUnprobeable(world.scenario, this.#options.skipUnprobeable ? 'all' : 'any');
    this.lab = await Lab.up(labSpecOf(world));
    lap('lab');
    this.#established = world.scenario.established;
    const objects = world.objects();
    this.api = await ApiServer.start(this.lab, {
      ...this.#options.apiserver,
      nodes: objects.nodes,
      clusterPolicyCrd:
        this.#options.apiserver?.clusterPolicyCrd === true || usesClusterPolicies(world.scenario),
    });
    this.timings.apiReady = this.api.readyMs;
    lap('apiserver');
    // The agents load while the objects are written: their first sync may see part of them, as after any
    // agent restart in a live cluster; waitConverged below waits for the whole world.
    const withStateDir = agentHasFlag('--state-dir');
    for (const n of world.nodes)
      if (withStateDir)
        this.stateDirs.set(n.index, mkdtempSync(join(tmpdir(), `tollgate-state-${n.index}-`)));
    this.agents = world.nodes.map(
      (n) =>
        new AgentProcess(
          this.lab!,
          n.index,
          n.name,
          this.#agentArgs(n.index, AGENT_METRICS_ADDR),
          AGENT_METRICS_ADDR,
          this.#agentEnv(),
        ),
    );
    for (const a of this.agents) a.start();
    this.#checkers = world.nodes.map(
      (n) => new TableChecker(this.lab!.nodeNamespace(n.index), n.name, this.#options.agentArgs),
    );
    await this.applyObjects(world);
    lap('objects');
    await Promise.all(this.agents.map((a) => a.waitReady()));
    lap('agentsReady');
    await this.waitConverged(world, 'start');
    lap('converged');
    this.#log(`api driver: started ${JSON.stringify(this.timings)}`);
  }

  #inCluster(): boolean {
    return this.#options.agentConfig === 'in-cluster';
  }

  #agentEnv(): NodeJS.ProcessEnv {
    return this.#inCluster() ? this.api!.inClusterEnv : {};
  }

  #agentArgs(node: number, metricsAddr: string): string[] {
    const dir = this.stateDirs.get(node);
    return [
      '--node-name',
      this.lab!.nodes.find((n) => n.index === node)!.name,
      ...(this.#inCluster() ? [] : ['--kubeconfig', this.api!.agentKubeconfig]),
      '--metrics-addr',
      metricsAddr,
      ...(dir === undefined ? [] : ['--state-dir', dir]),
      ...(this.#established === 'cut' ? ['--established=cut'] : []),
      ...(this.#options.agentArgs ?? []),
    ];
  }

  async stop(): Promise<void> {
    await this.#sampler?.stop();
    this.#sampler = undefined;
    await this.#holders?.close();
    this.#holders = undefined;
    await Promise.allSettled([...this.agents, ...this.seconds.values()].map((a) => a.stop()));
    await Promise.allSettled(this.#checkers.map((c) => c.close()));
    this.#checkers = [];
    await this.api?.stop();
    this.api = undefined;
    await this.lab?.down();
    this.lab = undefined;
    for (const dir of this.stateDirs.values()) rmSync(dir, { recursive: true, force: true });
    this.stateDirs.clear();
  }

  async sync(world: World): Promise<void> {
    const lab = this.lab!;
    const wanted = new Map(podSpecs(world).map((p) => [p.key, p]));
    // As the lab driver: pods go before new ones come (a new pod may reuse a deleted pod's address), and
    // the new state is enforced on every node before a new pod's servers start.
    for (const p of lab.pods) if (!wanted.has(p.key)) await lab.removePod(p.key);
    // Without the API the change waits in the world (written at `api: start`); a pod the lab adds now is
    // one the agents cannot know about.
    if (!this.#apiDown) {
      await this.applyObjects(world);
      await this.waitConverged(world, `step ${this.convergence.length}`);
    }
    const existing = new Set(lab.pods.map((p) => p.key));
    for (const spec of wanted.values()) if (!existing.has(spec.key)) await lab.addPod(spec);
  }

  async fault(world: World, step: FaultStep): Promise<void> {
    // A convergence seen before this fault says nothing about the table after it.
    this.#lastConvergedAt = undefined;
    switch (step.kind) {
      case 'tamper': {
        // One argument: nft joins its arguments into one command line anyway.
        const command = world.substitute(step.nft, step.where);
        const r = await this.lab!.execNode(step.node, ['nft', command]);
        if (r.code !== 0)
          throw new LabError('E_LAB_COMMAND', `${step.where}: nft ${command}: ${r.stderr.trim()}`);
        this.#log(`api driver: node ${step.node}: nft ${command}`);
        return;
      }
      case 'agent':
        await this.#agentFault(step.node, step.action);
        return;
      case 'api':
        if (step.action === 'stop') {
          await this.api!.stopServers();
          this.#apiDown = true;
          return;
        }
        await this.api!.startServers();
        this.#apiDown = false;
        await this.applyObjects(world);
        await this.waitConverged(world, 'api back', scaledMs(API_BACK_MS));
        return;
    }
  }

  async #agentFault(node: number, action: AgentAction): Promise<void> {
    const agent = this.agent(node);
    switch (action) {
      case 'stop':
        return agent.stop();
      case 'start':
        // Not waited for readiness: an agent started without the API (a reboot) never gets ready. But it is
        // waited for until it has taken over its node (boot-closed table, first sync, or standby): before
        // that no agent runs, as on a real node before the kubelet starts it, and on a loaded machine
        // Node's start-up alone can take seconds.
        if (!agent.running) {
          agent.start();
          await agent.waitTookOver(scaledMs(READY_MS));
        }
        return;
      case 'restart':
        await agent.stop();
        agent.start();
        return;
      case 'kill':
        return agent.kill('SIGKILL');
      case 'second-start': {
        let second = this.seconds.get(node);
        if (!second) {
          second = new AgentProcess(
            this.lab!,
            node,
            agent.nodeName,
            this.#agentArgs(node, SECOND_AGENT_METRICS_ADDR),
            SECOND_AGENT_METRICS_ADDR,
            this.#agentEnv(),
          );
          this.seconds.set(node, second);
        }
        // Waited for as `start` is: until it is standby (or has taken over). A scenario's next step is
        // "the writer stops, the standby takes over within 2 s": a second agent still loading (seconds on
        // a loaded machine) is no standby yet, and that window then measured its start-up instead.
        if (!second.running) {
          second.start();
          await second.waitTookOver(scaledMs(READY_MS));
        }
        return;
      }
      case 'second-stop':
        return this.seconds.get(node)?.stop();
    }
  }

  /** `connect`: real connections from the source pods (see ConnectionHolders). */
  connect(world: World, connections: HeldConnection[]): Promise<{ ok: boolean; detail: string }[]> {
    this.#holders ??= new ConnectionHolders(this.lab!);
    return this.#holders.connect(world, connections);
  }

  /** `connections`: whether each still answers (a cut one within 5 s, load-scaled). */
  alive(
    world: World,
    checks: { connection: HeldConnection; expectCut: boolean }[],
    startedAt: number,
  ): Promise<{ alive: boolean; detail: string }[]> {
    this.#holders ??= new ConnectionHolders(this.lab!);
    const holders = this.#holders;
    // A connection that should survive is checked once the agents' cut passes after their last syncs are
    // done: the table converges (what waitConverged sees) just before the agent cuts.
    return this.#cutPassesDone().then(() => holders.alive(world, checks, startedAt));
  }

  /** With established: cut, until each running agent has logged a cut pass covering each changing sync. */
  async #cutPassesDone(): Promise<void> {
    if (this.#established !== 'cut') return;
    const count = (lines: string[], msg: string) => lines.filter((l) => l.includes(`"msg":"${msg}"`)).length;
    // Passes coalesce: the last pass line of the agent's current run says how many of the run's changing
    // syncs it covers (lines are "<time> <json>", every run's, oldest first).
    const covered = (run: string[]) => {
      const last = run.findLast((l) => l.includes(`"msg":"${CUT_PASS_MESSAGE}"`));
      if (last === undefined) return 0;
      try {
        return (JSON.parse(last.slice(last.indexOf('{'))) as { syncs?: number }).syncs ?? 0;
      } catch {
        return 0;
      }
    };
    const currentRun = (lines: string[]) =>
      lines.slice(
        Math.max(
          0,
          lines.findLastIndex((l) => l.includes('"msg":"starting"')),
        ),
      );
    const done = () =>
      this.agents.every((a) => {
        const run = currentRun(a.lines);
        return !a.running || covered(run) >= count(run, 'synced');
      });
    const deadline = performance.now() + scaledMs(CUT_WITHIN_MS);
    while (!done() && performance.now() < deadline) await sleep(50);
  }

  watch(_world: World, probes: () => Probe[], startedAt: number): void {
    void this.#sampler?.stop();
    this.#sampler = new ProbeSampler(this.lab!, probes, startedAt);
  }

  /**
   * `expect: {within}`: waits (load-scaled limit) for every node's table to equal the model, measured
   * from the window's start; converging later than `within` times the load allowance (loadFactor, the
   * 1-minute load per core, 1..5) fails the step. Then the probes as usual, and the samples taken since
   * the window opened. A plain `expect` after a fault gets the probes and the samples only.
   */
  async probeWindow(
    world: World,
    probes: Probe[],
    window: { startedAt: number; withinMs: number | undefined },
  ): Promise<{ outcomes: ProbeOutcome[]; window: WindowReport }> {
    const allowedMs = window.withinMs === undefined ? undefined : Math.round(window.withinMs * loadFactor());
    const convergedMs =
      allowedMs === undefined ? undefined : await this.#convergedSince(world, window.startedAt, allowedMs);
    const outcomes = await this.probe(world, probes);
    const samples = (await this.#sampler?.stop()) ?? [];
    this.#sampler = undefined;
    const denied = new Set(probes.filter((p) => !p.expectAllow).map((p) => p.text));
    const report: WindowReport = {
      openedAt: Math.round(performance.timeOrigin + window.startedAt),
      withinMs: window.withinMs,
      allowedMs,
      convergedMs,
      late: allowedMs !== undefined && (convergedMs === undefined || convergedMs > allowedMs),
      samples,
      wrong: samples.filter((x) => x.allowed && denied.has(x.probe)).length,
    };
    this.#log(
      `api driver: window (within ${window.withinMs ?? '-'} ms): converged ${convergedMs ?? 'never'} ms, ${report.wrong}/${samples.length} samples passed wrongly`,
    );
    return { outcomes, window: report };
  }

  /** Every line must match a report logged by the agent (first or second) of the node that makes it. */
  drops(world: World, expectations: DropExpectation[]): Promise<DropOutcome[]> {
    return waitForDrops(
      world,
      expectations,
      () => [...this.agents, ...this.seconds.values()].map((a) => a.reportLog),
      { timeoutMs: scaledMs(REPORT_MS) },
    );
  }

  async probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    const outcomes = this.#options.skipUnprobeable
      ? await this.#probeSkipping(world, probes)
      : await probeInLab(this.lab!, world, probes);
    const first = outcomes.find((o) => o.allowed !== o.probe.expectAllow && !this.#skipped.has(o));
    // What the agents did is the first thing to read when the API path disagrees with the model (once per
    // step: a matrix may have many wrong cells).
    if (first) first.explanation = `${first.explanation ?? ''}\n${this.diagnostics()}`;
    return outcomes;
  }

  async #probeSkipping(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    const sent = await probeInLab(this.lab!, world, probes.filter(labCanProbe));
    return probes.map((probe) => {
      if (labCanProbe(probe)) return sent.shift()!;
      const outcome = {
        probe,
        allowed: !probe.expectAllow,
        explanation: `skipped: the lab has no ${probe.protocol}`,
      };
      this.#skipped.add(outcome);
      this.skips.push(`${probe.where}: ${probe.text}`);
      return outcome;
    });
  }

  /** Whether the runner's outcome is one of a probe not sent (skipUnprobeable). */
  isSkipped(outcome: ProbeOutcome): boolean {
    return this.#skipped.has(outcome);
  }

  /** Agents' recent logs, unconverged steps and the API server's log tail: printed with a failure. */
  diagnostics(lines = 25): string {
    const pending = this.convergence.filter((c) => !c.converged);
    return [
      ...pending.map((c) => `not converged after ${c.ms} ms (${c.what}): ${c.pending.join('; ')}`),
      ...this.agents.map((a) => a.tail(lines)),
    ].join('\n');
  }

  /**
   * Makes the API hold exactly the world's namespaces, pods (with status) and policies: creates, updates
   * labels or specs, deletes what the world no longer has. Writes only what changed since the last call.
   */
  async applyObjects(world: World): Promise<void> {
    const client = this.api!.adminClient;
    const o = world.objects() as unknown as {
      namespaces: K8s[];
      pods: K8s[];
      policies: K8s[];
      clusterPolicies: K8s[];
    };
    const key = (kind: string, x: K8s) => `${kind} ${x.metadata.namespace ?? ''}/${x.metadata.name}`;
    const want = new Map<string, K8s>();
    for (const ns of o.namespaces) want.set(key('Namespace', ns), ns);
    for (const p of o.pods) want.set(key('Pod', p), p);
    for (const p of o.policies) want.set(key('NetworkPolicy', p), p);
    for (const p of o.clusterPolicies) want.set(key(CNP_KIND, p), p);

    // Deletions first: policies and pods, then namespaces (emptied first: no controller would).
    const gone = [...this.#written].filter(([k]) => !want.has(k));
    for (const [k, x] of gone.filter(([k]) => !k.startsWith('Namespace '))) {
      if (k.startsWith('Pod ')) await client.remove(podPath(x), { gracePeriodSeconds: '0' });
      else if (k.startsWith(`${CNP_KIND} `)) await client.remove(clusterPolicyPath(x));
      else await client.remove(policyPath(x));
      this.#written.delete(k);
    }
    for (const kind of ['Namespace', 'Pod', 'NetworkPolicy', CNP_KIND]) {
      for (const [k, x] of want) {
        if (!k.startsWith(`${kind} `)) continue;
        const before = this.#written.get(k);
        if (kind === 'Namespace') await this.#writeNamespace(x, before);
        else if (kind === 'Pod') await this.#writePod(x, before);
        else await this.#writePolicy(x, before, kind === CNP_KIND);
        this.#written.set(k, structuredClone(x));
      }
    }
    for (const [k, x] of gone.filter(([k]) => k.startsWith('Namespace '))) {
      await this.#deleteNamespace(x.metadata.name);
      this.#written.delete(k);
    }
  }

  async #writeNamespace(ns: K8s, before: K8s | undefined): Promise<void> {
    const client = this.api!.adminClient;
    const name = ns.metadata.name;
    const labels = { ...labelsOf(ns), [NAMESPACE_NAME_LABEL]: name };
    if (before === undefined) {
      const r = await client.request('POST', '/api/v1/namespaces', { ...ns, metadata: { name, labels } });
      if (r.status === 201) return;
      if (r.status !== 409)
        throw new LabError(
          'E_LAB_COMMAND',
          `create namespace ${name}: ${r.status} ${String(r.body.message)}`,
        );
      const current = await client.get(`/api/v1/namespaces/${name}`);
      const patch = labelPatch(
        (current.metadata as { labels?: Record<string, string> }).labels ?? {},
        labels,
      );
      if (Object.keys(patch).length > 0)
        await client.mergePatch(`/api/v1/namespaces/${name}`, { metadata: { labels: patch } });
      return;
    }
    const patch = labelPatch({ ...labelsOf(before), [NAMESPACE_NAME_LABEL]: name }, labels);
    if (Object.keys(patch).length > 0)
      await client.mergePatch(`/api/v1/namespaces/${name}`, { metadata: { labels: patch } });
  }

  async #writePod(pod: K8s, before: K8s | undefined): Promise<void> {
    const client = this.api!.adminClient;
    const path = podPath(pod);
    if (before === undefined) {
      const spec = structuredClone(pod.spec) as { containers: Record<string, unknown>[] };
      for (const c of spec.containers) c.image ??= POD_IMAGE;
      const { status, ...rest } = pod;
      await client.call('POST', `/api/v1/namespaces/${pod.metadata.namespace}/pods`, { ...rest, spec });
      // What a kubelet would report once the sandbox has its addresses.
      await client.mergePatch(`${path}/status`, { status });
      return;
    }
    const patch = labelPatch(labelsOf(before), labelsOf(pod));
    if (Object.keys(patch).length > 0) await client.mergePatch(path, { metadata: { labels: patch } });
    if (!sameJson(before.status, pod.status))
      await client.mergePatch(`${path}/status`, { status: pod.status });
  }

  /** Creates a NetworkPolicy or (cluster) a ClusterNetworkPolicy, or replaces it when it exists. */
  async #writePolicy(policy: K8s, before: K8s | undefined, cluster: boolean): Promise<void> {
    const client = this.api!.adminClient;
    if (before !== undefined && sameJson(before, policy)) return;
    const path = cluster ? clusterPolicyPath(policy) : policyPath(policy);
    const what = cluster
      ? `clusternetworkpolicy ${policy.metadata.name}`
      : `networkpolicy ${policy.metadata.namespace}/${policy.metadata.name}`;
    const r = await client.request('POST', path.slice(0, path.lastIndexOf('/')), policy);
    if (r.status === 201) return;
    if (r.status !== 409)
      throw new LabError('E_LAB_COMMAND', `create ${what}: ${r.status} ${String(r.body.message)}`);
    const current = await client.get(path);
    const resourceVersion = (current.metadata as { resourceVersion?: string }).resourceVersion;
    await client.call('PUT', path, {
      ...policy,
      metadata: { ...policy.metadata, resourceVersion },
    });
  }

  /** Deletes a namespace's pods and policies, then the namespace, then removes its finalizer. */
  async #deleteNamespace(name: string): Promise<void> {
    const client = this.api!.adminClient;
    for (const [collection, query] of [
      [`/api/v1/namespaces/${name}/pods`, { gracePeriodSeconds: '0' }],
      [`/apis/networking.k8s.io/v1/namespaces/${name}/networkpolicies`, {}],
    ] as const) {
      const list = await client.get(collection);
      for (const item of (list.items ?? []) as K8s[])
        await client.remove(`${collection}/${item.metadata.name}`, query);
    }
    await client.remove(`/api/v1/namespaces/${name}`);
    // Without a controller manager nothing would finish the deletion: drop the `kubernetes` finalizer.
    const ns = await client.find(`/api/v1/namespaces/${name}`);
    if (ns)
      await client.call('PUT', `/api/v1/namespaces/${name}/finalize`, { ...ns, spec: { finalizers: [] } });
  }

  /** ms from `startedAt` until the tables equalled the model (waited for if not yet); undefined: never. */
  async #convergedSince(world: World, startedAt: number, allowedMs: number): Promise<number | undefined> {
    const seen = this.#lastConvergedAt;
    if (seen !== undefined && seen >= startedAt) return Math.round(seen - startedAt);
    const limit = Math.max(scaledMs(CONVERGE_MS), 2 * allowedMs);
    const left = Math.max(0, limit - (performance.now() - startedAt));
    const c = await this.waitConverged(world, 'convergence window', left);
    return c.converged ? Math.round(this.#lastConvergedAt! - startedAt) : undefined;
  }

  /**
   * Waits until every node's kernel table equals what the model computes for the world (read back and
   * compared by the table checkers), at most `timeoutMs`. Records the time; never throws for a node that
   * did not converge (the probes decide), but remembers it for the diagnostics.
   */
  async waitConverged(world: World, what: string, timeoutMs = CONVERGE_MS): Promise<Convergence> {
    const objects = world.objects();
    const started = performance.now();
    let pending: string[] = [];
    for (;;) {
      const replies = await Promise.all(this.#checkers.map((c) => c.check(objects)));
      pending = replies
        .map((r, i) =>
          r.ok && r.result?.equal
            ? undefined
            : `${world.nodes[i]!.name}: ${r.ok ? r.result?.detail : r.error}`,
        )
        .filter((x): x is string => x !== undefined);
      if (pending.length === 0) {
        this.#lastConvergedAt = performance.now();
        break;
      }
      if (performance.now() - started > timeoutMs) break;
      await sleep(50);
    }
    const result = {
      what,
      ms: Math.round(performance.now() - started),
      converged: pending.length === 0,
      pending,
    };
    this.convergence.push(result);
    this.#log(`api driver: ${what} ${result.converged ? 'converged' : 'NOT converged'} in ${result.ms} ms`);
    return result;
  }

  /** Whether node N's kernel table is exactly what the model computes for `objects` (read-only check). */
  async tableMatches(
    index: number,
    objects: unknown,
  ): Promise<{ equal: boolean; detail: string | undefined }> {
    const checker = this.#checkers[index - 1];
    if (!checker) throw new LabError('E_LAB_UNKNOWN', `no node ${index}`);
    const r = await checker.check(objects);
    if (!r.ok) throw new LabError('E_LAB_AGENT', `table check of node ${index}: ${r.error}`);
    return { equal: r.result?.equal === true, detail: r.result?.detail };
  }

  /** The agent of node N (1-based). */
  agent(index: number): AgentProcess {
    const a = this.agents.find((x) => x.nodeIndex === index);
    if (!a) throw new LabError('E_LAB_UNKNOWN', `no agent for node ${index}`);
    return a;
  }
}

function podPath(p: K8s): string {
  return `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`;
}

function clusterPolicyPath(p: K8s): string {
  return `${CNP_COLLECTION}/${p.metadata.name}`;
}

function policyPath(p: K8s): string {
  return `/apis/networking.k8s.io/v1/namespaces/${p.metadata.namespace}/networkpolicies/${p.metadata.name}`;
}
