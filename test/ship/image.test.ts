// The agent image that scripts/build-image.sh builds without Docker: its config must say what the Dockerfile
// says (parsed from the Dockerfile, so the two cannot drift), its root must hold what the Dockerfile's stages
// put there and nothing of the development tree, and the image must really run (chroot into its layers).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import t from 'tap';
import { dockerfile, duBytes, imageLeavesOut, REPO, runtimeConfig } from './_helpers.ts';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}
interface OciConfig {
  architecture: string;
  os: string;
  config: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string; User?: string };
  rootfs: { diff_ids: string[] };
}

const ARCH = { x64: 'amd64', arm64: 'arm64' }[process.arch as string] ?? process.arch;
const isRoot = process.getuid?.() === 0;

function build(): { stdout: string; stderr: string; status: number | null } {
  // The first run on a cold machine downloads the Debian packages and npm tarballs: minutes, not seconds.
  return spawnSync(join(REPO, 'scripts/build-image.sh'), [], {
    encoding: 'utf8',
    timeout: 1_200_000,
    maxBuffer: 64 * 1024 * 1024,
  });
}

function outputs(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

function files(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return files(p, base);
    return [relative(base, p)];
  });
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

t.test('scripts/build-image.sh: the Dockerfile image, built without Docker, runs', async (t) => {
  t.setTimeout(1_500_000);
  const first = build();
  t.equal(first.status, 0, 'scripts/build-image.sh succeeds', { stderr: first.stderr.slice(-6000) });
  if (first.status !== 0) return;
  const out = outputs(first.stdout);
  t.same(
    Object.keys(out).sort(),
    ['IMAGE_LAYOUT', 'IMAGE_REF', 'IMAGE_TAR'],
    'stdout is KEY=VALUE lines only',
    {
      stdout: first.stdout,
    },
  );
  const layout = out.IMAGE_LAYOUT!;
  const imageTar = out.IMAGE_TAR!;
  t.ok(relative(REPO, imageTar).startsWith('..'), 'the image is written outside the repo', { imageTar });

  // The same inputs: nothing is rebuilt.
  const again = build();
  t.equal(again.status, 0, 'a second run succeeds');
  t.equal(again.stdout, first.stdout, 'a second run gives the same image');
  t.match(again.stderr, /up to date/, 'a second run with the same inputs does not rebuild', {
    stderr: again.stderr,
  });

  const blob = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  t.equal(index.manifests.length, 1, 'the layout holds one image');
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), 'utf8')) as {
    mediaType: string;
    config: Descriptor;
    layers: Descriptor[];
  };
  t.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json', 'an OCI image manifest');
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as OciConfig;

  t.test('the config says what the Dockerfile says', async (t) => {
    const want = runtimeConfig(dockerfile);
    t.ok(want.entrypoint && want.cmd && want.workdir, 'the Dockerfile sets ENTRYPOINT, CMD and WORKDIR');
    t.same(config.config.Entrypoint, want.entrypoint, `ENTRYPOINT ${JSON.stringify(want.entrypoint)}`);
    t.same(config.config.Cmd, want.cmd, `CMD ${JSON.stringify(want.cmd)}`);
    t.equal(config.config.WorkingDir, want.workdir, `WORKDIR ${want.workdir}`);
    t.same(config.config.Env, want.env, 'ENV: the same variables, values and order');
    // No USER line: the distroless base's default user, root, as the Dockerfile's comment says.
    t.equal(want.user, undefined, 'the Dockerfile sets no USER');
    t.match(dockerfile, /Root \(uid 0\) is the default user/, 'the Dockerfile relies on the base being root');
    t.equal(config.config.User, '0', 'the image runs as uid 0');
    t.equal(config.os, 'linux');
    t.equal(config.architecture, ARCH, `built for this machine (${ARCH})`);
  });

  t.test('the tarball is the same image, named by IMAGE_REF', async (t) => {
    const list = spawnSync('tar', ['-xOf', imageTar, 'manifest.json'], { encoding: 'utf8' });
    t.equal(list.status, 0, 'the tarball has a manifest.json (docker save format)');
    const [entry] = JSON.parse(list.stdout) as { Config: string; RepoTags: string[]; Layers: string[] }[];
    t.same(entry?.RepoTags, [out.IMAGE_REF], `tagged ${out.IMAGE_REF}`);
    t.equal(entry?.Config, manifest.config.digest, 'the same config as the layout');
    t.same(
      entry?.Layers.map((l) => l.replace(/\.tar\.gz$/, '')),
      manifest.layers.map((l) => l.digest.split(':')[1]),
      'the same layers as the layout',
    );
  });

  t.test('crane push takes both outputs, as a lab registry gets them', async (t) => {
    const crane = spawnSync(join(REPO, 'scripts/go-tool.sh'), ['crane'], { encoding: 'utf8' }).stdout.trim();
    const registry = spawn(crane, ['registry', 'serve', '--address', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    t.teardown(() => registry.kill());
    const port = await new Promise<string>((resolve, reject) => {
      let log = '';
      const limit = setTimeout(
        () => reject(new Error(`crane registry serve: no port in 60 s: ${log}`)),
        60_000,
      );
      registry.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        const m = /serving on port (\d+)/.exec(log);
        if (m) {
          clearTimeout(limit);
          resolve(m[1]!);
        }
      });
      registry.on('exit', (code) => reject(new Error(`crane registry serve exited (${code}): ${log}`)));
    });
    const crn = (...args: string[]) => spawnSync(crane, args, { encoding: 'utf8', timeout: 300_000 });
    for (const [what, source] of [
      ['layout', layout],
      ['tar', imageTar],
    ] as const) {
      const ref = `127.0.0.1:${port}/tollgate:${what}`;
      const push = crn('push', source, ref);
      t.equal(push.status, 0, `crane push of the ${what} succeeds`, { stderr: push.stderr });
      const pushedConfig = createHash('sha256').update(crn('config', ref).stdout).digest('hex');
      t.equal(`sha256:${pushedConfig}`, manifest.config.digest, `the pushed ${what} has the image's config`);
    }
    t.equal(
      crn('digest', `127.0.0.1:${port}/tollgate:layout`).stdout.trim(),
      index.manifests[0]!.digest,
      'the layout keeps its OCI manifest digest',
    );
  });

  const root = mkdtempSync(join(tmpdir(), 'tollgate-image-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const layer of manifest.layers) {
    const list = spawnSync('tar', ['-tzf', blob(layer.digest)], { encoding: 'utf8', maxBuffer: 1 << 26 });
    t.notMatch(list.stdout, /(^|\/)\.wh\./m, `layer ${layer.digest.slice(0, 19)} has no whiteouts`);
    const x = spawnSync('tar', ['-xzf', blob(layer.digest), '-C', root], { encoding: 'utf8' });
    t.equal(x.status, 0, `layer ${layer.digest.slice(0, 19)} unpacks`, { stderr: x.stderr });
  }
  const compressed = manifest.layers.reduce((n, l) => n + l.size, 0);
  const unpacked = duBytes(root);
  t.comment(
    `image: ${(compressed / 1e6).toFixed(1)} MB compressed in ${manifest.layers.length} layers (${manifest.layers.map((l) => (l.size / 1e6).toFixed(1)).join(' + ')}), ${(unpacked / 1e6).toFixed(1)} MB unpacked`,
  );

  t.test('the root holds what the Dockerfile puts there, and nothing of the development tree', async (t) => {
    const want = runtimeConfig(dockerfile);
    const app = join(root, 'app');
    // /app's entries: the COPY destinations under WORKDIR, plus the compile cache the RUN line warms.
    const expected = new Set<string>();
    for (const c of want.copies) {
      const rel = relative(want.workdir!, c.dest);
      if (rel === '') for (const s of c.sources) expected.add(s.split('/').at(-1)!);
      else expected.add(rel.split('/')[0]!);
    }
    const cacheEnv = want.env.find((e) => e.startsWith('NODE_COMPILE_CACHE='))!.split('=')[1]!;
    expected.add(relative(want.workdir!, cacheEnv));
    t.same(readdirSync(app).sort(), [...expected].sort(), `/app holds ${[...expected].join(', ')}`);
    t.ok(
      readdirSync(join(app, relative('/app', cacheEnv)), { recursive: true }).length > 10,
      'the compile cache is warmed',
    );

    // The harness is not product: the lab and the scenario runner stay out (style.md, issue 16).
    const leftOut = imageLeavesOut();
    t.same(leftOut, ['src/lab', 'src/scenario'], '.dockerignore leaves out src/lab and src/scenario');
    for (const d of leftOut) t.notOk(existsSync(join(app, d)), `no /app/${d}`);
    for (const dir of ['bin', 'src']) {
      const mine = files(join(REPO, dir))
        .filter((f) => !leftOut.some((d) => join(dir, f).startsWith(`${d}/`)))
        .sort();
      t.same(files(join(app, dir)).sort(), mine, `/app/${dir} has the repo's files (but the left-out ones)`);
      const differing = mine.filter((f) => sha256(join(REPO, dir, f)) !== sha256(join(app, dir, f)));
      t.same(differing, [], `/app/${dir} has the repo's contents`);
    }
    t.equal(
      sha256(join(app, 'package.json')),
      sha256(join(REPO, 'package.json')),
      'package.json as in the repo',
    );

    // Dev dependencies: every devDependency the lockfile marks as dev-only must be absent.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; version?: string }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([p, info]) => p.startsWith('node_modules/') && info.dev === true)
      .map(([p]) => p);
    t.ok(devOnly.length > 50, `the lockfile marks ${devOnly.length} packages as dev-only`);
    const present = devOnly.filter((p) => existsSync(join(app, p)));
    t.same(present, [], 'no dev-only package in /app/node_modules');
    // Optional packages are per-platform builds (koffi's): npm installs only the matching one.
    for (const p of Object.keys(lock.packages).filter(
      (p) => p.startsWith('node_modules/') && !lock.packages[p]!.dev && !lock.packages[p]!.optional,
    ))
      if (!existsSync(join(app, p))) t.fail(`production package ${p} is missing`);

    const declarations = files(join(app, 'node_modules')).filter((f) => /\.map$|\.d\.[mc]?ts$/.test(f));
    t.same(declarations.slice(0, 5), [], 'no .d.ts, .d.mts, .d.cts or .map under node_modules');
    const netlink = join(app, 'node_modules/netlink');
    const keep = `linux-${process.arch}`;
    t.same(readdirSync(join(netlink, 'prebuilds')), [keep], `only the ${keep} netlink prebuild`);
    t.ok(existsSync(join(netlink, 'prebuilds', keep, 'node.napi.node')), 'with its addon');
    t.notOk(existsSync(join(netlink, 'src')), 'no netlink sources');
    t.notOk(existsSync(join(netlink, 'binding.gyp')), 'no netlink binding.gyp');

    // Node as distroless places it; no shell, npm, compilers or nft.
    t.ok(statSync(join(root, 'nodejs/bin/node')).mode & 0o111, '/nodejs/bin/node is executable');
    for (const p of [
      'bin/sh',
      'usr/bin/sh',
      'bin/bash',
      'usr/bin/npm',
      'nodejs/bin/npm',
      'usr/bin/gcc',
      'usr/sbin/nft',
    ])
      t.notOk(existsSync(join(root, p)), `no /${p}`);
  });

  t.test('the image runs: its entrypoint, the kubectl plugin, the warmed compile cache', async (t) => {
    // The process sees the image's root and environment only, as under a container runtime.
    const run = (argv: string[], extraEnv: string[] = []) => {
      const enter = [
        ...(isRoot ? [] : ['--map-root-user']),
        '--root',
        root,
        '--wd',
        config.config.WorkingDir!,
      ];
      return spawnSync(
        'env',
        ['-i', ...config.config.Env!, ...extraEnv, '/usr/bin/unshare', ...enter, ...argv],
        {
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
    };
    const entry = config.config.Entrypoint!;
    const pinned = (
      JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { version: string }>;
      }
    ).packages['node_modules/node']!.version;
    const version = run([entry[0]!, '--version']);
    t.equal(version.stdout.trim(), `v${pinned}`, `the image's node is the pinned v${pinned}`, {
      stderr: version.stderr,
    });

    const agent = run([...entry, 'agent', '--help'], ['NODE_DEBUG_NATIVE=COMPILE_CACHE']);
    t.equal(agent.status, 0, '`tollgate agent --help` exits 0 inside the image', {
      stderr: agent.stderr.slice(-3000),
    });
    t.match(agent.stdout, /--metrics-addr HOST:PORT/, 'and prints the agent usage');
    // Node's compile-cache debug lines: the entries warmed at build time match the files and this node.
    for (const f of ['src/cli/main.ts', 'src/cli/agent.ts'])
      t.match(
        agent.stderr,
        `retrieving transpile cache for StrippedTypeScript file:///app/${f}...success`,
        `the warmed cache serves /app/${f} without the TypeScript stripper`,
      );

    // daemonset/cleanup's idle container runs plain `node`: the image's PATH must find it.
    const bare = run(['node', '--version']);
    t.equal(bare.stdout.trim(), `v${pinned}`, '`node` is found on the image PATH', { stderr: bare.stderr });

    const cleanup = run([...entry, 'cleanup', '--help']);
    t.equal(cleanup.status, 0, '`tollgate cleanup --help` exits 0 inside the image', {
      stderr: cleanup.stderr,
    });
    // The developer commands say what is missing and where they run: one line, no stack trace.
    for (const [argv, part] of [
      [['lab', 'list'], /src\/(lab|scenario)\//],
      [['simulate', '/app/package.json'], /src\/scenario\//],
    ] as const) {
      const r = run([...entry, ...argv]);
      const what = `\`tollgate ${argv.join(' ')}\` in the image`;
      t.equal(r.status, 1, `${what} exits 1`, { stderr: r.stderr });
      t.match(r.stderr, /this installation leaves out src\//, `${what} names what is missing`);
      t.match(r.stderr, part);
      t.match(r.stderr, /need a git checkout of tollgate\) \[E_NOT_INSTALLED\]$/m);
      t.notMatch(r.stderr, /^\s+at /m, `${what} prints no stack trace`);
    }

    t.ok(existsSync(join(root, 'app/bin/kubectl-tollgate.js')), 'the kubectl plugin is in the image');
    const plugin = run([entry[0]!, '/app/bin/kubectl-tollgate.js', '--help']);
    t.equal(plugin.status, 0, '`kubectl-tollgate --help` exits 0 inside the image', {
      stderr: plugin.stderr,
    });
    t.match(plugin.stdout, /kubectl tollgate/, 'and prints its usage');
  });
});
