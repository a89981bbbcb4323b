// Closes a test run: prints `N passed, N failed, N skipped` from tap's saved results (.tap/test-results)
// counting leaf assertions (a file that crashed counts as one failure), then enforces the coverage floor
// on src/ from .tap/report/coverage-summary.json. Exit status 1 when anything failed or coverage is short.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser, type Result } from 'tap-parser';

/**
 * The coverage floor for all of src/ together. Kernel-facing code runs partly in child processes inside
 * network namespaces, so 100% is not a useful goal; below these numbers untested code is creeping in.
 */
const FLOOR = { lines: 90, branches: 80, functions: 90 };

let passed = 0;
let failed = 0;
let skipped = 0;

function count(text: string): void {
  const parser = new Parser();
  const visit = (p: Parser) => {
    p.on('assert', (r: Result) => {
      if (r.subtest) return; // its children are counted
      if (r.skip || r.todo) skipped++;
      else if (r.ok) passed++;
      else failed++;
    });
    p.on('child', visit);
  };
  visit(parser);
  let crashed = false;
  parser.on('complete', (final: { ok: boolean; fail: number }) => {
    if (!final.ok && final.fail === 0) crashed = true;
  });
  parser.end(text);
  if (crashed) failed++;
}

const dir = '.tap/test-results';
let files: string[] = [];
try {
  files = readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.tap'));
} catch {
  // no results at all: the run did not start
}
for (const f of files) count(readFileSync(join(dir, f), 'utf8'));
if (files.length === 0) failed++;

let coverageOk = true;
try {
  const summary = JSON.parse(readFileSync('.tap/report/coverage-summary.json', 'utf8')) as {
    total: Record<keyof typeof FLOOR, { pct: number }>;
  };
  for (const [metric, floor] of Object.entries(FLOOR) as [keyof typeof FLOOR, number][]) {
    const pct = summary.total[metric].pct;
    if (pct < floor) {
      coverageOk = false;
      process.stdout.write(`coverage: ${metric} ${pct}% is below the floor of ${floor}%\n`);
    }
  }
} catch {
  coverageOk = false;
  process.stdout.write('coverage: no coverage summary was written\n');
}

process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exitCode = failed === 0 && coverageOk ? 0 : 1;
