// An installation without the developer commands' sources (the agent image has no src/lab or src/scenario,
// the npm package no src/lab): their commands fail with one line naming the missing part, the others run.
// The image itself is checked in test/ship/image.test.ts (root); this is the same rule without root.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { childEnv } from '../_tier.ts';

const root = resolve(import.meta.dirname, '../..');

t.test('without src/lab and src/scenario: lab and simulate say so, agent and cleanup run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-partial-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const p of ['bin', 'src', 'package.json']) cpSync(join(root, p), join(dir, p), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  rmSync(join(dir, 'src/lab'), { recursive: true });
  rmSync(join(dir, 'src/scenario'), { recursive: true });
  const tollgate = (...args: string[]) =>
    spawnSync(process.execPath, [join(dir, 'bin/tollgate.js'), ...args], {
      encoding: 'utf8',
      env: childEnv(),
    });

  for (const [args, part] of [
    [['lab', 'list'], 'src/lab'],
    [['simulate', 'x.yaml'], 'src/scenario'],
    [['lint', '--scenario', 'x.yaml'], 'src/scenario'],
    [['explain', '--from', 'a/b', '--to', 'c/d', '--port', '80', '--scenario', 'x.yaml'], 'src/scenario'],
  ] as const) {
    const r = tollgate(...args);
    const what = `tollgate ${args.join(' ')}`;
    t.equal(r.status, 1, `${what} exits 1`, { stderr: r.stderr });
    t.equal(
      r.stderr,
      `tollgate ${args[0]}: this installation leaves out ${part}/, which \`tollgate ${args[0]}\` needs for this (the agent image has the node commands and reads clusters and manifests; scenarios and the lab need a git checkout of tollgate) [E_NOT_INSTALLED]\n`,
      `${what}: one line naming ${part}, no stack trace`,
    );
  }
  for (const command of ['agent', 'cleanup']) {
    const r = tollgate(command, '--help');
    t.equal(r.status, 0, `tollgate ${command} --help runs`, { stderr: r.stderr });
    t.match(r.stdout, `Usage: tollgate ${command}`);
  }
  // Reading manifests (and a cluster) needs no scenario model: lint and explain still work on them.
  const manifest = join(dir, 'policy.yaml');
  writeFileSync(
    manifest,
    [
      'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}',
      ...['a', 'b'].map(
        (name, i) =>
          `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: shop}\nspec: {nodeName: n1}\nstatus: {podIP: 10.244.1.${i + 2}}`,
      ),
    ].join('\n---\n'),
  );
  const lint = tollgate('lint', '--manifests', manifest);
  t.equal(lint.status, 0, 'tollgate lint --manifests runs without src/scenario', { stderr: lint.stderr });
  const explain = tollgate(
    'explain',
    '--from',
    'shop/a',
    '--to',
    'shop/b',
    '--port',
    '80',
    '--manifests',
    manifest,
  );
  t.equal(explain.status, 3, 'tollgate explain --manifests runs without src/scenario (denied: exit 3)', {
    stderr: explain.stderr,
  });
  const usage = tollgate('--help');
  t.match(usage.stdout, /^ {2}lab {7}network-namespace cluster/m, 'the usage still lists every command');

  // A directory that is there with a file missing is a bug, not a smaller installation: not disguised.
  mkdirSync(join(dir, 'src/lab'));
  const broken = tollgate('lab', 'list');
  t.not(broken.status, 0);
  t.notMatch(
    broken.stderr,
    /E_NOT_INSTALLED/,
    'a missing file in a present directory is not E_NOT_INSTALLED',
  );
  t.match(broken.stderr, /ERR_MODULE_NOT_FOUND/);
});
