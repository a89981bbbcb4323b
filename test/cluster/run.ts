// By hand: runs scenario files (or directories of them) on a fresh real cluster and prints the report as
// `tollgate lab run` does, with the skipped probes and their reasons:
//   npx node test/cluster/run.ts [--matrices] [--proxy-mode iptables|nftables] FILE|DIR...
// Exit status 0: every probe held; 1: some did not; 2: bad arguments. The cluster is removed at the end,
// also on Ctrl-C.
import { expandScenarioPaths } from '../../src/cli/scenarios.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { UsageError } from '../../src/util/errors.ts';
import { type Cluster, type ClusterOptions, startCluster } from './_cluster.ts';
import { ClusterScenarioDriver, formatClusterResult, runOnCluster } from './scenario-driver.ts';

function parseArgs(argv: string[]): { files: string[]; matrices: boolean; options: ClusterOptions } {
  const files: string[] = [];
  let matrices = false;
  const options: ClusterOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--matrices') matrices = true;
    else if (a === '--proxy-mode') {
      const mode = argv[++i];
      if (mode !== 'iptables' && mode !== 'nftables')
        throw new UsageError(`--proxy-mode: '${mode ?? ''}' is not iptables or nftables`);
      options.proxyMode = mode;
    } else if (a.startsWith('-')) throw new UsageError(`unknown flag ${a}`);
    else files.push(a);
  }
  if (files.length === 0)
    throw new UsageError('usage: npx node test/cluster/run.ts [--matrices] [--proxy-mode M] FILE|DIR...');
  return { files: expandScenarioPaths(files), matrices, options };
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  const scenarios = args.files.map((f) => ({ file: f, scenario: loadScenario(f) }));
  const started = performance.now();
  const progress = (line: string) =>
    process.stderr.write(`[${Math.round((performance.now() - started) / 1000)} s] ${line}\n`);
  progress('starting the cluster');
  const cluster: Cluster = await startCluster(args.options);
  const driver = new ClusterScenarioDriver(cluster, { log: progress });
  const stopOnSignal = () => {
    progress('interrupted: removing the cluster');
    void driver.close().finally(() => cluster.stop().finally(() => process.exit(130)));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let skippedScenarios = 0;
  try {
    progress(`cluster up: ${cluster.nodes.map((n) => `${n.name} ${n.ip4}`).join(', ')}`);
    for (const [i, { file, scenario }] of scenarios.entries()) {
      progress(`[${i + 1}/${scenarios.length}] ${file}`);
      let r: Awaited<ReturnType<typeof runOnCluster>>;
      try {
        r = await runOnCluster(driver, file, scenario);
      } catch (error) {
        // The scenario could not run (a pod never Ready, kubectl refused): counted as one failure; the next
        // scenario's start reconciles the cluster again.
        process.stdout.write(`FAIL ${file}: ${(error as Error).message}\n`);
        failed++;
        continue;
      }
      process.stdout.write(`${formatClusterResult(r, { matrices: args.matrices })}\n`);
      passed += r.passed;
      failed += r.failed;
      skipped += r.skipped;
      if (r.skippedScenario) skippedScenarios++;
    }
  } finally {
    await driver.close().finally(() => cluster.stop());
  }
  process.stdout.write(
    `${passed} passed, ${failed} failed, ${skipped} skipped, ${skippedScenarios} scenarios skipped\n`,
  );
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
