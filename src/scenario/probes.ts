// Expectations of a scenario: probe lines and matrices expanded into probes, and the step runner that
// drives a scenario through a driver (the model here; the lab elsewhere). The runner does no I/O itself.
import type { Protocol } from '../policy/types.ts';
import { type ConnectionDriver, isConnectionStep, runConnectionStep } from './connections.ts';
import {
  type DropExpectation,
  type DropOutcome,
  dropExpectations,
  type ExpectedReport,
  type ProbeRecord,
} from './drops.ts';
import { ScenarioError } from './parse.ts';
import {
  type EndpointRef,
  type FaultStep,
  isFault,
  type ProbeFamily,
  type Scenario,
  type Step,
} from './types.ts';
import { World } from './world.ts';

export interface Probe {
  /** `FROM -> TO:PORT/PROTO`, with ` over IPv6` for an IPv6 probe. */
  text: string;
  from: EndpointRef;
  to: EndpointRef;
  port: number;
  protocol: Protocol;
  /** The address family of both ends (the source's and the destination's address of it); absent: 4. */
  family?: 4 | 6;
  expectAllow: boolean;
  where: string;
  /** What the report calls the two outcomes (default allow / deny; connections: alive / cut). */
  words?: [string, string];
}

export interface ProbeOutcome {
  probe: Probe;
  allowed: boolean;
  /** Why (the model's explanation), printed for failures. */
  explanation: string | undefined;
  /** The model only: the drop reports the dataplane makes for this probe, for `drops` steps. */
  reports?: ExpectedReport[];
}

/** Probes sampled while enforcement converged: when each was sent (ms into the window) and its result. */
export interface WindowSample {
  probe: string;
  atMs: number;
  allowed: boolean;
}

/**
 * The convergence window of an `expect` step: from the first change or fault since the previous
 * expectation to the step. With `within`, how long until every node's table equalled the model again.
 */
export interface WindowReport {
  /** When the window opened, as epoch ms (to compare with the agents' log times). */
  openedAt: number;
  /** undefined: a plain `expect` after a fault (sampled, not timed). */
  withinMs: number | undefined;
  /** withinMs times the machine's load allowance (see the lab driver): what was asserted. */
  allowedMs: number | undefined;
  /** ms from the window's start until the tables converged; undefined: not measured, or they did not. */
  convergedMs: number | undefined;
  /** Converged later than allowedMs (or never): a failure of the step. */
  late: boolean;
  /** The step's deny probes, sampled from the window's start until the step was done. */
  samples: WindowSample[];
  /** Samples that passed although the probe should be denied. */
  wrong: number;
}

export interface ScenarioDriver extends Partial<ConnectionDriver> {
  /** Enforces ClusterNetworkPolicies (the model only, for now); without it their steps are refused. */
  readonly enforcesClusterPolicies?: boolean;
  /** Sets up and enforces the initial world (the lab builds its cluster here). */
  start?(world: World): Promise<void>;
  /** Tears down what start built; called also when the scenario fails. */
  stop?(): Promise<void>;
  /** Makes the enforcement match the world after a state-changing step. */
  sync(world: World, step: Step): Promise<void>;
  /** Decides (model) or measures (lab) every probe; outcomes in the same order. */
  probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]>;
  /**
   * Decides (model) or waits for the agents' reports of (lab) every line of a `drops` step; outcomes in
   * the same order. A driver without it skips drops steps.
   */
  drops?(world: World, expectations: DropExpectation[]): Promise<DropOutcome[]>;
  /** Carries out a fault step; a driver without it (the model) skips fault steps. */
  fault?(world: World, step: FaultStep): Promise<void>;
  /**
   * A window opened at `startedAt` (performance.now()) whose next expectation has `within` or follows a
   * fault: the driver may sample its deny probes until `probeWindow` closes it. `probes()` gives them as
   * far as they parse at the time (a pod added during the window is sampled once it exists).
   */
  watch?(world: World, probes: () => Probe[], startedAt: number): void;
  /** Such an `expect`: the probes as `probe` does, the samples, and (with within) how fast it converged. */
  probeWindow?(
    world: World,
    probes: Probe[],
    window: { startedAt: number; withinMs: number | undefined },
  ): Promise<{ outcomes: ProbeOutcome[]; window: WindowReport }>;
}

