// Runs scenario files in the lab: the world's pods and hosts as network namespaces, each node's table
// programmed by its enforcer (compile + netlink inside the node namespace), and every expectation probed
// with real traffic, retried until it converges (at most 10 s, as the scenario README allows).

import { ClusterIndex } from '../policy/index.ts';
import type { HeldConnection } from '../scenario/connections.ts';
import type { DropExpectation, DropOutcome } from '../scenario/drops.ts';
import { modelDriver, modelOutcome } from '../scenario/model.ts';
import { ScenarioError } from '../scenario/parse.ts';
import {
  endpointText,
  type Probe,
  type ProbeOutcome,
  runScenario,
  type ScenarioDriver,
  type WindowSample,
} from '../scenario/probes.ts';
import type { FaultStep, Scenario } from '../scenario/types.ts';
import type { World } from '../scenario/world.ts';
import { ConnectionHolders } from './connections.ts';
import { EnforcerClient } from './enforcer-client.ts';
import { LabError } from './errors.ts';
import { Lab } from './lab.ts';
import type { LabSpec, PodSpec } from './types.ts';

const CONVERGE_MS = 10_000;
const RETRY_PAUSE_MS = 250;
const PROBE_TIMEOUT_MS = 1500;

/** What the lab's probes can send (Lab.probe refuses anything else with E_LAB_UNSUPPORTED). */
const LAB_PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP']);
export const labCanProbe = (p: Probe): boolean => LAB_PROTOCOLS.has(p.protocol);

/**
 * Refuses (E_LAB_UNSUPPORTED) a scenario with a probe the lab cannot send, found by running it in the model
 * (milliseconds), so before any lab is built: at the probe itself the refusal would come after the lab's
 * (and an API server's) start-up. A scenario the model rejects is left to the real run to report.
 * `when: 'all'`: only when no probe at all can be sent (a driver that skips the others, see ApiDriverOptions).
 */
export async function refuseUnprobeable(scenario: Scenario, when: 'any' | 'all' = 'any'): Promise<void> {
  let found: Probe | undefined;
  let sendable = 0;
  try {
    await runScenario(scenario, {
      ...modelDriver,
      probe(world, probes) {
        found ??= probes.find((p) => !labCanProbe(p));
        sendable += probes.filter(labCanProbe).length;
        return modelDriver.probe(world, probes);
      },
    });
  } catch {
    return;
  }
  if (found && (when === 'any' || sendable === 0))
    throw new LabError(
      'E_LAB_UNSUPPORTED',
      `${scenario.file}: cannot probe ${found.protocol}: the lab has no ${found.protocol} (${found.text})`,
    );
}

/** The world's pods as the lab runs them (addresses from the world's layout). */
export function podSpecs(world: World): PodSpec[] {
  return world.labPods().map((p) => ({
    key: p.key,
    node: p.node,
    hostNetwork: p.hostNetwork,
    ...(p.hostNetwork ? {} : { ip4: world.podIp4(p), ip6: world.podIp6(p) }),
    ports: p.ports.map((x) => ({ port: x.port, protocol: x.protocol })),
  }));
}

export function labSpecOf(world: World): LabSpec {
  return {
    nodes: world.nodes.map((n) => ({ ...n })),
    pods: podSpecs(world),
    hosts: world.hosts.map((h) => ({
      name: h.name,
      ip4: h.ip,
      ip6: h.ip6,
      ports: h.ports.map((x) => ({ port: x.port, protocol: x.protocol })),
    })),
  };
}

export interface LabDriverOptions {
  /** Called after every enforcement change with each node's sync result (logs, tests). */
  onSync?: (node: string, result: Awaited<ReturnType<EnforcerClient['sync']>>) => void;
}

export class LabScenarioDriver implements ScenarioDriver {
  /** The enforcers program ClusterNetworkPolicy tiers (compile/tiers.ts). */
  readonly enforcesClusterPolicies = true;
  lab: Lab | undefined;
  enforcers: EnforcerClient[] = [];
  private holders: ConnectionHolders | undefined;
  private readonly options: LabDriverOptions;

  constructor(options: LabDriverOptions = {}) {
    this.options = options;
  }

  async start(world: World): Promise<void> {
    // The enforcers program tables only; deleting conntrack entries is the agent's (--established=cut).
    if (world.scenario.established === 'cut')
      throw new ScenarioError(
        `${world.scenario.file}: established: cut needs agents and an API server: run it with \`tollgate lab run --api\``,
      );
    await refuseUnprobeable(world.scenario);
    this.lab = await Lab.up(labSpecOf(world));
    this.enforcers = world.nodes.map((n) => new EnforcerClient(this.lab!.nodeNamespace(n.index), n.name));
    await this.enforce(world);
  }

  async stop(): Promise<void> {
    await this.holders?.close();
    this.holders = undefined;
    await Promise.allSettled(this.enforcers.map((e) => e.close()));
    this.enforcers = [];
    await this.lab?.down();
    this.lab = undefined;
  }

