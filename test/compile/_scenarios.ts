// Test helper: the states of a scenario step by step (World objects and the desired table of one node), and
// small pickers over desired states. Pure: no kernel. Names are the team corpus's (../shared/scenarios);
// on a clone without it, each stands for the project's own example of the same shape.
import { join } from 'node:path';
import { type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { elementTexts } from '../../src/compile/verify.ts';
import type { ClusterObjects } from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';
import { EXAMPLES, SHARED_SCENARIOS } from '../_corpus.ts';

/** A corpus scenario's stand-in among examples/ (the same kind of policies and changes). */
const OWN: Record<string, string> = {
  'seed-db-only-from-api': 'db-only-from-api.yaml',
  'seed-default-deny-dns-cassandra': 'default-deny-with-dns.yaml',
  'u19-egress-named-port': 'three-tier.yaml',
  'u34-egress-cidr': 'egress-to-outside.yaml',
  'u20-policy-update': 'default-policies.yaml',
  'u33-delete-policy': 'default-policies.yaml',
};

export function scenarioFile(name: string): string {
  if (SHARED_SCENARIOS)
    return join(SHARED_SCENARIOS, name.startsWith('seed-') ? 'seeds' : 'upstream', `${name}.yaml`);
  const own = OWN[name];
  if (own === undefined) throw new RangeError(`no stand-in in examples/ for corpus scenario ${name}`);
  return join(EXAMPLES, own);
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
    const kept = new Set(elementTexts(n));
    for (const e of elementTexts(s)) if (!kept.has(e)) return { set: s.name, element: e };
  }
  return undefined;
}
