// Fault steps in scenario files (../shared/scenarios/README.md "Faults"): parsed into typed steps, bad
// ones rejected naming the file, the step and the field; the model skips the faults but still checks
// every expectation (also the project's own fault scenarios), and a `same-ip-as` pod exists only in the
// API: its address is nobody's, so the model denies it as the node's unknown-address rule does.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { modelDriver } from '../../src/scenario/model.ts';
import { loadScenario, parseScenarioText } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { World } from '../../src/scenario/world.ts';
import { childEnv } from '../_tier.ts';

const root = resolve(import.meta.dirname, '../..');
const faultDir = resolve(root, 'test/lab-api/fixtures/faults');
const run = promisify(execFile);

const head = `name: f
nodes: 2
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 2}
- {name: x/c, labels: {pod: c}, node: 1}
`;
const denyA = `- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: only-c, namespace: x}
    spec:
      podSelector: {matchLabels: {pod: a}}
      ingress: [{from: [{podSelector: {matchLabels: {pod: c}}}]}]
`;

const parse = (steps: string) => parseScenarioText(`${head}steps:\n${steps}`, 'f.yaml');

t.test('fault steps parse into typed steps', async (t) => {
  const s = parse(`- tamper: {node: 1, nft: "delete table inet tollgate"}
- agent: {node: 2, do: second-start}
- api: stop
- add-pods: [{name: x/d, labels: {pod: d}, same-ip-as: x/a}]
- expect: {within: 2s, probes: ['x/b -> x/a:80 deny']}
- expect: {within: 500ms, probes: ['x/b -> x/a:80 deny']}
- expect: ['x/b -> x/a:80 deny']
`);
  t.match(s.steps[0], { kind: 'tamper', node: 1, nft: 'delete table inet tollgate' });
  t.match(s.steps[1], { kind: 'agent', node: 2, action: 'second-start' });
  t.match(s.steps[2], { kind: 'api', action: 'stop' });
  t.match(s.steps[3], { kind: 'add-pods', pods: [{ name: 'x/d', sameIpAs: 'x/a', node: undefined }] });
  t.match(s.steps[4], { kind: 'expect', withinMs: 2000, probes: ['x/b -> x/a:80 deny'] });
  t.match(s.steps[5], { kind: 'expect', withinMs: 500 });
  t.match(s.steps[6], { kind: 'expect', withinMs: undefined });
});

t.test('bad fault steps name the file, the step and the field', async (t) => {
  const cases: [string, RegExp][] = [
    ['- tamper: {node: 1}', /^f\.yaml: steps\[0\]\.tamper\.nft: must be a non-empty string$/],
    [
      '- tamper: {node: 3, nft: "list ruleset"}',
      /^f\.yaml: steps\[0\]\.tamper\.node: must be a node index from 1 to 2$/,
    ],
    [
      '- agent: {node: 1, do: pause}',
      /^f\.yaml: steps\[0\]\.agent\.do: 'pause' is not one of stop, start, restart, kill, second-start, second-stop$/,
    ],
    ['- agent: {do: stop}', /^f\.yaml: steps\[0\]\.agent\.node: must be a node index/],
    ['- api: pause', /^f\.yaml: steps\[0\]\.api: must be 'stop' or 'start'$/],
    [
      "- expect: {within: soon, probes: ['x/b -> x/a:80 deny']}",
      /^f\.yaml: steps\[0\]\.expect\.within: must be a duration such as 2s or 500ms \(got soon\)$/,
    ],
    ['- expect: {within: 2s}', /^f\.yaml: steps\[0\]\.expect\.probes: must be a non-empty list of probes$/],
    ["- expect: {within: 2s, probe: ['x']}", /^f\.yaml: steps\[0\]\.expect\.probe: unknown field/],
    [
      "- expect: {family: ip6, probes: ['x/b -> x/a:80 deny']}",
      /^f\.yaml: steps\[0\]\.expect\.family: must be ipv4, ipv6 or both/,
    ],
    [
      '- add-pods: [{name: x/d, same-ip-as: x/a, reuse-ip-of: x/b}]',
      /^f\.yaml: steps\[0\]\.add-pods\[0\]: give at most one of reuse-ip-of and same-ip-as$/,
    ],
    [
      '- crash: now',
      /^f\.yaml: steps\[0\]: unknown step 'crash' \(apply, delete, label, add-pods, expect, matrix, drops, tamper, agent, api, connect, connections\)$/,
    ],
  ];
  for (const [step, message] of cases) t.throws(() => parse(step), { message }, step);
  t.throws(
    () => parseScenarioText(`${head.replace('node: 1}', 'node: 1, same-ip-as: x/b}')}steps: []`, 'f.yaml'),
    { message: /^f\.yaml: pods\[0\]\.same-ip-as: only pods of an add-pods step may claim/ },
    'same-ip-as only in add-pods',
  );
});

