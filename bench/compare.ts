// `npm run bench:compare -- BASE [NAME...]`: this checkout's benchmarks against commit BASE, interleaved in
// one run (base/head alternately, BENCH_COMPARE_RUNS times each, default 3), as medians and head/base
// ratios oriented so that ≥ 1 means head is not slower. BASE is checked out in a throwaway worktree under
// the temporary directory, removed at the end (also on failure or SIGINT); this checkout is never touched.
// Not a benchmark itself (bench/run.ts skips it) and not a test.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TollgateError, UsageError } from '../src/util/errors.ts';

export type Better = 'lower' | 'higher';

/** One headline figure of one benchmark run. */
export interface Figure {
  readonly name: string;
  readonly better: Better;
  readonly value: number;
}

type Json = Readonly<Record<string, unknown>>;
type Headline = (json: Json) => Figure[];

/** The number at a dotted path (`pod_add.cpu_ms_p50`), if there is one. */
export function numberAt(json: unknown, path: string): number | undefined {
  let at: unknown = json;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Json)[part];
  }
  return typeof at === 'number' && Number.isFinite(at) ? at : undefined;
}

/** Figures at fixed paths, all better in one direction; a path the JSON lacks gives no figure. */
function paths(better: Better, ...names: string[]): Headline {
  return (json) =>
    names.flatMap((name) => {
      const value = numberAt(json, name);
      return value === undefined ? [] : [{ name, better, value }];
    });
}

const both =
  (...parts: Headline[]): Headline =>
  (json) =>
    parts.flatMap((p) => p(json));

/**
 * Each benchmark's headline figures. Wall-clock and CPU times and memory: lower is better; the dataplane's
 * ratios (enforced / unenforced connections per CPU second, per shape and policy count): higher is better.
 */
export const HEADLINES: Readonly<Record<string, Headline>> = {
  policy: paths('lower', 'normalize_ms', 'plan_ms', 'eval_us_per_flow', 'rss_mb'),
  agent: paths(
    'lower',
    'full_sync_ms',
    'agent_cpu_ms_to_sync',
    // The agent's own main-thread work from 'starting' to the first sync: the machine's load barely moves it.
    'full_sync_main_cpu_ms',
    'p50_ms',
    'p99_ms',
    'sync_p50_ms',
    'by_event.pod_add.agent_cpu_ms',
    'by_event.label_change.agent_cpu_ms',
    'by_event.policy_add.agent_cpu_ms',
    'peak_rss_mb',
  ),
  // The max too: a change's first instance (new peers, new label groups) is where the tail is.
  'agent-change': paths(
    'lower',
    ...['pod_add', 'pod_add_new_shape', 'label_change', 'policy_add'].flatMap((e) => [
      `${e}.cpu_ms_p50`,
      `${e}.cpu_ms_max`,
    ]),
  ),
  // ratio is ours / nft: lower is better too.
  netlink: paths('lower', 'ours_ms', 'ours_build_ms', 'ratio'),
  dataplane: both(
    (json) => {
      const results = Array.isArray(json.results) ? (json.results as unknown[]) : [];
      return results.flatMap((r) => {
        const value = numberAt(r, 'ratio');
        const shape = (r as Json).shape;
        const policies = (r as Json).policies;
        return value === undefined
          ? []
          : [{ name: `ratio ${shape}/${policies}`, better: 'higher' as const, value }];
      });
    },
    paths('higher', 'conntrack.ratio', 'empty_table.ratio'),
  ),
  'dataplane-cnp': paths(
    'higher',
    'cnp0_ratio_vs_conntrack',
    'cnp10_ratio_vs_conntrack',
    'cnp100_ratio_vs_conntrack',
  ),
};

/** A benchmark without a headline entry: its top-level times, lower is better. */
function guessed(json: Json): Figure[] {
  return Object.entries(json).flatMap(([name, value]) =>
    typeof value === 'number' && /_ms$/.test(name) ? [{ name, better: 'lower' as const, value }] : [],
  );
}

export function figuresOf(bench: string, json: Json): Figure[] {
  return (HEADLINES[bench] ?? guessed)(json);
}

