// The production install, checked without Docker: exactly what the Dockerfile copies, installed with
// `npm ci --omit=dev`, must start `tollgate --help` and `tollgate agent --help` (which load the netlink
// addon) on Node 24 and hold no development tool. Also the image recipe's promises (no compilers, no nft).
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { dockerfile, instructions, REPO, stages } from './_dockerfile.ts';

/** Sources of the COPY instructions that take files from the build context (not --from a stage). */
function contextCopies(text: string): string[] {
  const sources: string[] = [];
  for (const line of instructions(text)) {
    const m = /^COPY\s+(.*)$/i.exec(line);
    if (!m || /--from=/.test(m[1]!)) continue;
    const words = m[1]!.split(/\s+/).filter((w) => !w.startsWith('--'));
    sources.push(...words.slice(0, -1));
  }
  return [...new Set(sources.map((s) => s.replace(/^\.\//, '').replace(/\/$/, '')))];
}

function duBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) total += duBytes(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

t.test(
  'the Dockerfile: multi-stage, npm ci from the lockfile, no compilers or nft in the image',
  async (t) => {
    const all = stages(dockerfile);
    t.ok(all.length >= 2, 'a build stage and a runtime stage');
    const build = all[0]!;
    const runtime = all.at(-1)!;
    t.ok(
      build.some((l) => /^RUN\s.*npm ci --omit=dev/.test(l)),
      'the build stage installs with npm ci --omit=dev (the lockfile, production only)',
    );
    t.match(runtime[0]!, /FROM\s+\$\{RUNTIME_IMAGE\}|nodejs24|node:24/, 'the runtime stage is Node 24');
    t.match(dockerfile, /ARG RUNTIME_IMAGE=\S*nodejs24/, 'the default runtime image is Node 24');
    for (const line of runtime) {
      t.notMatch(
        line,
        /apt-get|apk add|build-essential|gcc|g\+\+|python3?\b|nftables|node-gyp/,
        `runtime: ${line}`,
      );
      if (/^RUN\s/i.test(line))
        t.match(line, /^RUN\s+\[/, 'a RUN in the runtime stage is exec form (no shell)');
    }
    t.ok(
      runtime.some((l) => /^COPY\s+--from=deps\s+\/app\/node_modules/.test(l)),
      'node_modules come from the build stage',
    );
    t.ok(
      runtime.some((l) => /^ENTRYPOINT\s.*bin\/tollgate\.js/.test(l)),
      'the entrypoint is bin/tollgate.js',
    );
    t.ok(
      runtime.some((l) => l === 'CMD ["agent"]'),
      'runs `tollgate agent` by default',
    );
    const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8');
    for (const source of contextCopies(dockerfile))
      t.ok(ignore.includes(`!${source}`), `.dockerignore lets ${source} into the build context`);
  },
);

t.test('npm ci --omit=dev of what the image copies runs tollgate and holds no dev tool', async (t) => {
  t.setTimeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-install-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const copies = contextCopies(dockerfile);
  t.same(
    [...copies].sort(),
    ['bin', 'package-lock.json', 'package.json', 'scripts/warm-compile-cache.js', 'src'],
    'the image takes package.json, the lockfile, bin/, src/ and the compile-cache warm-up',
  );
  for (const source of copies) {
    mkdirSync(dirname(join(dir, source)), { recursive: true });
    cpSync(join(REPO, source), join(dir, source), { recursive: true });
  }

  // The same flags as the Dockerfile; --prefer-offline makes it a copy out of the local npm cache.
  const npm = spawnSync(
    'npm',
    ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
    { cwd: dir, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } },
  );
  t.equal(npm.status, 0, 'npm ci --omit=dev succeeds (package.json and the lockfile agree)', {
    stderr: npm.stderr?.slice(-4000),
  });
  if (npm.status !== 0) return;

  const modules = join(dir, 'node_modules');
  for (const tool of [
    'tap',
    'typescript',
    '@biomejs',
    'fast-check',
    'tap-parser',
    'testcontainers',
    '@testcontainers',
    'node',
  ])
    t.notOk(existsSync(join(modules, tool)), `no ${tool} in the production node_modules`);
  for (const arch of ['linux-x64', 'linux-arm64'])
    t.ok(
      existsSync(join(modules, 'netlink/prebuilds', arch, 'node.napi.node')),
      `netlink ships a prebuilt addon for ${arch}`,
    );
  const deps = Object.keys(
    (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: object }).dependencies,
  );
  for (const dep of deps) t.ok(existsSync(join(modules, dep)), `production dependency ${dep} is installed`);
  const installed = duBytes(modules);

  // Prune as the image's build stage does: other architectures' prebuilds, type declarations, source maps.
  t.match(dockerfile, /! -name "\$keep" -exec rm -rf/, 'the Dockerfile keeps one netlink prebuild');
  t.match(dockerfile, /-name '\*\.map' -o -name '\*\.d\.ts'/, 'the Dockerfile drops maps and declarations');
  const keep = `linux-${process.arch}`;
  for (const arch of readdirSync(join(modules, 'netlink/prebuilds')))
    if (arch !== keep) rmSync(join(modules, 'netlink/prebuilds', arch), { recursive: true });
  const prune = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) prune(p);
      else if (entry.isFile() && /\.map$|\.d\.[mc]?ts$/.test(entry.name)) unlinkSync(p);
    }
  };
  prune(modules);
  t.comment(
    `production node_modules: ${(installed / 1e6).toFixed(1)} MB installed, ${(duBytes(modules) / 1e6).toFixed(1)} MB in the image`,
  );

  // process.execPath is Node 24 (the pinned devDependency runs the tests); the sources are type-stripped.
  for (const args of [['--help'], ['agent', '--help'], ['cleanup', '--help']]) {
    const run = spawnSync(process.execPath, [join(dir, 'bin/tollgate.js'), ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    t.equal(run.status, 0, `tollgate ${args.join(' ')} exits 0`, { stderr: run.stderr });
    t.match(run.stdout, /Usage: tollgate/, `tollgate ${args.join(' ')} prints its usage`);
  }
  // The kubectl plugin ships in bin/ too (package.json "bin"): it must start from the production install.
  const plugin = spawnSync(process.execPath, [join(dir, 'bin/kubectl-tollgate.js'), '--help'], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  t.equal(plugin.status, 0, 'kubectl-tollgate --help exits 0 from the production install', {
    stderr: plugin.stderr,
  });
  t.match(plugin.stdout, /kubectl tollgate/, 'kubectl-tollgate prints its usage');
  const agentHelp = spawnSync(process.execPath, [join(dir, 'bin/tollgate.js'), 'agent', '--help'], {
    cwd: dir,
    encoding: 'utf8',
  });
  t.match(
    agentHelp.stdout,
    /--metrics-addr HOST:PORT/,
    'the agent takes --metrics-addr (the DaemonSet uses it)',
  );

  // The image warms Node's compile cache so that the agent loads without the TypeScript stripper.
  const cache = join(dir, '.compile-cache');
  const warm = spawnSync(process.execPath, [join(dir, 'scripts/warm-compile-cache.js'), cache], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  t.equal(warm.status, 0, 'the warm-up the Dockerfile runs succeeds in the production install', {
    stderr: warm.stderr,
  });
  // With the cache, the agent's modules load without the stripper: markedly less memory.
  const rss = (env: Record<string, string>) => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `await import(${JSON.stringify(join(dir, 'src/agent/agent.ts'))}); await import(${JSON.stringify(join(dir, 'src/k8s/client.ts'))}); console.log(process.memoryUsage().rss)`,
        '--input-type=module',
      ],
      { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } },
    );
    return Number(r.stdout.trim());
  };
  const cold = rss({});
  const warmRss = rss({ NODE_COMPILE_CACHE: cache });
  t.ok(
    warmRss < cold - 15 * 1024 * 1024,
    `with the warmed cache the agent's modules load in ${(warmRss / 1048576).toFixed(0)} MB RSS, not ${(cold / 1048576).toFixed(0)} MB (no TypeScript stripper)`,
  );
});
