// Every scenario under ../shared/scenarios, run in the lab with real traffic: the cluster in network
// namespaces, each node programmed through compile + netlink, every expectation probed with curl or the
// UDP client. Prints the report (with matrices) of a failing scenario.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';

const scenarioDir = resolve(import.meta.dirname, '../../../shared/scenarios');
const files = readdirSync(scenarioDir, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

t.ok(files.length >= 28, `${files.length} scenarios`);

for (const f of files) {
  t.test(`lab: ${f}`, async (t) => {
    const syncs: string[] = [];
    const driver = new LabScenarioDriver({ onSync: (node, r) => syncs.push(`${node}:${r.kind}`) });
    const report = await runScenario(loadScenario(join(scenarioDir, f)), driver);
    t.equal(
      report.failed,
      0,
      report.failed === 0 ? 'every expectation holds' : formatScenarioReport(report, { matrices: true }),
    );
    t.ok(report.passed > 0, `${report.passed} expectations probed`);
    const nodes = new Set(syncs.map((s) => s.split(':')[0]));
    t.equal(
      syncs.filter((s) => s.endsWith(':full')).length,
      nodes.size,
      'only the first sync of each node replaces the table',
    );
    t.equal(driver.lab, undefined, 'the lab is torn down');
  });
}
