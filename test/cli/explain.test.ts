// `tollgate explain` offline: from a scenario file (any step) and from a directory of manifests; exit
// status 0 allow / 3 deny; clear errors for unknown pods and bad ports.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { explainCommand } from '../../src/cli/explain.ts';
import { childEnv } from '../_tier.ts';
import { runInProcess } from './_in-process.ts';

const root = resolve(import.meta.dirname, '../..');
const seed = resolve(root, 'examples/db-only-from-api.yaml');
const run = promisify(execFile);

async function realExplain(...args: string[]) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [join(root, 'bin/tollgate.js'), 'explain', ...args],
      { env: childEnv() },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
/** `tollgate explain ARGS` in this process; the first case runs a real process for main's wiring. */
const explain = (...args: string[]) => runInProcess(explainCommand, args);

t.test('from a scenario: the API pod of shop may reach the database, the staging one may not', async (t) => {
  const allowed = await realExplain(
    '--scenario',
    seed,
    '--from',
    'shop/api',
    '--to',
    'shop/db',
    '--port',
    '3306',
  );
  t.equal(allowed.code, 0);
  t.match(allowed.stdout, /^ALLOW pod shop\/api .* -> pod shop\/db .* TCP port 3306$/m);
  t.match(allowed.stdout, /allowed by policy shop\/db-from-api ingress\[0\] \(from\[0\], ports\[0\]\)/);
  const denied = await explain(
    '--scenario',
    seed,
    '--from',
    'staging/api',
    '--to',
    'shop/db',
    '--port',
    '3306/TCP',
  );
  t.equal(denied.code, 3);
  t.match(denied.stdout, /isolated by shop\/db-from-api; no rule allows it, denied/);
});

t.test('--step picks the state: before any policy everything is allowed', async (t) => {
  const r = await explain(
    '--scenario',
    seed,
    '--step',
    '0',
    '--from',
    'staging/api',
    '--to',
    'shop/db',
    '--port',
    '3306',
  );
  t.equal(r.code, 0);
  t.match(r.stdout, /ingress of shop\/db: not isolated, allowed/);
});

t.test('from manifests, with an external address and ICMP', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-explain-'));
  writeFileSync(
    join(dir, 'cluster.yaml'),
    `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.244.1.7}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}}], ports: [{port: http}]}]
`,
  );
  const ok = await explain('--manifests', dir, '--from', '203.0.113.9', '--to', 'shop/web', '--port', '8080');
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /ALLOW external address 203\.0\.113\.9 -> pod shop\/web/);
  const carved = await explain(
    '--manifests',
    dir,
    '--from',
    '203.0.113.200',
    '--to',
    'shop/web',
    '--port',
    '8080',
  );
  t.equal(carved.code, 3);
  const icmp = await explain(
    '--manifests',
    dir,
    '--from',
    '203.0.113.9',
    '--to',
    'shop/web',
    '--port',
    '/ICMP',
  );
  t.equal(icmp.code, 3, 'a rule with ports never allows ICMP');
  t.match(icmp.stdout, /-> pod shop\/web \(10\.244\.1\.7\) ICMP/);
});

t.test('errors name what is wrong', async (t) => {
  const unknown = await explain('--scenario', seed, '--from', 'shop/nope', '--to', 'shop/db', '--port', '80');
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /'shop\/nope' is neither an IP address nor a known pod/);
  const badPort = await explain(
    '--scenario',
    seed,
    '--from',
    'shop/api',
    '--to',
    'shop/db',
    '--port',
    'http',
  );
  t.equal(badPort.code, 2);
  t.match(badPort.stderr, /--port must be/);
  const missing = await explain('--from', 'a/b', '--to', 'c/d');
  t.equal(missing.code, 2);
  t.match(missing.stderr, /--from, --to and --port are required/);
});

t.test('an unresolved YAML alias is a clear error naming the file and the document', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-explain-alias-'));
  writeFileSync(
    join(dir, 'pods.yaml'),
    [
      'apiVersion: v1',
      'kind: Namespace',
      'metadata: {name: x}',
      '---',
      'apiVersion: v1',
      'kind: Pod',
      'metadata: {name: a, namespace: x, labels: *missing}',
      'spec: {nodeName: n1}',
      'status: {podIP: 10.244.1.10}',
    ].join('\n'),
  );
  const r = await explain('--manifests', dir, '--from', '10.244.1.10', '--to', '10.244.1.11', '--port', '80');
  t.equal(r.code, 2, 'a usage error, not a crash');
  t.match(r.stderr, /pods\.yaml: document 1: Unresolved alias .*: missing/);
  t.notMatch(r.stderr, /ReferenceError|\n\s+at /, 'no stack trace');
});

t.test('two pods claiming one address: explain warns and names both', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-explain-dup-'));
  const pod = (name: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: x}\nspec: {nodeName: n1}\nstatus: {phase: Running, podIP: 10.244.1.10}\n`;
  writeFileSync(join(dir, 'pods.yaml'), `${pod('a')}---\n${pod('stale')}`);
  const r = await explain('--manifests', dir, '--from', '10.244.1.10', '--to', '10.244.1.11', '--port', '80');
  t.match(
    r.stderr,
    /warning: Pod x\/a: status\.podIPs: address 10\.244\.1\.10 is claimed by 2 live pods: x\/a \(node n1\), x\/stale \(node n1\)/,
  );
});

t.test('point 25: an audit-mode policy: ALLOW (WOULD-DENY), naming the policy, exit 0', async (t) => {
  const file = resolve(root, 'test/scenarios/drops/audit-would-deny.yaml');
  const r = await explain('--scenario', file, '--step', '1', '--from', 'x/c', '--to', 'x/a', '--port', '80');
  t.equal(r.code, 0, 'allowed: audit mode enforces nothing');
  t.match(r.stdout, /^ALLOW \(WOULD-DENY\) pod x\/c/);
  t.match(r.stdout, /audit-mode x\/audit-a would isolate it .*WOULD DENY/);
  const enforced = await explain('--scenario', file, '--from', 'x/c', '--to', 'x/a', '--port', '80');
  t.equal(enforced.code, 3, 'after the last step the annotation is gone: denied');
});
