// Prints the closing line `N passed, N failed, N skipped` of a test run from tap's saved results
// (.tap/test-results/*.tap). Counts leaf assertions; a file that crashed counts as one failure.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser, type Result } from 'tap-parser';

const dir = '.tap/test-results';
let passed = 0;
let failed = 0;
let skipped = 0;

function count(text: string): void {
  const parser = new Parser();
  const visit = (p: Parser) => {
    p.on('assert', (r: Result) => {
      if (r.subtest) return; // counted through its own children
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
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
