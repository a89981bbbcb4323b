// `tollgate explain` and `tollgate lint` with ClusterNetworkPolicies (semantics 20-24): explain prints the
// tier chain and warns about invalid rules and priority ties; lint reads such manifests without failing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { explainCommand } from '../../src/cli/explain.ts';
import { lintCommand } from '../../src/cli/lint.ts';
import { runInProcess } from './_in-process.ts';

const root = resolve(import.meta.dirname, '../..');

const commands = { explain: explainCommand, lint: lintCommand };

/** `tollgate explain|lint ARGS` in this process; explain.test.ts and lint.test.ts run the real processes. */
const tollgate = (name: keyof typeof commands, ...args: string[]) => runInProcess(commands[name], args);

const MANIFESTS = `
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec: {nodeName: n1, containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}
status: {phase: Running, podIP: 10.244.1.10}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: y, labels: {pod: b}}
spec: {nodeName: n1, containers: [{name: c}]}
status: {phase: Running, podIP: 10.244.1.11}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard}
spec:
  tier: Admin
  priority: 3
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: x}}}
  ingress:
  - {name: http-to-np, action: Pass, from: [{namespaces: {}}], protocols: [{destinationNamedPort: http}]}
  - {name: no-y, action: Deny, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: y}}}]}
  egress:
  - {action: Accept, to: [{domainNames: [kubernetes.io]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: other}
spec:
  tier: Admin
  priority: 3
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
`;

const dir = mkdtempSync(join(tmpdir(), 'tollgate-cnp-'));
writeFileSync(join(dir, 'cluster.yaml'), MANIFESTS);

t.test('explain --manifests: the tier chain, per direction', async (t) => {
  const pass = await tollgate('explain', '--manifests', dir, '--from', 'y/b', '--to', 'x/a', '--port', '80');
  t.equal(pass.code, 0, pass.stderr);
  t.match(
    pass.stdout,
    'ingress of x/a: [Admin] guard rule 0 (http-to-np) (from[0], protocols[0]) Pass → [NetworkPolicy] x/allow-y allows (ingress[0]): allowed',
  );
  t.match(
    pass.stdout,
    'egress of y/b: [Admin] no rule matches → [NetworkPolicy] not isolated → [Baseline] no rule matches → allowed by default',
  );
  const deny = await tollgate('explain', '--manifests', dir, '--from', 'y/b', '--to', 'x/a', '--port', '81');
  t.equal(deny.code, 3, 'denied: exit status 3');
  t.match(
    deny.stdout,
    /^DENY pod y\/b .*\n.*\n {2}ingress of x\/a: \[Admin\] guard rule 1 \(no-y\) \(from\[0\]\) Deny: denied/,
  );
});

t.test('explain warns about what it cannot enforce and about priority ties', async (t) => {
  const r = await tollgate('explain', '--manifests', dir, '--from', 'y/b', '--to', 'x/a', '--port', '80');
  t.match(
    r.stderr,
    'warning: ClusterNetworkPolicy guard: spec.egress[0].to[0].domainNames: domain name peers are not supported',
  );
  t.match(r.stderr, /warning: ClusterNetworkPolicy other: spec\.priority: Admin priority 3 is also guard's/);
});

t.test('explain from a scenario with ClusterNetworkPolicies, at a step', async (t) => {
  const file = join(root, 'test/scenarios/cnp/c-admin-integration.yaml');
  const args = ['--from', 'slytherin/draco-malfoy-0', '--to', 'gryffindor/harry-potter-0', '--port', '80'];
  const denied = await tollgate('explain', '--scenario', file, '--step', '0', ...args);
  t.equal(denied.code, 3);
  t.match(denied.stdout, '[Admin] pass-example rule 0 (ingress-from-slytherin) (from[0]) Deny: denied');
  const passed = await tollgate('explain', '--scenario', file, '--step', '2', ...args);
  t.equal(passed.code, 0);
  t.match(passed.stdout, 'Pass → [NetworkPolicy] gryffindor/allow-slytherin allows');
});

t.test('lint reads manifests with ClusterNetworkPolicies without failing', async (t) => {
  const r = await tollgate('lint', '--manifests', dir);
  t.notMatch(r.stderr, /Error|at .*\.ts:/, r.stderr);
  t.ok([0, 1].includes(r.code), `exit ${r.code} (0 clean, 1 findings)`);
});