t.test('same-ip-as needs a live pod with its own address; probes cannot name such a pod', async (t) => {
  const world = new World(parse(`- add-pods: [{name: x/d, same-ip-as: x/nope}]`));
  t.throws(() => world.applyStep(world.scenario.steps[0]!), {
    message:
      /^f\.yaml: steps\[0\]\.add-pods\[0\]: same-ip-as: x\/nope is not a live pod with its own address$/,
  });
  const s = parse(`- add-pods: [{name: x/d, labels: {pod: d}, same-ip-as: x/a}]
- expect: ['x/b -> x/d:80 deny']
`);
  await t.rejects(runScenario(s, modelDriver), {
    message: /steps\[1\]\.expect\[0\]: x\/d exists only in the API \(same-ip-as x\/a\): probe x\/a instead/,
  });
});

t.test('the model skips faults and checks every expectation', async (t) => {
  const ok = parse(`${denyA}- tamper: {node: 1, nft: "delete table inet tollgate"}
- agent: {node: 1, do: kill}
- api: stop
- expect: {within: 2s, probes: ['x/b -> x/a:80 deny', 'x/c -> x/a:80 allow']}
- api: start
- expect: ['x/b -> x/c:80 allow']
`);
  const report = await runScenario(ok, modelDriver);
  t.same([report.passed, report.failed], [3, 0], 'three expectations, all hold');
  t.notOk(
    report.steps.some((s) => s.window),
    'no convergence window in the model',
  );
  const wrong = parse(`${denyA}- tamper: {node: 1, nft: "flush ruleset"}
- expect: {within: 2s, probes: ['x/b -> x/a:80 allow']}
`);
  t.equal((await runScenario(wrong, modelDriver)).failed, 1, 'a wrong expectation after a fault still fails');
});

t.test("model: a same-ip-as pod makes the address nobody's; the rest is unaffected", async (t) => {
  const s = parse(`- add-pods: [{name: x/d, labels: {pod: d}, node: 1, same-ip-as: x/a}]
- expect:
  - x/b -> x/a:80 deny
  - x/a -> x/b:80 deny
  - x/b -> x/c:80 allow
  - x/c -> x/b:80 allow
- delete: pod x/d
- expect: ['x/b -> x/a:80 allow']
`);
  const report = await runScenario(s, modelDriver);
  const wrong = report.steps.flatMap((x) => x.outcomes.filter((o) => o.allowed !== o.probe.expectAllow));
  t.equal(report.failed, 0, 'every expectation holds', {
    diagnostic: report.failed > 0,
    wrong: wrong.map((o) => `${o.probe.text}: ${o.explanation}`),
  });
  t.match(
    report.steps[0]!.outcomes[0]!.explanation,
    /^DENY: 10\.244\.1\.10 is in node node-1's pod range but no live pod owns it/,
  );
});

t.test("the project's fault scenarios pass in model mode (tollgate simulate)", async (t) => {
  const files = readdirSync(faultDir).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 1, `${files.length} fault scenarios`);
  for (const f of files) {
    const report = await runScenario(loadScenario(join(faultDir, f)), modelDriver);
    t.equal(report.failed, 0, `${f}: ${report.passed} expectations hold in the model`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tg-faults-'));
  writeFileSync(join(dir, 'bad.yaml'), `${head}steps:\n- agent: {node: 1, do: nap}\n`);
  const bad = await run(
    process.execPath,
    [join(root, 'bin/tollgate.js'), 'simulate', join(dir, 'bad.yaml')],
    { env: childEnv() },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(bad.code, 2, 'a bad fault step is a usage error');
  t.match(bad.stderr, /bad\.yaml: steps\[0\]\.agent\.do: 'nap' is not one of/);
  t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});

t.test('the plain lab driver refuses fault steps with a pointer to --api', async (t) => {
  const s = parse(`- tamper: {node: 1, nft: "flush ruleset"}\n`);
  const step = s.steps[0]!;
  if (step.kind !== 'tamper') throw new Error('not a tamper step');
  await t.rejects(new LabScenarioDriver().fault(new World(s), step), {
    code: 'E_USAGE',
    message:
      /^f\.yaml: steps\[0\]\.tamper: fault steps need agents and an API server: run it with `tollgate lab run --api`$/,
  });
});
