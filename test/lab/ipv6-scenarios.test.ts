// The project's IPv6 scenario fixtures (test/scenario/fixtures/ipv6) in the netns lab: the real kernel,
// each node's table programmed through compile + netlink, every probe real traffic over the family the
// step names (semantics points 6, 12, 18). The deliberately wrong ones fail in the lab exactly where
// they fail in the model: on the one family that is wrong, so `family: both` checks both for real.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { modelDriver } from '../../src/scenario/model.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { skipUnlessRoot } from './helpers.ts';

const fixtures = resolve(import.meta.dirname, '../scenario/fixtures/ipv6');
const yamls = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));

/** Each probe's text and verdict, as a run reports them. */
const verdicts = (report: Awaited<ReturnType<typeof runScenario>>) =>
  report.steps.flatMap((s) => s.outcomes.map((o) => `${o.probe.text} ${o.allowed ? 'allow' : 'deny'}`));

for (const file of yamls(fixtures)) {
  t.test(`lab: ipv6/${file.slice(fixtures.length + 1)}`, { skip: skipUnlessRoot }, async (t) => {
    const driver = new LabScenarioDriver();
    const report = await runScenario(loadScenario(file), driver);
    t.equal(report.failed, 0, formatScenarioReport(report, { matrices: true }));
    const v6 = report.steps.flatMap((s) => s.outcomes).filter((o) => o.probe.family === 6);
    t.ok(v6.length >= 5, `${report.passed} probes, ${v6.length} of them over IPv6`);
    t.equal(driver.lab, undefined, 'the lab is torn down');
  });
}

for (const [name, wrongText] of [
  ['both-ipv4-only-block.yaml', /host\/backup -> x\/b:80\/TCP over IPv6: expected allow, got deny/],
  ['both-ipv6-only-matrix.yaml', /x\/b -> x\/a:80\/TCP: expected allow, got deny/],
] as const) {
  t.test(
    `lab: a wrong family fails as in the model (ipv6/wrong/${name})`,
    { skip: skipUnlessRoot },
    async (t) => {
      const scenario = loadScenario(join(fixtures, 'wrong', name));
      const model = await runScenario(scenario, modelDriver);
      const lab = await runScenario(scenario, new LabScenarioDriver());
      t.equal(lab.failed, 1, 'exactly one probe fails');
      t.same(verdicts(lab), verdicts(model), 'every verdict of the lab equals the model');
      t.match(formatScenarioReport(lab, { matrices: false }), wrongText);
    },
  );
}
