// Runs the benchmarks: `npm run bench` runs all, `npm run bench -- NAME...` runs some. Not a test.
// Each bench/NAME.ts exports `run(): Promise<object>`; its result is printed as the bench's last JSON line.
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const known = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && f !== 'compare.ts' && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !known.includes(w));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${known.join(', ')}\n`);
  process.exit(2);
}
for (const name of wanted.length > 0 ? wanted : known) {
  const mod = (await import(`./${name}.ts`)) as { run: () => Promise<object> };
  const result = await mod.run();
  process.stdout.write(`${JSON.stringify({ bench: name, ...result })}\n`);
}
