// The shared set-up of the root report and usage tests: a lab of the db-only-from-api example after its
// steps 0-1 (shop/db-from-api: node 1's shop/db accepts 3306 from the shop's api only), and the agent's
// reporter (_reports-child.ts) run in node 1's namespace, its stdout split into drop reports and other
// JSON lines. Not a test.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Lab } from '../../src/lab/index.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { labSpecOf } from '../../src/lab/scenario.ts';
import { type DropReport, REPORT_MESSAGE, reportOfLogLine } from '../../src/nflog/report.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';
import { EXAMPLES } from '../_corpus.ts';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), '_reports-child.ts');

/** The example's world after steps 0-1 and its lab (down at the test's end). */
export async function shopLab(t: Test) {
  const scenario = loadScenario(join(EXAMPLES, 'db-only-from-api.yaml'));
  const world = new World(scenario);
  for (const step of scenario.steps.slice(0, 2)) world.applyStep(step);
  const lab = await Lab.up(labSpecOf(world));
  t.teardown(() => lab.down());
  return { world, lab, objects: world.objects() };
}

export interface ReportsChild {
  readonly child: ChildProcessByStdio<Writable, Readable, null>;
  /** Each drop report with when its line arrived. */
  readonly reports: { report: DropReport; seenMs: number }[];
  /** Every other JSON line the `lines` hook did not take. */
  readonly others: Record<string, unknown>[];
  /** Polls `check` until it holds; throws after `ms` (load-scaled) or when the child has exited. */
  until(what: string, check: () => boolean, ms?: number): Promise<void>;
}

/**
 * Starts _reports-child.ts with `args` in node 1's namespace and waits for its listener. `lines` may take a
 * parsed line (returns true) before it counts as an other; `detail` adds to a timeout's message.
 */
export async function startReportsChild(
  t: Test,
  lab: Lab,
  args: Record<string, unknown>,
  o: { lines?: (line: Record<string, unknown>) => boolean; detail?: () => string; ms?: number } = {},
): Promise<ReportsChild> {
  const child = spawn(
    'ip',
    ['netns', 'exec', lab.nodeNamespace(1), process.execPath, CHILD, JSON.stringify(args)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  t.teardown(async () => {
    child.stdin.end();
    if (child.exitCode === null) await once(child, 'exit');
  });
  const reports: ReportsChild['reports'] = [];
  const others: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const seenMs = Date.now();
    const report = line.includes(REPORT_MESSAGE) ? reportOfLogLine(line) : undefined;
    if (report) {
      reports.push({ report, seenMs });
      return;
    }
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (o.lines?.(parsed) !== true) others.push(parsed);
  });
  const until = async (what: string, check: () => boolean, ms = scaledMs(o.ms ?? 20_000)) => {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`timed out: ${what}${o.detail ? `; ${o.detail()}` : ''}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await until('the listener', () => others.some((line) => line.ready === true), scaledMs(60_000));
  return { child, reports, others, until };
}