export interface StepReport {
  step: Step;
  outcomes: ProbeOutcome[];
  /** For matrix steps: the pods in row/column order. */
  matrixPods: string[] | undefined;
  /** For `expect` with `within` or after a fault, through a driver that measures it. */
  window?: WindowReport;
  /** For `drops` steps: one outcome per line. */
  drops?: DropOutcome[];
}

export interface ScenarioReport {
  scenario: Scenario;
  steps: StepReport[];
  passed: number;
  failed: number;
}

export function endpointText(e: EndpointRef): string {
  if (e.kind === 'pod') return e.key;
  if (e.kind === 'host') return `host/${e.name}`;
  return `node/${e.index}`;
}

function parseEndpoint(world: World, text: string, where: string): EndpointRef {
  const [a, b] = text.split('/');
  if (a === undefined || b === undefined || text.split('/').length !== 2)
    throw new ScenarioError(`${where}: '${text}' is not ns/pod, host/NAME or node/N`);
  if (a === 'host') {
    world.host(b, where);
    return { kind: 'host', name: b };
  }
  if (a === 'node') {
    world.node(Number(b));
    return { kind: 'node', index: Number(b) };
  }
  const pod = world.pod(text, where);
  if (pod.claimed)
    throw new ScenarioError(
      `${where}: ${text} exists only in the API (same-ip-as ${pod.claimed.of}): probe ${pod.claimed.of} instead`,
    );
  return { kind: 'pod', key: text };
}

/** The ports an endpoint serves (pods: containerPorts; hosts: declared ports). */
function servedPorts(world: World, e: EndpointRef) {
  if (e.kind === 'pod') return world.pods.get(e.key)?.ports ?? [];
  if (e.kind === 'host') return world.hosts.find((h) => h.name === e.name)?.ports ?? [];
  return [];
}

/** The families a step's `family` probes, in order (`both`: IPv4 first). */
export function familiesOf(family: ProbeFamily): (4 | 6)[] {
  return family === 'ipv4' ? [4] : family === 'ipv6' ? [6] : [4, 6];
}

function probeText(from: EndpointRef, to: EndpointRef, port: number, protocol: Protocol, family: 4 | 6) {
  return `${endpointText(from)} -> ${endpointText(to)}:${port}/${protocol}${family === 6 ? ' over IPv6' : ''}`;
}

const PROBE_RE = /^\s*(\S+)\s*->\s*(\S+):([A-Za-z0-9-]+)(?:\/(TCP|UDP|SCTP))?\s+(allow|deny)\s*$/;

export function parseProbe(world: World, line: string, where: string, family: 4 | 6 = 4): Probe {
  const m = PROBE_RE.exec(world.substitute(line, where));
  if (!m) throw new ScenarioError(`${where}: '${line}' is not 'FROM -> TO:PORT[/PROTO] allow|deny'`);
  const from = parseEndpoint(world, m[1]!, where);
  const to = parseEndpoint(world, m[2]!, where);
  const protocol = (m[4] ?? 'TCP') as Protocol;
  let port = Number(m[3]);
  if (!/^\d+$/.test(m[3]!)) {
    const named = servedPorts(world, to).find((p) => p.name === m[3] && p.protocol === protocol);
    if (!named)
      throw new ScenarioError(`${where}: ${endpointText(to)} has no port named ${m[3]} for ${protocol}`);
    port = named.port;
  }
  return {
    text: probeText(from, to, port, protocol, family),
    from,
    to,
    port,
    protocol,
    family,
    expectAllow: m[5] === 'allow',
    where,
  };
}

/** The probes of an `expect` step: each line once per family of the step (`both`: IPv4, then IPv6). */
export function expectProbes(world: World, step: Step & { kind: 'expect' }): Probe[] {
  return step.probes.flatMap((line, i) =>
    familiesOf(step.family).map((family) => parseProbe(world, line, `${step.where}[${i}]`, family)),
  );
}

