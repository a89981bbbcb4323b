// The package as a user installs it: `npm pack`, then `npm install -g --omit=dev` of the tarball into a
// throwaway prefix, and the installed bins (`tollgate`, and the kubectl plugin `kubectl-tollgate`, which
// kubectl finds on PATH) must run with Node 24 first on PATH. Nothing from the repo's node_modules is used.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { REPO } from './_helpers.ts';

t.test('npm pack + npm install -g --omit=dev: tollgate and kubectl-tollgate run', async (t) => {
  t.setTimeout(600_000);
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };

  const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: REPO,
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });
  t.equal(pack.status, 0, 'npm pack succeeds', { stderr: pack.stderr?.slice(-3000) });
  if (pack.status !== 0) return;
  const [info] = JSON.parse(pack.stdout) as { filename: string; size: number; files: { path: string }[] }[];
  const paths = new Set(info!.files.map((f) => f.path));
  for (const p of ['package.json', 'bin/tollgate.js', 'bin/kubectl-tollgate.js', 'src/cli/main.ts'])
    t.ok(paths.has(p), `the tarball holds ${p}`);
  // The lab is a developer tool (root, network namespaces, a checkout); the scenario runner stays, since
  // the kubectl plugin's simulate and lint --scenario use it.
  t.same(
    [...paths].filter((p) => p.startsWith('src/lab/')),
    [],
    'the tarball holds no src/lab (package.json files)',
  );
  t.ok(paths.has('src/scenario/parse.ts'), 'the tarball holds the scenario runner');
  t.notOk(
    [...paths].some((p) => p.startsWith('node_modules/')),
    'the tarball holds no node_modules',
  );
  t.comment(`npm pack: ${info!.filename}, ${(info!.size / 1e3).toFixed(0)} kB, ${paths.size} files`);

  // What a user runs; --prefer-offline takes the dependencies from the local npm cache when it has them.
  const prefix = join(dir, 'prefix');
  const install = spawnSync(
    'npm',
    [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--omit=dev',
      '--no-audit',
      '--prefer-offline',
      join(dir, info!.filename),
    ],
    { encoding: 'utf8', env, timeout: 480_000 },
  );
  t.equal(install.status, 0, 'npm install -g --omit=dev of the tarball succeeds', {
    stderr: install.stderr?.slice(-3000),
  });
  if (install.status !== 0) return;
  const lib = join(prefix, 'lib/node_modules/tollgate');
  t.notOk(existsSync(join(lib, 'node_modules/tap')), 'no dev dependency installed (tap)');
  t.notOk(existsSync(join(lib, 'node_modules/node')), 'no dev dependency installed (the pinned node)');

  // Node 24 first on PATH, as the package's engines field asks; the bins' `#!/usr/bin/env node` finds it.
  const path = [join(prefix, 'bin'), dirname(process.execPath), '/usr/bin', '/bin'].join(':');
  const run = (bin: string, args: string[]) =>
    spawnSync(join(prefix, 'bin', bin), args, {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: path, HOME: dir },
      timeout: 60_000,
    });
  const plugin = run('kubectl-tollgate', ['--help']);
  t.equal(plugin.status, 0, 'kubectl-tollgate --help exits 0 from the installed package', {
    stderr: plugin.stderr,
  });
  t.match(plugin.stdout, /kubectl tollgate/, 'and prints the plugin usage');
  // Every command beyond the plugin's own usage loads src/*.ts, which Node refuses to type-strip under
  // node_modules, where npm installs a package: bin/_installed.js strips the package's own files there.
  for (const [bin, args] of [
    ['kubectl-tollgate', ['lint', '--help']],
    ['tollgate', ['--help']],
    ['tollgate', ['agent', '--help']],
  ] as const) {
    const r = run(bin, [...args]);
    t.equal(r.status, 0, `${bin} ${args.join(' ')} exits 0 from the installed package`, {
      stderr: r.stderr.slice(0, 400),
    });
    t.match(r.stdout, /Usage: tollgate/, `${bin} ${args.join(' ')} prints its usage`);
    t.notMatch(r.stderr, /ExperimentalWarning/, `${bin} ${args.join(' ')} prints no Node warning`);
  }
  const simulate = run('kubectl-tollgate', ['simulate', join(lib, 'examples/three-tier.yaml')]);
  t.equal(simulate.status, 0, 'kubectl-tollgate simulate runs from the installed package', {
    stderr: simulate.stderr.slice(0, 400),
  });
  const lab = run('tollgate', ['lab', 'list']);
  t.equal(lab.status, 1, '`tollgate lab list` from the package exits 1', { stderr: lab.stderr });
  t.match(lab.stderr, /leaves out src\/lab\/.*need a git checkout of tollgate\) \[E_NOT_INSTALLED\]$/m);
  t.notMatch(lab.stderr, /^\s+at /m, 'and prints no stack trace');
});
