// Our drops scenarios (test/scenarios/drops) through the API lab: real agents, real traffic, and each
// `drops` line matched against the reports the agents log (src/lab/drops.ts). The kernel's report rules
// come with the agent's --drop-reports (issue 18, rep18); an agent without them makes no reports, so then
// the scenarios run with their drops steps left out: the probes still prove in the real dataplane that an
// audit-mode policy enforces nothing and that removing the annotation enforces it (semantics 25).
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { agentHasFlag } from '../../src/lab/agent-process.ts';
import { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

t.setTimeout(10 * 60_000);
const dir = resolve(import.meta.dirname, '../scenarios/drops');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const reporting = agentHasFlag('--drop-reports');

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  if (!reporting) t.comment('the agent has no --drop-reports: drops steps left out (probes only)');
  for (const f of files) {
    t.test(`api: drops/${f}`, async (t) => {
      const scenario = loadScenario(join(dir, f));
      if (!reporting) scenario.steps = scenario.steps.filter((s) => s.kind !== 'drops');
      const driver = new ApiScenarioDriver();
      const report = await runScenario(scenario, driver);
      t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
      const drops = report.steps.flatMap((s) => s.drops ?? []);
      if (reporting) t.ok(drops.length > 0, `${drops.length} drops lines matched the agents' reports`);
      t.equal(driver.lab, undefined, 'the lab is torn down');
    });
  }
}
