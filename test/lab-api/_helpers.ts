// Shared set-up of the API-path tests: root and the real kube-apiserver/etcd are required (missing binaries
// FAIL with how to build them, they never skip), and every scenario file (examples/, ../shared/scenarios).
import type { Test } from 'tap';
import { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { LabError } from '../../src/lab/errors.ts';
import { k8sBinaries } from '../../src/lab/k8s-binaries.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { SHARED_SCENARIOS, scenarioCorpus } from '../_corpus.ts';

export const isRoot = process.getuid?.() === 0;
export const skipUnlessRoot = isRoot ? false : 'needs root (network namespaces)';

/** Every scenario file: examples/ and the team's corpus when it is beside the clone (see test/_corpus.ts). */
export function scenarioFiles(): { label: string; path: string }[] {
  return scenarioCorpus();
}

/** Fails the test (not a skip) when kube-apiserver/etcd cannot be found or built; true when they are there. */
export async function requireBinaries(t: Test): Promise<boolean> {
  try {
    const b = await k8sBinaries();
    t.pass(`kube-apiserver ${b.kubeApiserver}, etcd ${b.etcd}`);
    return true;
  } catch (error) {
    t.fail(`the API-path tests need real binaries: ${(error as Error).message}`);
    return false;
  }
}

export interface ScenarioTestOptions {
  /** How many files at least (default: 9 with the team's corpus, else 1). */
  minFiles?: number;
  /**
   * Probes the lab cannot send (SCTP) are skipped and counted, never passed (ApiDriverOptions
   * skipUnprobeable); a file with no other probe is reported as not probed (E_LAB_UNSUPPORTED, refused
   * before its lab is built). `probed` is then called with how many files were.
   */
  unsupported?: { probed: (t: Test, count: number, of: number) => void };
}

/** One subtest per scenario file, each through a fresh lab + API server + agents. */
export function scenarioTests(
  t: Test,
  files: { label: string; path: string }[],
  options: ScenarioTestOptions = {},
): void {
  t.ok(
    files.length >= (options.minFiles ?? (SHARED_SCENARIOS ? 9 : 1)),
    `${files.length} scenarios in this part`,
  );
  const times: string[] = [];
  let probed = 0;
  for (const { label: f, path } of files) {
    t.test(`api: ${f}`, async (t) => {
      const started = performance.now();
      const driver = new ApiScenarioDriver(options.unsupported ? { skipUnprobeable: true } : {});
      let report: Awaited<ReturnType<typeof runScenario>>;
      try {
        report = await runScenario(loadScenario(path), driver);
      } catch (e) {
        if (!(options.unsupported && e instanceof LabError && e.code === 'E_LAB_UNSUPPORTED')) throw e;
        t.comment(`not probed: ${e.message}`);
        t.equal(driver.lab, undefined, 'the lab is torn down');
        times.push(`${f}: not probed (refused in ${Math.round(performance.now() - started)} ms)`);
        return;
      }
      probed++;
      const ms = Math.round(performance.now() - started);
      // The runner counts a skipped probe's (wrong on purpose) outcome as failed.
      const skipped = report.steps.flatMap((s) => s.outcomes).filter((o) => driver.isSkipped(o)).length;
      const failed = report.failed - skipped;
      t.equal(
        failed,
        0,
        failed === 0 ? 'every expectation holds' : formatScenarioReport(report, { matrices: true }),
      );
      t.equal(skipped, driver.skips.length, `${skipped} probes skipped (the lab cannot send them)`);
      t.ok(report.passed > 0, `${report.passed} expectations probed`);
      const late = driver.convergence.filter((c) => !c.converged);
      t.same(
        late.map((c) => `${c.what}: ${c.pending.join('; ')}`),
        [],
        'every node table converged to the model within 10 s of each change',
      );
      t.equal(driver.lab, undefined, 'the lab is torn down');
      const steps = driver.convergence.map((c) => c.ms);
      times.push(
        `${f}: ${report.passed} passed, ${failed} failed, ${skipped} skipped, ${ms} ms (api ready ${driver.timings.apiReady} ms, agents ready ${driver.timings.agentsReady} ms, convergence max ${Math.max(...steps)} ms)`,
      );
      t.comment(times.at(-1)!);
    });
  }
  const unsupported = options.unsupported;
  if (unsupported) t.test('probed files', async (t) => unsupported.probed(t, probed, files.length));
  t.teardown(() => {
    if (times.length > 0) console.error(`# API path times\n${times.map((l) => `#   ${l}`).join('\n')}`);
  });
}
