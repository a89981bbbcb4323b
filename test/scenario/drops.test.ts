// The `drops` step in model mode (../shared/scenarios/README.md "Denied connections in the log";
// semantics 25, 26): our scenario files under test/scenarios/drops pass, and a wrong line fails with the
// model's reports and explanation; bad lines are errors naming the step and the line.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { modelDriver } from '../../src/scenario/model.ts';
import { loadScenario, parseScenarioText, ScenarioError } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';

const dir = resolve(import.meta.dirname, '../scenarios/drops');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => join(dir, f));

t.test('our drops scenarios exist', async (t) => {
  t.ok(files.length >= 4, `${files.length} files`);
});

for (const file of files) {
  t.test(`model: ${file.slice(dir.length + 1)}`, async (t) => {
    const report = await runScenario(loadScenario(file), modelDriver);
    t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
    const drops = report.steps.flatMap((s) => s.drops ?? []);
    t.ok(drops.length > 0, 'the drops lines were checked');
  });
}

const head = `
name: t
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 2}
- {name: x/c, labels: {pod: c}, node: 1}
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny-in, namespace: x}
    spec:
      podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, c]}]}
      policyTypes: [Ingress]
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny-out, namespace: x}
    spec: {podSelector: {matchLabels: {pod: b}}, policyTypes: [Egress]}
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: audit-out, namespace: x, annotations: {tollgate.dev/audit: "true"}}
    spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}
- expect: ['x/b -> x/a:80 deny', 'x/a -> x/b:80 allow', 'x/a -> x/c:80 deny']
`;
const run = (lines: string[]) =>
  runScenario(
    parseScenarioText(`${head}- drops:\n${lines.map((l) => `  - ${l}\n`).join('')}`, 'f.yaml'),
    modelDriver,
  );

t.test('semantics 26: a connection both sides deny is reported once, as egress', async (t) => {
  const ok = await run(['x/b -> x/a:80/TCP egress x/deny-out']);
  t.equal(ok.failed, 0);
  const wrong = await run(['x/b -> x/a:80/TCP ingress x/deny-in']);
  t.equal(wrong.failed, 1, 'no ingress report: the packet never reaches the destination node');
  const text = formatScenarioReport(wrong, { matrices: false });
  t.match(text, /f\.yaml: steps\[2\]\.drops\[0\]: 'x\/b -> x\/a:80\/TCP ingress x\/deny-in': not reported/);
  t.match(text, /the model reports x\/b -> x\/a:80\/TCP egress x\/deny-out/);
  t.match(text, /DENY pod x\/b/, 'with the evaluator explanation');
});

t.test('semantics 25: an audit-only egress reports would-deny and lets the packet on', async (t) => {
  // x/a -> x/b: allowed (x/b's ingress is open), x/a's egress only audit-isolated: would-deny.
  t.equal((await run(['x/a -> x/b:80/TCP egress x/audit-out would-deny'])).failed, 0);
  // x/a -> x/c: the source node reports would-deny, the packet goes on, x/c's node denies and reports.
  const both = await run([
    'x/a -> x/c:80/TCP egress x/audit-out would-deny',
    'x/a -> x/c:80/TCP ingress x/deny-in',
  ]);
  t.equal(both.failed, 0, formatScenarioReport(both, { matrices: false }));
  t.equal((await run(['x/a -> x/b:80/TCP egress x/audit-out'])).failed, 1, 'not an enforced deny');
});

t.test('the policies are a set, the kind and direction must match', async (t) => {
  t.equal((await run(['x/b -> x/a:80/TCP egress x/deny-out,x/deny-in'])).failed, 1, 'an extra policy');
  t.equal((await run(['x/b -> x/a:80/TCP egress x/deny-out would-deny'])).failed, 1, 'the kind');
});

t.test('a line no earlier probe is about is an error naming the step and line', async (t) => {
  await t.rejects(run(['x/b -> x/a:81/TCP egress x/deny-out']), {
    constructor: ScenarioError,
    message:
      /f\.yaml: steps\[2\]\.drops\[0\]: 'x\/b -> x\/a:81\/TCP egress x\/deny-out': no earlier expect or matrix step probes x\/b -> x\/a:81\/TCP/,
  });
});

t.test('a line not in the report form is an error naming the step and line', async (t) => {
  t.throws(() => parseScenarioText(`${head}- drops: ['x/b -> x/a:80/TCP sideways x/deny-out']\n`, 'f.yaml'), {
    message:
      /f\.yaml: steps\[2\]\.drops\[0\]: drop report .*expected "SRC -> DST:PORT\/PROTO ingress\|egress/,
  });
  t.throws(() => parseScenarioText(`${head}- drops: ['x/b -> x/a/TCP egress x/deny-out']\n`, 'f.yaml'), {
    message: /steps\[2\]\.drops\[0\]: 'x\/b -> x\/a\/TCP egress x\/deny-out' names no port/,
  });
  t.throws(() => parseScenarioText(`${head}- drops: []\n`, 'f.yaml'), {
    message: /steps\[2\]\.drops: must be a non-empty list/,
  });
});