  private async enforce(world: World): Promise<void> {
    const objects = world.objects();
    const results = await Promise.all(this.enforcers.map((e) => e.sync(objects)));
    results.forEach((r, i) => {
      this.options.onSync?.(this.enforcers[i]!.node, r);
    });
  }

  async sync(world: World): Promise<void> {
    const lab = this.lab!;
    const wanted = new Map(podSpecs(world).map((p) => [p.key, p]));
    // Pods go away before new ones come (a new pod may reuse a deleted pod's address), and the table is
    // programmed before a new pod's servers start, as a CNI + enforcer would.
    for (const p of lab.pods) if (!wanted.has(p.key)) await lab.removePod(p.key);
    await this.enforce(world);
    const existing = new Set(lab.pods.map((p) => p.key));
    for (const spec of wanted.values()) if (!existing.has(spec.key)) await lab.addPod(spec);
  }

  probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    return probeInLab(this.lab!, world, probes);
  }

  connect(world: World, connections: HeldConnection[]): Promise<{ ok: boolean; detail: string }[]> {
    this.holders ??= new ConnectionHolders(this.lab!);
    return this.holders.connect(world, connections);
  }

  alive(
    world: World,
    checks: { connection: HeldConnection; expectCut: boolean }[],
    startedAt: number,
  ): Promise<{ alive: boolean; detail: string }[]> {
    this.holders ??= new ConnectionHolders(this.lab!);
    return this.holders.alive(world, checks, startedAt);
  }

  async fault(_world: World, step: FaultStep): Promise<void> {
    throw new ScenarioError(
      `${step.where}: fault steps need agents and an API server: run it with \`tollgate lab run --api\``,
    );
  }

  /** No agent runs here, so nothing reports: a drops step is a mistake in this mode, not a skip. */
  async drops(_world: World, expectations: DropExpectation[]): Promise<DropOutcome[]> {
    const where = expectations[0]?.drop.where.replace(/\[\d+\]$/, '') ?? 'a drops step';
    throw new ScenarioError(
      `${where}: drops steps need the agents' reports: run it with \`tollgate lab run --api\``,
    );
  }
}

const SAMPLE_EVERY_MS = 200;
const SAMPLE_TIMEOUT_MS = 1000;

/**
 * Sends each probe every 200 ms until stopped (without waiting for the previous one,
 * so a denied probe's timeout does not thin the samples), and keeps when each was sent and whether it
 * got through: what passed during a convergence window.
 */
export class ProbeSampler {
  readonly samples: WindowSample[] = [];
  readonly #inflight = new Set<Promise<void>>();
  readonly #timer: NodeJS.Timeout;

  constructor(lab: Lab, probes: () => Probe[], startedAt: number) {
    const tick = () => {
      for (const p of probes()) {
        const atMs = Math.round(performance.now() - startedAt);
        const done = lab
          .probe(endpointText(p.from), endpointText(p.to), p.port, p.protocol, {
            timeoutMs: SAMPLE_TIMEOUT_MS,
            family: p.family ?? 4,
          })
          .then(
            (r) => {
              this.samples.push({ probe: p.text, atMs, allowed: r.ok });
            },
            () => {}, // a probe that cannot run (a pod not in the lab yet, the lab going down): no sample
          )
          .finally(() => this.#inflight.delete(done));
        this.#inflight.add(done);
      }
    };
    tick();
    this.#timer = setInterval(tick, SAMPLE_EVERY_MS);
  }

  /** Stops sampling, waits for the probes in flight; the samples in the order they were sent. */
  async stop(): Promise<WindowSample[]> {
    clearInterval(this.#timer);
    await Promise.all(this.#inflight);
    return this.samples.sort((a, b) => a.atMs - b.atMs);
  }
}

/**
 * Probes every expectation with real traffic from inside its source, retrying the ones that do not hold yet
 * for up to 10 s (enforcement may still be converging); a probe still wrong gets the model's explanation.
 */
export async function probeInLab(lab: Lab, world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
  const requests = probes.map((p) => ({
    from: endpointText(p.from),
    to: endpointText(p.to),
    port: p.port,
    protocol: p.protocol,
    timeoutMs: PROBE_TIMEOUT_MS,
    family: p.family ?? 4,
  }));
  const results = await lab.probeMany(requests);
  const deadline = performance.now() + CONVERGE_MS;
  let wrong = results.map((r, i) => (r.ok !== probes[i]!.expectAllow ? i : -1)).filter((i) => i >= 0);
  while (wrong.length > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
    const again = await lab.probeMany(wrong.map((i) => requests[i]!));
    wrong.forEach((i, k) => {
      results[i] = again[k]!;
    });
    wrong = wrong.filter((i) => results[i]!.ok !== probes[i]!.expectAllow);
  }
  const index = wrong.length > 0 ? new ClusterIndex(world.state()) : undefined;
  return probes.map((probe, i) => {
    const r = results[i]!;
    let explanation: string | undefined;
    if (index && r.ok !== probe.expectAllow)
      explanation = `lab: ${r.ok ? 'answered' : 'no answer'} (${r.detail}, ${r.address})\nmodel: ${modelOutcome(world, index, probe).explanation}`;
    return { probe, allowed: r.ok, explanation };
  });
}
