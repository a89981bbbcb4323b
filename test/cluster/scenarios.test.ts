// Every seed and upstream scenario (and examples/, and test/scenarios/drops/) on one real cluster started
// for this file: kubelet, containerd, kube-proxy, Flannel, tollgate installed with `kubectl apply -f
// daemonset/` (_cluster.ts). Prints per-scenario passed/failed/skipped counts (what the real cluster cannot
// offer is skipped, with the reason, never passed) and the totals; then the real `tollgate drops` CLI on the
// same cluster (filters, report latency), and `tollgate explain --policy`'s usage counts (issue 18).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadScenario } from '../../src/scenario/parse.ts';
import { SHARED_SCENARIOS, scenarioCorpus } from '../_corpus.ts';
import { type LabCluster, startCluster } from './_cluster.ts';
import { dropsCliTests } from './drops-cli.ts';
import { policyUsageCliTests } from './policy-usage-cli.ts';
import {
  ClusterScenarioDriver,
  type ClusterScenarioResult,
  countsLine,
  formatClusterResult,
  runOnCluster,
} from './scenario-driver.ts';

// Starting the cluster is minutes when warm (more when its components are built cold), then ~20-40 s a
// scenario; a loaded machine can double both.
t.setTimeout(90 * 60_000);

// TOLLGATE_CLUSTER_SCENARIOS=<regexp> keeps the files whose label matches (a developer's narrowing; CI runs all).
const only = process.env.TOLLGATE_CLUSTER_SCENARIOS;
// The drops scenarios (semantics 25, 26) read the agents' reports through `tollgate drops` (drops-follower.ts).
const DROPS = join(import.meta.dirname, '../scenarios/drops');
const dropFiles = readdirSync(DROPS)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => ({ label: `drops/${f}`, path: join(DROPS, f) }));
const files = [...scenarioCorpus(), ...dropFiles].filter(
  ({ label }) => !only || new RegExp(only).test(label),
);
const results: ClusterScenarioResult[] = [];
/** The CLI tests after the scenarios (a narrowing may keep only them). */
const cliTests = ['drops-cli', 'policy-usage-cli'].filter((label) => !only || new RegExp(only).test(label));

if (process.getuid?.() !== 0) t.plan(0, 'needs root (network namespaces, container runtime)');
else {
  t.ok(
    only ? files.length + cliTests.length > 0 : files.length >= (SHARED_SCENARIOS ? 28 : 5),
    `${files.length} scenarios`,
  );
  let cluster: LabCluster | undefined;
  let driver: ClusterScenarioDriver | undefined;
  const started = performance.now();
  t.before(async () => {
    cluster = await startCluster();
    driver = new ClusterScenarioDriver(cluster, { log: (line) => t.comment(line) });
    t.comment(
      `cluster up in ${Math.round(performance.now() - started)} ms: ${cluster.nodes.map((n) => `${n.name} ${n.ip4}`).join(', ')}`,
    );
  });
  t.teardown(async () => {
    try {
      await driver?.close();
    } finally {
      await cluster?.stop();
    }
  });
  for (const { label, path } of files) {
    t.test(`cluster: ${label}`, async (t) => {
      const begun = performance.now();
      let r: ClusterScenarioResult;
      try {
        r = await runOnCluster(driver!, label, loadScenario(path));
      } catch (error) {
        // Could not run (a pod never Ready, kubectl refused): one failure in the counts; the next
        // scenario's start reconciles the cluster again.
        const ms = Math.round(performance.now() - begun);
        results.push({
          label,
          report: undefined,
          passed: 0,
          failed: 1,
          skipped: 0,
          skips: [],
          skippedScenario: undefined,
          ms,
        });
        t.fail(`${label}: ${(error as Error).message}`);
        return;
      }
      results.push(r);
      t.comment(`${label}: ${countsLine(r)}`);
      if (r.skippedScenario) {
        t.pass(label, { skip: r.skippedScenario });
        return;
      }
      t.equal(
        r.failed,
        0,
        r.failed === 0 ? 'every expectation holds' : formatClusterResult(r, { matrices: true }),
      );
      if (r.skipped > 0) t.comment(formatClusterResult(r, { matrices: false }));
      t.ok(r.passed > 0, `${r.passed} expectations probed on the real cluster`);
      const late = driver!.convergence.filter((c) => !c.converged);
      t.same(
        late.map((c) => `${c.what}: ${c.pending.join('; ')}`),
        [],
        "every agent caught up after each change (a sync since, programmed pods = the node's live pods)",
      );
    });
  }
  if (cliTests.includes('drops-cli')) dropsCliTests(() => ({ cluster: cluster!, driver: driver! }));
  if (cliTests.includes('policy-usage-cli'))
    policyUsageCliTests(() => ({ cluster: cluster!, driver: driver! }));
  // Last, in the TAP stream: the table the integrator copies into the resolution note.
  t.test('real-cluster scenario counts', async (t) => {
    const sum = (k: 'passed' | 'failed' | 'skipped') => results.reduce((a, r) => a + r[k], 0);
    for (const r of results)
      t.comment(`${r.label}: ${countsLine(r)}${r.skippedScenario ? `: ${r.skippedScenario}` : ''}`);
    const skippedScenarios = results.filter((r) => r.skippedScenario).length;
    t.comment(
      `total: ${results.length} scenarios, ${sum('passed')} passed, ${sum('failed')} failed, ${sum('skipped')} probes skipped, ${skippedScenarios} scenarios skipped`,
    );
    t.equal(results.length, files.length, 'every scenario ran (or was skipped with its reason)');
  });
}
