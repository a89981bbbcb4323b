// Every scenario under examples/ (and ../shared/scenarios, when it is there) passes in model mode; the CLI
// reports failures with the evaluator's explanation and a closing `N passed, N failed` line; bad files get
// errors naming the field.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { simulateCommand } from '../../src/cli/simulate.ts';
import { modelDriver } from '../../src/scenario/model.ts';
import { loadScenario, parseScenarioText } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { childEnv } from '../_tier.ts';
import { runInProcess } from '../cli/_in-process.ts';

const root = resolve(import.meta.dirname, '../..');
const examplesDir = resolve(root, 'examples');
// The team's shared corpus is an extra: a fresh clone has only examples/.
const sharedDir = resolve(root, '../shared/scenarios');
const hasShared = existsSync(sharedDir);
const run = promisify(execFile);

async function cli(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'bin/tollgate.js'), ...args], {
      cwd: root,
      env: childEnv(),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
/** `tollgate simulate ARGS` in this process; `simulate examples/`, `--help` and an unknown command run as real processes for main's wiring. */
const simulate = (...args: string[]) => runInProcess(simulateCommand, args);

const yamlBelow = (dir: string) =>
  readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
const examples = yamlBelow(examplesDir);
const files = [...examples, ...(hasShared ? yamlBelow(sharedDir) : [])];

t.test('the examples exist (and the shared scenarios, when present)', async (t) => {
  t.ok(examples.length >= 6, `${examples.length} scenario files under examples/`);
  if (hasShared) t.ok(files.length - examples.length >= 28, `shared scenarios under ${sharedDir}`);
});

for (const file of files) {
  t.test(`model: ${file.slice(resolve(root, '..').length + 1)}`, async (t) => {
    const report = await runScenario(loadScenario(file), modelDriver);
    const wrong = report.steps.flatMap((s) => s.outcomes.filter((o) => o.allowed !== o.probe.expectAllow));
    t.equal(
      report.failed,
      0,
      `no failing expectation${wrong.length ? `: ${wrong.map((o) => `${o.probe.text}\n${o.explanation}`).join('\n')}` : ''}`,
    );
    t.ok(report.passed > 0, `${report.passed} expectations hold`);
  });
}

t.test('tollgate simulate examples/ passes and closes with a non-zero total', async (t) => {
  const r = await cli('simulate', 'examples/');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^ok +db-only-from-api: \d+\/\d+ expectations$/m);
  t.match(r.stdout, /^ok +tutorial-mistakes: \d+\/\d+ expectations$/m, 'the mistakes show their damage');
  t.match(r.stdout.trim().split('\n').at(-1) ?? '', /^[1-9]\d* passed, 0 failed$/);
});

t.test('tollgate simulate over the shared directory', { skip: !hasShared && 'no ../shared' }, async (t) => {
  const r = await simulate(sharedDir);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^ok +seed-db-only-from-api: \d+\/\d+ expectations$/m);
  t.match(r.stdout.trim().split('\n').at(-1) ?? '', /^\d+ passed, 0 failed$/);
});

t.test('a wrong expectation fails with the explanation of the verdict', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sim-'));
  const original = readFileSync(join(examplesDir, 'db-only-from-api.yaml'), 'utf8');
  const text = original.replace('staging/api -> shop/db:3306 deny', 'staging/api -> shop/db:3306 allow');
  t.not(text, original, 'the mutation applies');
  writeFileSync(join(dir, 'mutated.yaml'), text);
  const r = await simulate(join(dir, 'mutated.yaml'));
  t.equal(r.code, 1);
  t.match(r.stdout, /FAIL db-only-from-api/);
  t.match(r.stdout, /steps\[2\]\.expect\[3\]: staging\/api -> shop\/db:3306\/TCP: expected allow, got deny/);
  t.match(
    r.stdout,
    /DENY pod staging\/api \(10\.244\.1\.\d+\) -> pod shop\/db \(10\.244\.1\.\d+\) TCP port 3306/,
  );
  t.match(r.stdout, /ingress of shop\/db: isolated by shop\/db-from-api; no rule allows it, denied/);
  t.match(r.stdout, /^\d+ passed, 1 failed$/m);
});