function patternMatches(pattern: string, key: string): boolean {
  const [pn, pp] = pattern.split('/');
  const [kn, kp] = key.split('/');
  return (pn === '*' || pn === kn) && (pp === '*' || pp === kp);
}

/** Every ordered pair of distinct non-hostNetwork pods; the last matching rule wins, default allow. */
export function expandMatrix(
  world: World,
  step: Step & { kind: 'matrix' },
): { pods: string[]; probes: Probe[] } {
  const rules = step.rules.map((r, i) => {
    const m = /^\s*(allow|deny)\s+(\S+\/\S+)\s*->\s*(\S+\/\S+)\s*$/.exec(r);
    if (!m)
      throw new ScenarioError(
        `${step.where}.rules[${i}]: '${r}' is not 'allow|deny NS/POD -> NS/POD' (with * parts)`,
      );
    return { allow: m[1] === 'allow', from: m[2]!, to: m[3]! };
  });
  const pods = world
    .labPods()
    .filter((p) => !p.hostNetwork)
    .map((p) => p.key);
  const probes: Probe[] = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      let port: number;
      if (typeof step.port === 'number') port = step.port;
      else {
        const named = world.pods
          .get(to)!
          .ports.find((p) => p.name === step.port && p.protocol === step.protocol);
        if (!named) continue; // the destination does not serve that name: nothing to probe
        port = named.port;
      }
      let expectAllow = true;
      for (const r of rules)
        if (patternMatches(r.from, from) && patternMatches(r.to, to)) expectAllow = r.allow;
      for (const family of familiesOf(step.family)) {
        const ends = { from: { kind: 'pod', key: from }, to: { kind: 'pod', key: to } } as const;
        probes.push({
          text: probeText(ends.from, ends.to, port, step.protocol, family),
          ...ends,
          port,
          protocol: step.protocol,
          family,
          expectAllow,
          where: step.where,
        });
      }
    }
  }
  return { pods, probes };
}

export async function runScenario(scenario: Scenario, driver: ScenarioDriver): Promise<ScenarioReport> {
  const world = new World(scenario);
  const report: ScenarioReport = { scenario, steps: [], passed: 0, failed: 0 };
  // Before a lab is built for nothing: the step that would be refused later is known now.
  const refused = driver.enforcesClusterPolicies ? undefined : scenario.steps.find(bringsClusterPolicy);
  if (refused) throw clusterPolicyRefusal(refused);
  try {
    await driver.start?.(world);
    await runSteps(world, driver, report);
  } finally {
    await driver.stop?.();
  }
  return report;
}

async function runSteps(world: World, driver: ScenarioDriver, report: ScenarioReport): Promise<void> {
  const steps = world.scenario.steps;
  /** The first change or fault after the previous expectation opens a window; the next expect closes it. */
  let window: { startedAt: number; fault: boolean; watching: boolean } | undefined;
  /** Every probe made so far, for the lines of `drops` steps. */
  const probed: ProbeRecord[] = [];
  for (const [at, step] of steps.entries()) {
    if (isConnectionStep(step)) {
      const r = await runConnectionStep(world, driver, step);
      for (const o of r.outcomes) o.allowed === o.probe.expectAllow ? report.passed++ : report.failed++;
      report.steps.push(r);
      continue;
    }
    let probes: Probe[];
    let matrixPods: string[] | undefined;
    if (step.kind === 'drops') {
      const expectations = dropExpectations(step.lines, probed);
      if (!driver.drops) continue;
      const drops = await driver.drops(world, expectations);
      for (const d of drops) d.matched ? report.passed++ : report.failed++;
      report.steps.push({ step, outcomes: [], matrixPods: undefined, drops });
      continue;
    }
    if (step.kind === 'expect') probes = expectProbes(world, step);
    else if (step.kind === 'matrix') ({ pods: matrixPods, probes } = expandMatrix(world, step));
    else {
      window ??= { startedAt: performance.now(), fault: false, watching: false };
      window.fault ||= isFault(step);
      const next = steps.slice(at + 1).find((s) => s.kind === 'expect' || s.kind === 'matrix');
      if (
        !window.watching &&
        driver.watch &&
        next?.kind === 'expect' &&
        (next.withinMs !== undefined || window.fault)
      ) {
        driver.watch(world, () => watchedProbes(world, next), window.startedAt);
        window.watching = true;
      }
      if (isFault(step)) await driver.fault?.(world, step);
      else {
        world.applyStep(step);
        refuseClusterPolicies(world, driver, step);
        await driver.sync(world, step);
      }
      continue;
    }
    let outcomes: ProbeOutcome[];
    let measured: WindowReport | undefined;
    const probingAt = Date.now();
    if (
      step.kind === 'expect' &&
      driver.probeWindow &&
      (step.withinMs !== undefined || window?.fault === true)
    ) {
      ({ outcomes, window: measured } = await driver.probeWindow(world, probes, {
        startedAt: window?.startedAt ?? performance.now(),
        withinMs: step.withinMs,
      }));
    } else outcomes = await driver.probe(world, probes);
    const until = Date.now();
    for (const outcome of outcomes) probed.push({ outcome, at: probingAt, until });
    window = undefined;
    for (const o of outcomes) {
      if (o.allowed === o.probe.expectAllow) report.passed++;
      else report.failed++;
    }
    if (measured?.late) report.failed++;
    report.steps.push({ step, outcomes, matrixPods, ...(measured ? { window: measured } : {}) });
  }
}

