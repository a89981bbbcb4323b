// The ClusterNetworkPolicy conformance scenarios (test/scenarios/cnp, semantics 20-24) in the lab with
// real traffic: each node programmed with its tier chains (compile/tiers.ts), every expectation probed.
// Files that probe SCTP are skipped when the lab says it cannot (E_LAB_UNSUPPORTED); the model runs them.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LabError } from '../../src/lab/errors.ts';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';

const dir = join(import.meta.dirname, '..', 'scenarios', 'cnp');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
let probed = 0;

for (const f of files) {
  t.test(`lab: cnp/${f}`, async (t) => {
    const driver = new LabScenarioDriver();
    let report: Awaited<ReturnType<typeof runScenario>>;
    try {
      report = await runScenario(loadScenario(join(dir, f)), driver);
    } catch (e) {
      if (!(e instanceof LabError && e.code === 'E_LAB_UNSUPPORTED')) throw e;
      t.comment(`not probed: ${e.message}`);
      t.equal(driver.lab, undefined, 'the lab is torn down');
      return;
    }
    probed++;
    t.equal(
      report.failed,
      0,
      report.failed === 0 ? 'every expectation holds' : formatScenarioReport(report, { matrices: true }),
    );
    t.ok(report.passed > 0, `${report.passed} expectations probed`);
    t.equal(driver.lab, undefined, 'the lab is torn down');
  });
}

t.test('most files are probed in the lab', async (t) => {
  t.ok(probed >= 10, `${probed} of ${files.length} files probed (the rest need SCTP)`);
});
