// Test helper: the scenarios that have golden tables (test/golden), and what the `tollgate compile` path
// makes of them. Pure: reads scenario files only.
import { basename, join } from 'node:path';
import { reportOptions } from '../../src/agent/options.ts';
import { compileCommand } from '../../src/cli/compile.ts';
import { desiredState } from '../../src/compile/desired.ts';
import { Planner } from '../../src/policy/plan.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';
import { EXAMPLES, REPO, SHARED_SCENARIOS, yamlBelow } from '../_corpus.ts';

export const GOLDEN = join(REPO, 'test/golden');
/** The scenarios with goldens: examples/ (top level) always, the seeds when the corpus is there. */
export function goldenScenarios(): { group: string; name: string; file: string; nodes: number }[] {
  const examples = yamlBelow(EXAMPLES)
    .filter((f) => !f.includes('/'))
    .map((f) => ({ group: 'examples', file: join(EXAMPLES, f) }));
  const seeds = SHARED_SCENARIOS
    ? yamlBelow(join(SHARED_SCENARIOS, 'seeds')).map((f) => ({
        group: 'seeds',
        file: join(SHARED_SCENARIOS!, 'seeds', f),
      }))
    : [];
  return [...examples, ...seeds].map((s) => ({
    ...s,
    name: basename(s.file, '.yaml'),
    nodes: loadScenario(s.file).nodes,
  }));
}

/** What `tollgate compile FILE --node N` prints. */
export async function compiled(file: string, node: number): Promise<string> {
  let out = '';
  const io = { out: (s: string) => (out += s.endsWith('\n') ? s : `${s}\n`), err: () => {} };
  const code = await compileCommand.run([file, '--node', String(node)], io);
  if (code !== 0) throw new RangeError(`tollgate compile ${file} --node ${node}: exit ${code}`);
  return out;
}

/** Node `node`'s desired table after every step, as the compile command computes it. */
export function desiredOf(file: string, node: number) {
  const scenario = loadScenario(file);
  const world = new World(scenario);
  for (const step of scenario.steps) world.applyStep(step);
  // The compile command's defaults: drop reports on (agent/options.ts).
  const reports = reportOptions({});
  return desiredState(
    new Planner(world.state()).planNode(world.node(node).name),
    undefined,
    reports ? { reports } : {},
  );
}
