// `npm run test:unit`: every test file not listed in test/not-unit.txt, run by tap without coverage. Fails
// when the list names a missing file, or when a unit file skipped for want of root, namespaces or the API
// server (that file belongs in the list). Runs tests only; never needs root itself.
import { spawnSync } from 'node:child_process';
import { existsSync, globSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Parser, type Result } from 'tap-parser';

const ROOT = resolve(import.meta.dirname, '..');
const LIST = 'test/not-unit.txt';

const excluded = new Set<string>();
const problems: string[] = [];
for (const line of readFileSync(join(ROOT, LIST), 'utf8').split('\n')) {
  const path = line.replace(/#.*/, '').trim().split(/\s+/)[0];
  if (!path) continue;
  if (!existsSync(join(ROOT, path))) problems.push(`${LIST}: ${path} does not exist`);
  excluded.add(path);
}
const files = globSync('test/**/*.test.ts', { cwd: ROOT })
  .filter((f) => !excluded.has(f))
  .sort();

const started = performance.now();
const tap = spawnSync(
  process.execPath,
  [join(ROOT, 'node_modules/tap/dist/esm/run.mjs'), '--disable-coverage', ...process.argv.slice(2), ...files],
  // The CLI tests start many node processes: a compile cache spares each one stripping the same TypeScript.
  // TOLLGATE_TEST_TIER=unit: property tests run a tenth of their cases (test/_tier.ts); `npm test` all.
  {
    cwd: ROOT,
    stdio: 'inherit',
    env: {
      NODE_COMPILE_CACHE: join(ROOT, '.tap/compile-cache'),
      ...process.env,
      TOLLGATE_TEST_TIER: 'unit',
    },
  },
);
const seconds = (performance.now() - started) / 1000;

// A skip that names root, a namespace or the API server means the file is not a unit test.
const needy = /root|namespace|netns|kube-apiserver|etcd|docker|CAP_NET_ADMIN/i;
const results = join(ROOT, '.tap/test-results');
for (const name of existsSync(results) ? readdirSync(results, { recursive: true, encoding: 'utf8' }) : []) {
  if (!name.endsWith('.tap')) continue;
  const file = name.replace(/\.tap$/, '');
  if (!files.includes(file)) continue;
  const parser = new Parser();
  const visit = (p: Parser) => {
    p.on('assert', (r: Result) => {
      const why = typeof r.skip === 'string' ? r.skip : '';
      if (needy.test(why)) problems.push(`${file}: skipped "${r.name}" (${why}): list it in ${LIST}`);
    });
    p.on('child', visit);
  };
  visit(parser);
  parser.end(readFileSync(join(results, name)));
}

for (const p of problems) console.error(`test:unit: ${p}`);
console.log(`test:unit: ${files.length} files in ${seconds.toFixed(1)} s (uid ${process.getuid?.()})`);
process.exit(tap.status !== 0 || problems.length > 0 ? 1 : 0);
