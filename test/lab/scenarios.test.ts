// Every scenario under examples/ (and ../shared/scenarios when present), run in the lab with real traffic: the cluster in network
// namespaces, each node programmed through compile + netlink, every expectation probed with curl or the
// UDP client. Prints the report (with matrices) of a failing scenario.
import t from 'tap';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';

import { SHARED_SCENARIOS, scenarioCorpus } from '../_corpus.ts';

const files = scenarioCorpus();
t.ok(files.length >= (SHARED_SCENARIOS ? 28 : 5), `${files.length} scenarios`);
if (!SHARED_SCENARIOS) t.comment('no ../shared/scenarios beside the clone: examples/ only');

for (const { label, path } of files) {
  t.test(`lab: ${label}`, async (t) => {
    const syncs: string[] = [];
    const driver = new LabScenarioDriver({ onSync: (node, r) => syncs.push(`${node}:${r.kind}`) });
    const report = await runScenario(loadScenario(path), driver);
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