t.test('a failing matrix step prints the matrix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sim-'));
  const original = readFileSync(join(examplesDir, 'default-policies.yaml'), 'utf8');
  const text = original.replace('- deny */* -> locked/*\n- apply', '- deny outside/* -> locked/*\n- apply');
  t.not(text, original, 'the mutation applies');
  writeFileSync(join(dir, 'm.yaml'), text);
  const r = await simulate(join(dir, 'm.yaml'));
  t.equal(r.code, 1);
  t.match(r.stdout, /steps\[1\]\.matrix \(port 80\/TCP\):/);
  t.match(r.stdout, /^ {4}locked\/a +- +! +\. /m, 'locked/a -> locked/b marked wrong');
  t.match(r.stdout, /^\d+ passed, 2 failed$/m);
});

t.test('CLI usage: --help everywhere, errors name what is wrong', async (t) => {
  const top = await cli('--help');
  t.equal(top.code, 0);
  t.match(top.stdout, /simulate +run scenario files against the policy model/);
  const sub = await simulate('--help');
  t.equal(sub.code, 0);
  t.match(sub.stdout, /^Usage: tollgate simulate/);
  const unknown = await cli('frobnicate');
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
  const badFlag = await simulate('--nope', 'x.yaml');
  t.equal(badFlag.code, 2);
  t.match(badFlag.stderr, /--nope/);
  const missing = await simulate('/nonexistent/s.yaml');
  t.equal(missing.code, 2);
  t.match(missing.stderr, /\/nonexistent\/s\.yaml: no such file/);
  const none = await simulate();
  t.equal(none.code, 2);
});

t.test('scenario files with mistakes get errors naming the file and field', async (t) => {
  const bad: [string, RegExp][] = [
    ['steps:\n- frob: 1\n', /f\.yaml: steps\[0\]: unknown step 'frob'/],
    ['pods:\n- name: nope\n', /f\.yaml: pods\[0\]\.name: 'nope' is not namespace\/name/],
    ['nodes: 2\npods:\n- {name: x/a, node: 3}\n', /pods\[0\]\.node: must be a node index from 1 to 2/],
    [
      "pods:\n- {name: x/a}\nsteps:\n- expect: ['x/a -> x/b:80 allow']\n",
      /steps\[0\]\.expect\[0\]: no pod x\/b/,
    ],
    [
      "pods:\n- {name: x/a}\nsteps:\n- expect: ['x/a => x/a:80 allow']\n",
      /is not 'FROM -> TO:PORT\[\/PROTO\] allow\|deny'/,
    ],
    [
      'pods:\n- {name: x/a}\nsteps:\n- apply: "kind: Secret\\nmetadata: {name: s}"\n',
      /steps\[0\]\.apply: document 0: kind 'Secret' is not/,
    ],
    ['steps:\n- delete: pod x/zz\n', /steps\[0\]\.delete: no pod x\/zz/],
  ];
  for (const [text, message] of bad) {
    await t.rejects(async () => runScenario(parseScenarioText(text, 'f.yaml'), modelDriver), message);
  }
});

t.test('world changes: labels, deletions, new pods reusing an old IP', async (t) => {
  const scenario = parseScenarioText(
    `
nodes: 2
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 1}
- {name: x/c, labels: {pod: c}, node: 2}
steps:
- apply: |
    kind: NetworkPolicy
    metadata: {name: p, namespace: x}
    spec:
      podSelector: {matchLabels: {pod: a}}
      ingress: [{from: [{ipBlock: {cidr: '\${ip:x/b}/32'}}]}]
- expect: ['x/b -> x/a:80 allow', 'x/c -> x/a:80 deny']
- delete: pod x/b
- add-pods: [{name: x/d, labels: {pod: d}, reuse-ip-of: x/b}]
- expect: ['x/d -> x/a:80 allow', 'x/c -> x/a:80 deny']
- label: {pod: x/a, set: {pod: z}}
- expect: ['x/c -> x/a:80 allow']
- label: {pod: x/a, set: {pod: a}}
- expect: ['x/c -> x/a:80 deny']
`,
    'w.yaml',
  );
  const report = await runScenario(scenario, modelDriver);
  t.equal(report.failed, 0);
  t.equal(report.passed, 6);
});
