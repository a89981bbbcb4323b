// `npm run test:unit`: every test file not listed in test/not-unit.txt, run by tap without coverage, a few
// files of one room per process. Fails when the list names a missing file, or when a unit file skipped for
// want of root, namespaces or the API server (that file belongs in the list). Runs tests only; never needs
// root itself. `npm test` still runs each file in a process of its own.
import { spawnSync } from 'node:child_process';
import { existsSync, globSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { Parser, type Result } from 'tap-parser';

const ROOT = resolve(import.meta.dirname, '..');
const LIST = 'test/not-unit.txt';
/** Where the group files go: under .tap (ignored by git), never matched by tap's test/**\/*.test.ts. */
const GROUPS = join(ROOT, '.tap/unit');
/** How much one process holds: a test file counts 1, a file that starts processes (CLI tests) counts 3. */
const GROUP_BUDGET = 6;
/** Rooms with fewer files than this share their processes with the other small rooms. */
const SMALL_ROOM = 3;
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

/**
 * Each tap process costs about a second of CPU before its first test (tap itself, its mock, source map and
 * process-info hooks), more than most unit files take: on 2 cores that fixed cost was half the tier. So a
 * group file imports several test files of one room (test/policy, test/cli, ...; the small rooms share),
 * each file's top-level subtests unchanged (a failure's `at:` names its file). The project keeps no
 * module-level caches (test/policy/memo.test.ts), so files of one process do not see each other's state.
 * TOLLGATE_UNIT_ALONE=1 runs every file in a process of its own, as `npm test` does.
 */
function groupFiles(): string[][] {
  if (process.env.TOLLGATE_UNIT_ALONE === '1') return files.map((f) => [f]);
  const cost = (f: string) =>
    /\b(spawn|spawnSync|execFile)\(/.test(readFileSync(join(ROOT, f), 'utf8')) ? 3 : 1;
  const rooms = [...Map.groupBy(files, (f) => f.split('/')[1] ?? '').values()];
  const small = rooms.filter((r) => r.length < SMALL_ROOM).flat();
  const groups: string[][] = [];
  for (const room of [...rooms.filter((r) => r.length >= SMALL_ROOM), small]) {
    let group: string[] = [];
    let used = 0;
    for (const f of room) {
      if (group.length > 0 && used + cost(f) > GROUP_BUDGET) {
        groups.push(group);
        group = [];
        used = 0;
      }
      group.push(f);
      used += cost(f);
    }
    if (group.length > 0) groups.push(group);
  }
  // The groups that start most processes take longest: they go first (tap runs its files in name order),
  // so both of tap's jobs end at about the same time instead of one starting the slowest group last.
  const weight = (g: string[]) => g.reduce((n, f) => n + cost(f), 0) - g.length;
  return groups.sort((a, b) => weight(b) - weight(a));
}

const groups = groupFiles();
rmSync(GROUPS, { recursive: true, force: true });
mkdirSync(GROUPS, { recursive: true });
/** Each group's file for tap (relative to ROOT), with the test files it imports. */
const runs = new Map<string, string[]>();
for (const [i, members] of groups.entries()) {
  const [first = ''] = members;
  if (process.env.TOLLGATE_UNIT_ALONE === '1') {
    runs.set(first, members);
    continue;
  }
  const room = first.split('/')[1];
  const file = join(GROUPS, `${String(i + 1).padStart(2, '0')}-${room}.test.ts`);
  const imports = members.map((f) => `import '${relative(dirname(file), join(ROOT, f))}';`);
  writeFileSync(
    file,
    `// Written by scripts/test-unit.ts: one process for ${members.join(', ')}.\n${imports.join('\n')}\n`,
  );
  runs.set(relative(ROOT, file), members);
}

const started = performance.now();
const tap = spawnSync(
  process.execPath,
  [
    join(ROOT, 'node_modules/tap/dist/esm/run.mjs'),
    '--disable-coverage',
    ...process.argv.slice(2),
    ...runs.keys(),
  ],
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
  const members = runs.get(name.replace(/\.tap$/, ''));
  if (!members) continue;
  // A group's output does not say which of its files a subtest came from: name them all.
  const file = members.length === 1 ? (members[0] ?? '') : `one of ${members.join(', ')}`;
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
console.log(
  `test:unit: ${files.length} files in ${runs.size} processes, ${seconds.toFixed(1)} s (uid ${process.getuid?.()})`,
);
process.exit(tap.status !== 0 || problems.length > 0 ? 1 : 0);
