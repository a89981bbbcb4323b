// `tollgate lab run` over many files says which file of how many runs and the time so far (on a terminal):
// runScenarioFiles reports progress before each file, in order, and the report output is unchanged.
import { join, resolve } from 'node:path';
import t from 'tap';
import { runScenarioFiles } from '../../src/cli/scenarios.ts';
import { modelDriver } from '../../src/scenario/model.ts';

const examples = resolve(import.meta.dirname, '../../examples');

t.test('progress names file n of N with the elapsed time, before each file', async (t) => {
  const files = [join(examples, 'three-tier.yaml'), join(examples, 'default-policies.yaml')];
  const progress: string[] = [];
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`err: ${s}`) };
  const status = await runScenarioFiles(files, () => modelDriver, io, {
    matrices: false,
    progress: (l) => progress.push(l),
  });
  t.equal(status, 0);
  t.match(progress, [
    /^\[1\/2\] .*three-tier\.yaml \(\d+ s elapsed\)$/,
    /^\[2\/2\] .*default-policies\.yaml/,
  ]);
  t.equal(progress.length, 2);
  t.notOk(
    out.some((l) => l.startsWith('err:')),
    'progress goes only where it is asked to',
  );
  t.match(out.at(-1), /passed, 0 failed/);
});
