// Per-policy counts (issue 18) through the API lab: real `tollgate agent` processes (policy usage on by
// default, a short interval), the db-only-from-api scenario's policy and probes, and the agents' own
// `policy usage` log lines summed as `tollgate explain --policy` sums them. The allowed probe to the
// database counts for shop/db-from-api (ingress, node 1), each denied one too; the probes no policy
// decides (the node's own, not isolated pods) count for nothing.
import { join } from 'node:path';
import t from 'tap';
import { UsageSummer } from '../../src/cli/policy-usage.ts';
import { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { EXAMPLES } from '../_corpus.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

t.setTimeout(10 * 60_000);

const POLICY = 'shop/db-from-api';

function sum(driver: ApiScenarioDriver, policy = POLICY) {
  const summer = new UsageSummer(policy);
  for (const a of driver.agents) for (const line of a.lines) summer.add(a.nodeName, line);
  return summer.sum();
}

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  t.test('api: the agents count allowed and denied connections per policy', async (t) => {
    const scenario = loadScenario(join(EXAMPLES, 'db-only-from-api.yaml'));
    // The policy, then its first expect (1 allowed and 3 denied connections to shop/db, on node 1).
    // Without the expect before the policy: a connection made then and first seen by a pass after the
    // policy came would count for it (the verdict is the one at the pass; see src/agent/usage.ts).
    scenario.steps = scenario.steps.slice(1, 3);
    const driver = new ApiScenarioDriver({ agentArgs: ['--policy-usage-interval-ms', '300'] });
    // The counts come with the passes after the probes: wait for them before the lab goes.
    const stop = driver.stop.bind(driver);
    let waited: string | undefined;
    driver.stop = async () => {
      const deadline = Date.now() + scaledMs(30_000);
      for (;;) {
        const s = sum(driver).byDirection.ingress;
        if (s.allowed >= 1 && s.denied >= 3) break;
        if (Date.now() > deadline) {
          waited = `timed out: ${JSON.stringify(s)}`;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await stop();
    };
    const report = await runScenario(scenario, driver);
    t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
    t.equal(waited, undefined, 'the counts came');
    const s = sum(driver);
    t.same(s.counting, [driver.agents.find((a) => a.nodeIndex === 1)?.nodeName], "node 1's agent counts it");
    t.equal(s.byDirection.ingress.allowed, 1, 'shop/api -> shop/db:3306, once');
    // A denied probe whose SYN is sent again within its timeout is denied (and reported) twice.
    t.ok(s.byDirection.ingress.denied >= 3, `the 3 denied probes (${s.byDirection.ingress.denied})`);
    t.same(s.byDirection.egress, { allowed: 0, denied: 0, wouldDeny: 0 }, 'it isolates ingress only');
    t.equal(driver.lab, undefined, 'the lab is torn down');
  });
}
