// The kubectl plugin (bin/kubectl-tollgate.js, run as kubectl runs a plugin: the executable itself): help,
// the cluster of the current kubeconfig context by default ($KUBECONFIG, else ~/.kube/config), explicit
// sources passed through, and only the read-only commands.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { childEnv, UNIT_TIER } from '../_tier.ts';
import { fakeCluster } from './_fake-cluster.ts';

const root = resolve(import.meta.dirname, '../..');
const plugin = join(root, 'bin/kubectl-tollgate.js');
const run = promisify(execFile);
const emptyHome = mkdtempSync(join(tmpdir(), 'tollgate-home-'));

async function kubectlTollgate(env: Record<string, string | undefined>, ...args: string[]) {
  // The shebang finds `node` on PATH, as on a user's machine: put this Node 24 first.
  const PATH = [dirname(process.execPath), process.env.PATH].join(delimiter);
  const base = { ...childEnv(), PATH, HOME: emptyHome, KUBECONFIG: undefined };
  try {
    const { stdout, stderr } = await run(plugin, args, { cwd: root, env: { ...base, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test(
  "the unit tier's children go without tap's coverage hook, quoted or not (test/_tier.ts)",
  async (t) => {
    const hook = '--import=file:///x/node_modules/@tapjs/processinfo/dist/esm/import.mjs';
    for (const quoted of [hook, `"${hook}"`]) {
      const env = childEnv({ NODE_OPTIONS: `--no-warnings ${quoted}` });
      t.equal(env.NODE_OPTIONS, UNIT_TIER ? '--no-warnings' : `--no-warnings ${quoted}`, quoted);
    }
  },
);

t.test('package.json installs it as kubectl-tollgate', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.equal(pkg.bin['kubectl-tollgate'], 'bin/kubectl-tollgate.js');
});

t.test('--help, no command, and commands that are not the plugin', async (t) => {
  const help = await kubectlTollgate({}, '--help');
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /^Usage: kubectl tollgate COMMAND/m);
  t.match(help.stdout, /explain .*\n {2}lint .*\n {2}simulate/);
  t.match(help.stdout, /\$KUBECONFIG, or\s+~\/\.kube\/config/);
  const none = await kubectlTollgate({});
  t.equal(none.code, 2);
  const agent = await kubectlTollgate({}, 'agent');
  t.equal(agent.code, 2);
  t.match(agent.stderr, /'agent' is not one of drops, explain, lint, simulate/);
  const sub = await kubectlTollgate({}, 'lint', '--help');
  t.equal(sub.code, 0, "a command's help needs no kubeconfig");
  t.match(sub.stdout, /^Usage: tollgate lint/);
});

t.test('lint and explain use the current context of $KUBECONFIG', async (t) => {
  const api = await fakeCluster(join(root, 'examples/mistakes/tutorial-mistakes.yaml'));
  t.teardown(() => api.close());
  const missing = join(emptyHome, 'no-such-config');
  // kubectl's rule: the first file of the list that exists.
  const lint = await kubectlTollgate({ KUBECONFIG: [missing, api.kubeconfig].join(delimiter) }, 'lint');
  t.equal(lint.code, 4, lint.stderr);
  t.match(lint.stdout, /split-peer {2}NetworkPolicy shop\/db-ingress/);
  t.ok(api.requests.length > 0, 'the fake cluster of the current context was asked');
  t.ok(
    api.requests.every((r) => r.authorization === 'Bearer tollgate-test-token'),
    "with the context user's token",
  );
  const explain = await kubectlTollgate(
    { KUBECONFIG: api.kubeconfig },
    'explain',
    '--from',
    'shop/web',
    '--to',
    'shop/db',
    '--port',
    '3306',
  );
  t.equal(explain.code, 0, explain.stderr);
  t.match(explain.stdout, /^ALLOW pod shop\/web .* -> pod shop\/db .*allowed by policy shop\/db-ingress/ms);
});

t.test('without KUBECONFIG: ~/.kube/config; without either: a clear error', async (t) => {
  const api = await fakeCluster(join(root, 'examples/three-tier.yaml'));
  t.teardown(() => api.close());
  const home = mkdtempSync(join(tmpdir(), 'tollgate-home-'));
  mkdirSync(join(home, '.kube'));
  copyFileSync(api.kubeconfig, join(home, '.kube/config'));
  const r = await kubectlTollgate({ HOME: home }, 'lint');
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, new RegExp(`^ok {3}${join(home, '.kube/config')}$`, 'm'));
  const none = await kubectlTollgate({}, 'lint');
  t.equal(none.code, 2);
  t.match(none.stderr, /no kubeconfig at .*\.kube\/config: set KUBECONFIG or pass --kubeconfig FILE/);
});

t.test('an explicit source and simulate need no cluster', async (t) => {
  const scenario = await kubectlTollgate({}, 'lint', '--scenario', 'examples/three-tier.yaml');
  t.equal(scenario.code, 0, scenario.stderr);
  const manifests = await kubectlTollgate({}, 'lint', '--manifests=examples/');
  t.equal(manifests.code, 4, manifests.stderr);
  const simulate = await kubectlTollgate({}, 'simulate', 'examples/');
  t.equal(simulate.code, 0, simulate.stderr);
  t.match(simulate.stdout, /^[1-9]\d* passed, 0 failed$/m);
});
