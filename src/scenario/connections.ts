// The `connect` and `connections` steps (scenario README, "Established connections"): the connections a
// scenario holds open, what the model expects of them (cut iff the header says cut and the current
// policies deny them; point 16), and the outcomes a driver reports, as probe outcomes for the report.
// The lab's side (holding real connections) lives in src/lab/connections.ts; no I/O here.

import { ClusterIndex } from '../policy/index.ts';
import { modelOutcome } from './model.ts';
import { ScenarioError } from './parse.ts';
import { type Probe, type ProbeOutcome, parseProbe, type StepReport } from './probes.ts';
import type { ScenarioConnection, Step } from './types.ts';
import type { World } from './world.ts';

export type ConnectionStep = Step & { kind: 'connect' | 'connections' };

export const isConnectionStep = (s: Step): s is ConnectionStep =>
  s.kind === 'connect' || s.kind === 'connections';

/** A connection the scenario opened: its spec and its probe (IPv4, TCP). */
export interface HeldConnection {
  spec: ScenarioConnection;
  probe: Probe;
}

/** What a driver that holds real connections does for these steps (the model driver has none). */
export interface ConnectionDriver {
  /** Opens each connection from inside its source; ok when one request went through it. */
  connect(world: World, connections: HeldConnection[]): Promise<{ ok: boolean; detail: string }[]>;
  /**
   * Whether each connection still carries traffic. `expectCut`: the step expects it cut, so the driver
   * may wait (up to its limit, from `startedAt`) for it to stop answering.
   */
  alive(
    world: World,
    checks: { connection: HeldConnection; expectCut: boolean }[],
    startedAt: number,
  ): Promise<{ alive: boolean; detail: string }[]>;
}

const held = new WeakMap<World, Map<string, HeldConnection>>();

function book(world: World): Map<string, HeldConnection> {
  let b = held.get(world);
  if (!b) {
    b = new Map();
    held.set(world, b);
  }
  return b;
}

/** Runs one connection step; its outcomes count like probes (`allowed` is connected / alive). */
export async function runConnectionStep(
  world: World,
  driver: Partial<ConnectionDriver>,
  step: ConnectionStep,
): Promise<StepReport> {
  const startedAt = performance.now();
  const connections = book(world);
  const index = new ClusterIndex(world.state());
  const words: [string, string] = step.kind === 'connect' ? ['connected', 'not connected'] : ['alive', 'cut'];
  let outcomes: ProbeOutcome[];
  if (step.kind === 'connect') {
    const opened = step.connections.map((spec, i) => {
      const where = `${step.where}[${i}]`;
      if (connections.has(spec.name))
        throw new ScenarioError(`${where}: connection ${spec.name} is already open`);
      const probe = { ...parseProbe(world, `${spec.from} -> ${spec.to}:${spec.port} allow`, where), words };
      return { spec, probe };
    });
    const model = opened.map((c) => modelOutcome(world, index, c.probe));
    const real = driver.connect ? await driver.connect(world, opened) : undefined;
    outcomes = opened.map((c, i) => {
      connections.set(c.spec.name, c);
      const m = model[i]!;
      if (!real)
        return { ...m, probe: c.probe, explanation: `a connection must be allowed\n${m.explanation}` };
      return {
        probe: c.probe,
        allowed: real[i]!.ok,
        explanation: `lab: ${real[i]!.detail}\nmodel: ${m.explanation}`,
      };
    });
  } else {
    const checks = step.checks.map((c, i) => {
      const connection = connections.get(c.name);
      if (!connection)
        throw new ScenarioError(
          `${step.where}[${i}]: no connection ${c.name} (open it with a connect step first)`,
        );
      const probe: Probe = {
        ...connection.probe,
        text: `${c.name} (${connection.probe.text})`,
        expectAllow: c.expect === 'alive',
        where: `${step.where}[${i}]`,
        words,
      };
      return { connection, probe, expectCut: c.expect === 'cut' };
    });
    const cut = world.scenario.established === 'cut';
    const model = checks.map((c) => {
      const verdict = modelOutcome(world, index, c.connection.probe);
      const alive = !(cut && !verdict.allowed);
      const why = cut
        ? `established: cut, and the current policies ${verdict.allowed ? 'allow' : 'deny'} it`
        : 'established: keep, so it stays whatever the policies say';
      return { alive, explanation: `model: ${alive ? 'alive' : 'cut'} (${why})\n${verdict.explanation}` };
    });
    const real = driver.alive ? await driver.alive(world, checks, startedAt) : undefined;
    outcomes = checks.map((c, i) => ({
      probe: c.probe,
      allowed: real ? real[i]!.alive : model[i]!.alive,
      explanation: real ? `lab: ${real[i]!.detail}\n${model[i]!.explanation}` : model[i]!.explanation,
    }));
  }
  return { step, outcomes, matrixPods: undefined };
}
