// `tollgate lint` end to end: examples/ (clean, except the mistakes made on purpose), plain manifests, a
// live cluster through a kubeconfig, JSON output, and the documented exit statuses (0 clean, 4 findings).
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { lintCommand } from '../../src/cli/lint.ts';
import { childEnv } from '../_tier.ts';
import { fakeCluster } from './_fake-cluster.ts';
import { runInProcess } from './_in-process.ts';

const root = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const mistakes = 'examples/mistakes/tutorial-mistakes.yaml';

async function realLint(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'bin/tollgate.js'), 'lint', ...args], {
      cwd: root,
      env: childEnv(),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
/** `tollgate lint ARGS` in this process; the first case runs a real process for main's wiring. */
const lint = (...args: string[]) => runInProcess(lintCommand, args);

interface JsonOut {
  inputs: { source: string; findings: { id: string; object: string; field: string; fix: string }[] }[];
  findings: number;
}

/** The findings the mistakes example is written to have, one per mistake (policy 6 has two). */
const expectedMistakes = [
  'egress-without-dns NetworkPolicy shop/api-egress spec.egress',
  'selector-matches-nothing NetworkPolicy shop/api-ingress spec.ingress[0].from[0].podSelector',
  'named-port-unknown NetworkPolicy shop/api-ingress spec.ingress[0].ports[0].port',
  'selector-matches-nothing NetworkPolicy shop/cache-ingress spec.podSelector',
  'redundant-policy NetworkPolicy shop/db-from-api spec',
  'split-peer NetworkPolicy shop/db-ingress spec.ingress[0].from[1]',
  'namespace-label-unknown NetworkPolicy shop/web-metrics spec.ingress[0].from[0].namespaceSelector',
];

t.test(
  'lint --manifests examples/: the correct examples are clean, the mistakes are all found',
  async (t) => {
    const r = await realLint('--manifests', 'examples/', '--output', 'json');
    t.equal(r.code, 4, r.stderr);
    const out = JSON.parse(r.stdout) as JsonOut;
    const clean = out.inputs.filter((i) => i.source !== mistakes);
    t.ok(clean.length >= 5, `${clean.length} correct examples`);
    for (const input of clean) t.same(input.findings, [], `${input.source} has no finding`);
    const wrong = out.inputs.find((i) => i.source === mistakes);
    t.same(
      wrong?.findings.map((f) => `${f.id} ${f.object} ${f.field}`),
      expectedMistakes,
    );
    t.equal(out.findings, expectedMistakes.length);

    const text = await lint('--manifests', 'examples/');
    t.equal(text.code, 4);
    t.match(text.stdout, /^ok {3}examples\/three-tier\.yaml$/m);
    t.match(text.stdout, /^examples\/mistakes\/tutorial-mistakes\.yaml: 7 findings$/m);
    t.match(
      text.stdout,
      /^ {2}split-peer {2}NetworkPolicy shop\/db-ingress {2}spec\.ingress\[0\]\.from\[1\]$/m,
    );
    t.match(text.stdout, /^ {4}fix: did you mean app=cache\?$/m);
    t.match(text.stdout.trim().split('\n').at(-1) ?? '', /^7 findings in 1 of \d+ inputs$/);
  },
);

t.test('lint --scenario: one file, a step, a directory', async (t) => {
  const clean = await lint('--scenario', 'examples/db-only-from-api.yaml');
  t.equal(clean.code, 0, clean.stdout + clean.stderr);
  t.match(clean.stdout, /^0 findings in 0 of 1 input$/m);
  // After step 2 of the mistakes only the extra dash is in place.
  const early = await lint('--scenario', mistakes, '--step', '0', '--output', 'json');
  t.equal(early.code, 4);
  t.same(
    (JSON.parse(early.stdout) as JsonOut).inputs[0]!.findings.map((f) => f.id),
    ['split-peer'],
  );
  const dir = await lint('--scenario', 'examples/');
  t.equal(dir.code, 4);
  t.match(dir.stdout, /7 findings in 1 of/);
});

t.test(
  'lint --manifests on Kubernetes YAML: a finding, the fix, and checks skipped without pods',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-lint-'));
    const cluster = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.244.1.7}
`;
    const policy = (port: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: ${port}}]}]
`;
    writeFileSync(join(dir, 'cluster.yaml'), cluster);
    writeFileSync(join(dir, 'policy.yaml'), policy('htp'));
    const bad = await lint('--manifests', dir);
    t.equal(bad.code, 4, bad.stderr);
    t.match(
      bad.stdout,
      /named-port-unknown {2}NetworkPolicy shop\/web {2}spec\.ingress\[0\]\.ports\[0\]\.port/,
    );
    t.match(bad.stdout, /fix: did you mean 'http'\?/);
    writeFileSync(join(dir, 'policy.yaml'), policy('http'));
    const good = await lint('--manifests', dir);
    t.equal(good.code, 0, good.stdout);
    t.match(good.stdout, new RegExp(`^ok {3}${dir}$`, 'm'));

    const alone = await lint('--manifests', join(dir, 'policy.yaml'));
    t.equal(alone.code, 0);
    t.match(
      alone.stdout,
      /note: the input has no pods: selector-matches-nothing, named-port-unknown not checked/,
    );
    t.match(alone.stdout, /note: the input declares no namespaces: namespace-label-unknown not checked/);
  },
);

t.test('lint --kubeconfig: the live cluster through the same client as explain', async (t) => {
  const api = await fakeCluster(join(root, mistakes));
  t.teardown(() => api.close());
  const r = await lint('--kubeconfig', api.kubeconfig, '--output', 'json');
  t.equal(r.code, 4, r.stderr);
  const out = JSON.parse(r.stdout) as JsonOut;
  t.equal(out.inputs[0]!.source, api.kubeconfig);
  t.same(
    out.inputs[0]!.findings.map((f) => `${f.id} ${f.object} ${f.field}`),
    expectedMistakes,
  );
  t.ok(
    api.requests.some((q) => q.path === '/apis/networking.k8s.io/v1/networkpolicies'),
    'listed the policies through the API',
  );
});

t.test('usage: --help documents the checks and exit statuses; errors are usage errors', async (t) => {
  const help = await lint('--help');
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: tollgate lint/);
  t.match(help.stdout, /Exit status: 0 no findings, 4 findings, 2 usage error, 1 other error\./);
  for (const id of [
    'egress-without-dns',
    'namespace-label-unknown',
    'selector-matches-nothing',
    'split-peer',
  ])
    t.match(help.stdout, new RegExp(`^ {2}${id} `, 'm'));
  const badOutput = await lint('--scenario', mistakes, '--output', 'yaml');
  t.equal(badOutput.code, 2);
  t.match(badOutput.stderr, /--output must be text or json/);
  const both = await lint('--scenario', mistakes, '--manifests', 'examples/');
  t.equal(both.code, 2);
  const stepAlone = await lint('--manifests', 'examples/', '--step', '1');
  t.equal(stepAlone.code, 2);
  t.match(stepAlone.stderr, /--step needs --scenario/);
  const missing = await lint('--manifests', '/nonexistent/dir');
  t.equal(missing.code, 2);
  t.match(missing.stderr, /\/nonexistent\/dir: no such file or directory/);
});
