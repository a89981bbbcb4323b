// The established-connection steps in the netns lab (enforcers, no agents): `established: keep` holds
// real connections that a policy change leaves alive (semantics point 16's default), and a cut scenario
// is refused with a clear error (cutting is the agent's: it runs through the API lab,
// test/lab-api/established.test.ts).
import { join } from 'node:path';
import t from 'tap';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { ESTABLISHED_DIR } from '../scenario/_established.ts';
import { skipUnlessRoot } from './helpers.ts';

const dir = ESTABLISHED_DIR;

t.test('lab: established/keep.yaml', { skip: skipUnlessRoot }, async (t) => {
  const driver = new LabScenarioDriver();
  const report = await runScenario(loadScenario(join(dir, 'keep.yaml')), driver);
  t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
  const checks = report.steps.filter((s) => s.step.kind === 'connections').flatMap((s) => s.outcomes);
  t.same(
    checks.map((o) => [o.probe.text, o.allowed]),
    [
      ['c1 (x/b -> x/a:80/TCP)', true],
      ['c2 (x/c -> x/a:80/TCP)', true],
    ],
    'both connections still answer after the policy that denies them',
  );
  t.equal(driver.lab, undefined, 'the lab is torn down');
});

t.test('lab: established: cut needs the API lab', { skip: skipUnlessRoot }, async (t) => {
  const driver = new LabScenarioDriver();
  await t.rejects(runScenario(loadScenario(join(dir, 'cut-ingress.yaml')), driver), {
    code: 'E_USAGE',
    message: /established: cut needs agents and an API server: run it with `tollgate lab run --api`/,
  });
  t.equal(driver.lab, undefined, 'no lab was built');
});
