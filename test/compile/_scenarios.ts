// Test helper: the states of a shared scenario step by step (World objects and the desired table of one
// node), and small pickers over desired states. Pure: no kernel.
import { join } from 'node:path';
import { type DesiredState, desiredState } from '../../src/compile/desired.ts';
import type { ClusterObjects } from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';

export const SCENARIOS = '/work/shared/scenarios';

export function scenarioFile(name: string): string {
  return join(SCENARIOS, name.startsWith('seed-') ? 'seeds' : 'upstream', `${name}.yaml`);
}

export interface StepState {
  /** 0-based step index (as `tollgate compile --step`). */
  step: number;
  kind: string;
  objects: ClusterObjects;
  state: ClusterState;
  desired: DesiredState;
}

/** The state after every step of a scenario, for node `node` (1-based). */
export function scenarioStates(name: string, node = 1): { nodeName: string; steps: StepState[] } {
  const scenario = loadScenario(scenarioFile(name));
  const world = new World(scenario);
  const nodeName = world.node(node).name;
  const steps: StepState[] = [];
  scenario.steps.forEach((s, step) => {
    world.applyStep(s);
    const objects = structuredClone(world.objects()) as ClusterObjects;
    const state = world.state();
    steps.push({
      step,
      kind: s.kind,
      objects,
      state,
      desired: desiredState(new Planner(state).planNode(nodeName)),
    });
  });
  return { nodeName, steps };
}

/** Only the steps that change the cluster (expect and matrix steps change nothing). */
export function changingSteps(steps: StepState[]): StepState[] {
  return steps.filter((s) => s.kind !== 'expect' && s.kind !== 'matrix');
}

/** A non-base chain (a pod's direction chain) of a desired state, if any. */
export function podChain(d: DesiredState): string | undefined {
  return [...d.chains.values()].find((c) => !c.base)?.name;
}

/** The first element `next` no longer has that `prev` had (what a diff deletes), if any. */
export function removedElement(
  prev: DesiredState,
  next: DesiredState,
): { set: string; element: string } | undefined {
  for (const s of prev.sets.values()) {
    const n = next.sets.get(s.name);
    if (!n) continue;
    for (const e of s.elements) if (!n.elements.has(e)) return { set: s.name, element: e };
  }
  return undefined;
}
