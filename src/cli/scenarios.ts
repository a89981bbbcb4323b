// Scenario files on the command line: expands arguments (directories to their .yaml/.yml files, sorted)
// and runs them through a driver with the shared report and closing `N passed, N failed` line.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadScenario } from '../scenario/parse.ts';
import { runScenario, type ScenarioDriver } from '../scenario/probes.ts';
import { formatScenarioReport, formatTotals } from '../scenario/report.ts';
import { UsageError } from '../util/errors.ts';
import type { CommandIO } from './command.ts';

/** Commands that run scenario files: a UsageError when none is given. */
export function requireScenarios(positionals: string[], usage: string): void {
  if (positionals.length === 0) throw new UsageError(`no scenario given\n\n${usage}`);
}

export function expandScenarioPaths(args: string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    let isDir: boolean;
    try {
      isDir = statSync(arg).isDirectory();
    } catch {
      throw new UsageError(`${arg}: no such file or directory`);
    }
    if (!isDir) {
      out.push(arg);
      continue;
    }
    const found = readdirSync(arg, { recursive: true })
      .map(String)
      .filter((f) => /\.ya?ml$/.test(f) && !f.split('/').some((part) => part.startsWith('.')))
      .filter((f) => !/(^|\/)README/i.test(f))
      .sort()
      .map((f) => join(arg, f));
    out.push(...found);
  }
  return out;
}

/**
 * Runs every scenario (a new driver each), prints each report and the totals; returns the exit status.
 * `notProbed`: for an error of a file the driver cannot run at all (the lab: SCTP probes), why; that file
 * is reported as not probed and the others still run. Exit status 1 when none was probed.
 */
export async function runScenarioFiles(
  args: string[],
  makeDriver: () => ScenarioDriver,
  io: CommandIO,
  options: {
    matrices: boolean;
    progress?: (line: string) => void;
    notProbed?: (error: unknown) => string | undefined;
  },
): Promise<number> {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const files = expandScenarioPaths(args);
  const started = performance.now();
  for (const [i, file] of files.entries()) {
    const elapsed = Math.round((performance.now() - started) / 1000);
    options.progress?.(`[${i + 1}/${files.length}] ${file} (${elapsed} s elapsed)`);
    const scenario = loadScenario(file);
    let report: Awaited<ReturnType<typeof runScenario>>;
    try {
      report = await runScenario(scenario, makeDriver());
    } catch (error) {
      const why = options.notProbed?.(error);
      if (why === undefined) throw error;
      io.out(`skip ${scenario.name}: not probed: ${why}`);
      skipped++;
      continue;
    }
    io.out(formatScenarioReport(report, options));
    passed += report.passed;
    failed += report.failed;
  }
  io.out(
    formatTotals(passed, failed) + (skipped > 0 ? `, ${skipped} of ${files.length} files not probed` : ''),
  );
  return failed === 0 && skipped < files.length ? 0 : 1;
}