/**
 * A driver that does not enforce ClusterNetworkPolicies fails the scenario at the step that brings one in
 * (or deletes one), rather than probing a world it does not enforce and passing by accident.
 */
function refuseClusterPolicies(world: World, driver: ScenarioDriver, step: Step): void {
  if (driver.enforcesClusterPolicies) return;
  if (bringsClusterPolicy(step) || world.clusterPolicies.size > 0) throw clusterPolicyRefusal(step);
}

/** An apply with a ClusterNetworkPolicy document, or a delete of one. */
function bringsClusterPolicy(step: Step): boolean {
  if (step.kind === 'delete') return step.resource === 'clusternetworkpolicy';
  return step.kind === 'apply' && /^\s*kind:\s*['"]?ClusterNetworkPolicy['"]?\s*$/m.test(step.text);
}

const clusterPolicyRefusal = (step: Step) =>
  new ScenarioError(
    `${step.where}: ClusterNetworkPolicy is not enforced by the lab yet (run this scenario in model mode)`,
  );

/** The deny probes of a later `expect` step, as far as they parse now (its pods may not exist yet). */
function watchedProbes(world: World, step: Step & { kind: 'expect' }): Probe[] {
  const out: Probe[] = [];
  step.probes.forEach((line, i) => {
    for (const family of familiesOf(step.family)) {
      try {
        const probe = parseProbe(world, line, `${step.where}[${i}]`, family);
        if (!probe.expectAllow) out.push(probe);
      } catch (error) {
        if (!(error instanceof ScenarioError)) throw error;
      }
    }
  });
  return out;
}

/**
 * A matrix as the conformance suite prints it: rows are sources, '.' allowed, 'X' denied, '!' wrong. A
 * cell probed in both families is '!' when either family is wrong (the failure lines name which).
 */
export function formatMatrix(pods: string[], outcomes: ProbeOutcome[]): string {
  const cell = new Map<string, ProbeOutcome[]>();
  for (const o of outcomes) {
    const key = `${endpointText(o.probe.from)} ${endpointText(o.probe.to)}`;
    cell.set(key, [...(cell.get(key) ?? []), o]);
  }
  const width = Math.max(...pods.map((p) => p.length));
  const lines = [`${' '.repeat(width)}  ${pods.map((p) => p.padEnd(width)).join(' ')}`];
  for (const from of pods) {
    const cells = pods.map((to) => {
      const os = cell.get(`${from} ${to}`) ?? [];
      const mark =
        os.length === 0
          ? '-'
          : os.some((o) => o.allowed !== o.probe.expectAllow)
            ? '!'
            : os[0]!.allowed
              ? '.'
              : 'X';
      return mark.padEnd(width);
    });
    lines.push(`${from.padEnd(width)}  ${cells.join(' ')}`);
  }
  lines.push(`('.' allowed as expected, 'X' denied as expected, '!' not as expected, '-' not probed)`);
  return lines.join('\n');
}
