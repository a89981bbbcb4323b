// The objects of a scenario file for the commands that read a cluster (explain, lint): a module of its own
// so that they load the scenario model only for --scenario (the agent image leaves src/scenario out).
import type { ClusterObjects } from '../policy/normalize.ts';
import { loadScenario } from '../scenario/parse.ts';
import { World } from '../scenario/world.ts';
import { UsageError } from '../util/errors.ts';

/** A scenario's objects after steps 0..step (default: all of them). */
export function scenarioObjects(file: string, step: string | undefined): ClusterObjects {
  const scenario = loadScenario(file);
  const last = step === undefined ? scenario.steps.length - 1 : Number(step);
  if (!Number.isInteger(last) || last < -1 || last >= scenario.steps.length)
    throw new UsageError(`--step must be 0..${scenario.steps.length - 1}`);
  const world = new World(scenario);
  for (const s of scenario.steps.slice(0, last + 1)) world.applyStep(s);
  return world.objects();
}
