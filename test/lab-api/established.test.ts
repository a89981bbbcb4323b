// The established-connection scenarios (test/scenarios/established, semantics point 16) through the API
// lab: one `tollgate agent` per node (with --established=cut when the file says cut), real long-lived TCP
// connections held from the source pods' namespaces. A connection the new policies deny is cut within
// 5 s (load-scaled) and logged by the agent that cut it; one still allowed answers; keep cuts nothing.
// The wrong-on-purpose files fail exactly where they are wrong.
import { join } from 'node:path';
import t from 'tap';
import { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { ESTABLISHED_DIR, establishedFiles } from '../scenario/_established.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

t.setTimeout(15 * 60_000);
const dir = ESTABLISHED_DIR;

const CUT_LINE = 'connection cut: the policies no longer allow it';

async function run(file: string) {
  const driver = new ApiScenarioDriver();
  const scenario = loadScenario(file);
  const report = await runScenario(scenario, driver);
  const cuts = driver.agents.flatMap((a) =>
    a.lines
      .filter((l) => l.includes(CUT_LINE))
      .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { pod: string; direction: string; port: number }),
  );
  const cutMs = report.steps
    .flatMap((s) => s.outcomes)
    .map((o) => /the request sent (\d+) ms into the step got none/.exec(o.explanation ?? '')?.[1])
    .filter((x): x is string => x !== undefined)
    .map(Number);
  return { driver, scenario, report, cuts, cutMs };
}

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  for (const file of establishedFiles()) {
    t.test(`api: established/${file.slice(dir.length + 1)}`, async (t) => {
      const { driver, scenario, report, cuts, cutMs } = await run(file);
      t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
      t.equal(driver.lab, undefined, 'the lab is torn down');
      const expectedCuts = scenario.steps
        .filter((s) => s.kind === 'connections')
        .flatMap((s) => (s.kind === 'connections' ? s.checks : []))
        .filter((c) => c.expect === 'cut').length;
      t.equal(cuts.length, expectedCuts, `the agents logged ${cuts.length} cuts: ${JSON.stringify(cuts)}`);
      t.comment(`tables converged after each change in ${driver.convergence.map((c) => c.ms).join(', ')} ms`);
      if (cutMs.length > 0)
        t.comment(`cut already when the client asked, ${cutMs.join(', ')} ms into the connections step`);
    });
  }
  for (const [name, text] of [
    [
      'keep-expects-cut.yaml',
      /c1 \(x\/b -> x\/a:80\/TCP\): expected cut, got alive\n\s+lab: still answering after/,
    ],
    [
      'cut-expects-alive.yaml',
      /c1 \(x\/b -> x\/a:80\/TCP\): expected alive, got cut\n\s+lab: no longer answers/,
    ],
  ] as const) {
    t.test(`api: established/wrong/${name} fails where it is wrong`, async (t) => {
      const { report } = await run(join(dir, 'wrong', name));
      t.equal(report.failed, 1, formatScenarioReport(report, { matrices: false }));
      t.match(formatScenarioReport(report, { matrices: false }), text);
    });
  }
}