/** The benchmark's result: the last line of its output that is JSON naming it (bench/run.ts prints it). */
export function lastJsonLine(stdout: string, bench: string): Json {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith('{')) continue;
    try {
      const json = JSON.parse(line) as unknown;
      if (typeof json === 'object' && json !== null && (json as Json).bench === bench) return json as Json;
    } catch {
      // Another program's output that happens to start with a brace.
    }
  }
  throw new TollgateError('E_BENCH_OUTPUT', `benchmark ${bench} printed no JSON line naming it`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new TollgateError('E_BENCH_OUTPUT', 'median of no values');
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** head against base, oriented so that ≥ 1 means head is not slower (not bigger, not fewer per second). */
export function orientedRatio(better: Better, base: number, head: number): number | undefined {
  const [num, den] = better === 'lower' ? [base, head] : [head, base];
  if (den === 0) return num === 0 ? 1 : undefined;
  return num / den;
}

export interface Row {
  readonly bench: string;
  readonly figure: string;
  readonly better: Better;
  /** Median over the base's runs; undefined when the base lacks the benchmark or the figure. */
  readonly base: number | undefined;
  readonly head: number | undefined;
  readonly ratio: number | undefined;
  readonly status: 'compared' | 'new' | 'not in base' | 'not in head';
  /** Runs that gave the figure, base and head. */
  readonly runs: readonly [number, number];
}

/**
 * The rows of one benchmark from its runs' JSON results: `base` undefined when the base has no such
 * benchmark (every figure "new"). Figures are matched by name; one side's run lacking one is not counted.
 */
export function summarize(bench: string, base: readonly Json[] | undefined, head: readonly Json[]): Row[] {
  const collect = (runs: readonly Json[]) => {
    const out = new Map<string, { better: Better; values: number[] }>();
    for (const run of runs)
      for (const f of figuresOf(bench, run)) {
        const entry = out.get(f.name) ?? { better: f.better, values: [] };
        entry.values.push(f.value);
        out.set(f.name, entry);
      }
    return out;
  };
  const b = collect(base ?? []);
  const h = collect(head);
  const names = [...h.keys(), ...[...b.keys()].filter((n) => !h.has(n))];
  return names.map((figure) => {
    const hb = h.get(figure);
    const bb = b.get(figure);
    const better = (hb ?? bb)!.better;
    const headMedian = hb && median(hb.values);
    const baseMedian = bb && median(bb.values);
    const status =
      base === undefined
        ? 'new'
        : bb === undefined
          ? 'not in base'
          : hb === undefined
            ? 'not in head'
            : 'compared';
    return {
      bench,
      figure,
      better,
      base: baseMedian,
      head: headMedian,
      ratio:
        baseMedian !== undefined && headMedian !== undefined
          ? orientedRatio(better, baseMedian, headMedian)
          : undefined,
      status,
      runs: [bb?.values.length ?? 0, hb?.values.length ?? 0],
    };
  });
}

/** The rows as an aligned text table; ratios under `flagBelow` are marked. */
export function formatRows(rows: readonly Row[], flagBelow = 0.95): string {
  const num = (v: number | undefined) =>
    v === undefined ? '-' : Math.abs(v) >= 100 ? String(Math.round(v)) : String(Math.round(v * 100) / 100);
  const table = [
    ['bench', 'figure', 'better', 'base', 'head', 'head/base', 'runs b/h', ''],
    ...rows.map((r) => [
      r.bench,
      r.figure,
      r.better,
      num(r.base),
      num(r.head),
      r.ratio === undefined ? r.status : r.ratio.toFixed(3),
      `${r.runs[0]}/${r.runs[1]}`,
      r.ratio !== undefined && r.ratio < flagBelow ? `< ${flagBelow}` : '',
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return table
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The benchmarks of a checkout, as bench/run.ts finds them. */
export function benchNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && f !== 'compare.ts' && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
}

interface Side {
  readonly label: 'base' | 'head';
  readonly root: string;
  readonly results: Map<string, Json[]>;
  readonly failures: Map<string, number>;
}

let running: ChildProcess | undefined;

/**
 * Ends the running benchmark and everything it started: each run is its own process group, since a
 * benchmark's own children (an agent in `unshare`, a lab's holders) would not hear a signal sent to
 * bench/run.ts alone: they used to outlive compare.
 */
function stopRunning(): void {
  const pid = running?.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    // The group is gone already.
  }
}

/** One benchmark run in one checkout: its result, or the reason it failed. */
function runOnce(root: string, bench: string): Promise<Json | string> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [join(root, 'bench/run.ts'), bench], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    running = child;
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.once('error', (e) => resolvePromise(e.message));
    child.once('exit', (code, signal) => {
      running = undefined;
      if (code !== 0) return resolvePromise(`exit ${code ?? signal}`);
      try {
        resolvePromise(lastJsonLine(stdout, bench));
      } catch (e) {
        resolvePromise((e as Error).message);
      }
    });
  });
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const [baseRef, ...wanted] = args;
  if (baseRef === undefined) throw new UsageError('usage: npm run bench:compare -- BASE [NAME...]');
  const runs = Number(process.env.BENCH_COMPARE_RUNS ?? 3);
  if (!Number.isInteger(runs) || runs < 1)
    throw new UsageError(`BENCH_COMPARE_RUNS=${process.env.BENCH_COMPARE_RUNS}: want a whole number ≥ 1`);
  const headRoot = resolve(import.meta.dirname, '..');
  const known = benchNames(join(headRoot, 'bench'));
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length > 0)
    throw new UsageError(`unknown benchmark(s): ${unknown.join(', ')}; known: ${known.join(', ')}`);
  let baseSha: string;
  try {
    baseSha = git(headRoot, 'rev-parse', '--verify', `${baseRef}^{commit}`);
  } catch {
    throw new UsageError(`BASE ${baseRef}: not a commit of this repository`);
  }
  const headSha = git(headRoot, 'rev-parse', 'HEAD');
  const dirty = git(headRoot, 'status', '--porcelain', '--untracked-files=no') !== '';

  const tmp = mkdtempSync(join(tmpdir(), 'tollgate-compare-'));
  const baseRoot = join(tmp, 'base');
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    stopRunning();
    try {
      git(headRoot, 'worktree', 'remove', '--force', baseRoot);
    } catch {
      // Not added yet, or already gone: the prune below forgets it either way.
    }
    rmSync(tmp, { recursive: true, force: true });
    try {
      git(headRoot, 'worktree', 'prune');
    } catch {
      // Best effort: a stale entry is harmless and pruned by the next run.
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`compare: ${signal}, removing ${baseRoot}\n`);
    cleanup();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    git(headRoot, 'worktree', 'add', '--detach', baseRoot, baseSha);
    // Hard links: the base runs against the same installed packages without a second install.
    execFileSync('cp', ['-al', join(headRoot, 'node_modules'), join(baseRoot, 'node_modules')]);
    const inBase = new Set(benchNames(join(baseRoot, 'bench')));
    const names = wanted.length > 0 ? wanted : known;
    const load0 = loadavg();
    const sides: Record<'base' | 'head', Side> = {
      base: { label: 'base', root: baseRoot, results: new Map(), failures: new Map() },
      head: { label: 'head', root: headRoot, results: new Map(), failures: new Map() },
    };
    for (const bench of names)
      for (let round = 0; round < runs; round++) {
        // Alternating which goes first: whatever drifts during a round weighs on both alike.
        const order = round % 2 === 0 ? [sides.base, sides.head] : [sides.head, sides.base];
        for (const side of order) {
          if (side.label === 'base' && !inBase.has(bench)) continue;
          process.stderr.write(`compare: ${bench} ${side.label} ${round + 1}/${runs} (load ${loadText()})\n`);
          const result = await runOnce(side.root, bench);
          if (typeof result === 'string') {
            process.stderr.write(`compare: ${bench} ${side.label} failed: ${result}\n`);
            side.failures.set(bench, (side.failures.get(bench) ?? 0) + 1);
          } else side.results.set(bench, [...(side.results.get(bench) ?? []), result]);
        }
      }
    const rows = names.flatMap((bench) =>
      summarize(bench, inBase.has(bench) ? (sides.base.results.get(bench) ?? []) : undefined, [
        ...(sides.head.results.get(bench) ?? []),
      ]),
    );
    const failed = names.flatMap((bench) =>
      (['base', 'head'] as const).flatMap((s) => {
        const n = sides[s].failures.get(bench) ?? 0;
        return n > 0 ? [`${bench} ${s}: ${n} of ${runs} runs failed`] : [];
      }),
    );
    const load1 = loadavg();
    process.stdout.write(
      `base ${baseSha.slice(0, 12)}, head ${headSha.slice(0, 12)}${dirty ? ' (with uncommitted changes)' : ''}, ` +
        `${runs} runs each, interleaved; load ${fmtLoad(load0)} -> ${fmtLoad(load1)}\n` +
        `ratio: base/head for "lower", head/base for "higher": ≥ 1 means head is not slower\n\n` +
        `${formatRows(rows)}\n${failed.map((f) => `\n${f}`).join('')}\n`,
    );
    process.stdout.write(
      `${JSON.stringify({ compare: { base: baseSha, head: headSha, dirty, runs, load: [load0, load1], rows, failed } })}\n`,
    );
    if (failed.length > 0) process.exitCode = 1;
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
const loadText = () => fmtLoad(loadavg());

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
}
