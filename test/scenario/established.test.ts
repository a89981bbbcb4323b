// The established-connection steps (../shared/scenarios/README.md "Established connections", semantics
// point 16) in model mode: `connect`, `connections` and the `established` header parse (bad input named by
// field), the model cuts iff the header says cut and the current policies deny, and our scenario files
// (test/scenarios/established) pass while the deliberately wrong ones fail where they are wrong.
import { join } from 'node:path';
import t from 'tap';
import { modelDriver } from '../../src/scenario/model.ts';
import { loadScenario, parseScenarioText } from '../../src/scenario/parse.ts';
import { runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { ESTABLISHED_DIR, establishedFiles } from './_established.ts';

const dir = ESTABLISHED_DIR;

const head = `name: f
nodes: 2
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 2}
`;
const parse = (top: string, steps: string) => parseScenarioText(`${head}${top}steps:\n${steps}`, 'f.yaml');

t.test('connect, connections and established parse; keep is the default', async (t) => {
  const s = parse(
    'established: cut\n',
    "- connect: [{name: c1, from: x/b, to: x/a, port: 80}]\n- connections: ['c1 cut', ' c1  alive ']\n",
  );
  t.equal(s.established, 'cut');
  t.same(s.steps[0], {
    index: 0,
    where: 'f.yaml: steps[0].connect',
    kind: 'connect',
    connections: [{ name: 'c1', from: 'x/b', to: 'x/a', port: 80 }],
  });
  t.match(s.steps[1], {
    kind: 'connections',
    checks: [
      { name: 'c1', expect: 'cut' },
      { name: 'c1', expect: 'alive' },
    ],
  });
  t.equal(parse('', "- expect: ['x/b -> x/a:80 allow']\n").established, 'keep');
});

t.test('bad input names the field', async (t) => {
  const bad: [string, string, RegExp][] = [
    [
      'established: sometimes\n',
      "- expect: ['x/b -> x/a:80 allow']\n",
      /f\.yaml: established: must be keep or cut/,
    ],
    ['', '- connect: []\n', /steps\[0\]\.connect: must be a non-empty list/],
    [
      '',
      '- connect: [{name: c1, from: x/b, to: x/a}]\n',
      /steps\[0\]\.connect\[0\]\.port: must be a port number/,
    ],
    [
      '',
      '- connect: [{name: c1, from: x/b, to: x/a, port: 80, proto: UDP}]\n',
      /connect\[0\]\.proto: unknown field/,
    ],
    [
      '',
      '- connect: [{name: C 1, from: x/b, to: x/a, port: 80}]\n',
      /connect\[0\]\.name: 'C 1' is not a name/,
    ],
    [
      '',
      '- connect: [{name: c1, from: b, to: x/a, port: 80}]\n',
      /connect\[0\]\.from: 'b' is not namespace\/name/,
    ],
    [
      '',
      '- connect: [{name: c1, from: x/b, to: x/a, port: 80}, {name: c1, from: x/a, to: x/b, port: 80}]\n',
      /connect\[1\]\.name: 'c1' twice/,
    ],
    ['', "- connections: ['c1 gone']\n", /steps\[0\]\.connections\[0\]: must be 'NAME alive' or 'NAME cut'/],
  ];
  for (const [top, steps, message] of bad) t.throws(() => parse(top, steps), { code: 'E_USAGE', message });
  // Run-time checks: an unknown connection, a name opened twice, a connection the policies deny.
  const unknown = parse('', "- connections: ['c9 alive']\n");
  await t.rejects(runScenario(unknown, modelDriver), /steps\[0\]\.connections\[0\]: no connection c9/);
  const twice = parse(
    '',
    '- connect: [{name: c1, from: x/b, to: x/a, port: 80}]\n- connect: [{name: c1, from: x/b, to: x/a, port: 81}]\n',
  );
  await t.rejects(runScenario(twice, modelDriver), /steps\[1\]\.connect\[0\]: connection c1 is already open/);
});

t.test('a connect the policies deny fails the step; the model says why', async (t) => {
  const s = parse(
    '',
    `- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: closed, namespace: x}
    spec: {podSelector: {matchLabels: {pod: a}}, ingress: []}
- connect: [{name: c1, from: x/b, to: x/a, port: 80}]
`,
  );
  const report = await runScenario(s, modelDriver);
  t.equal(report.failed, 1);
  t.match(
    formatScenarioReport(report, { matrices: false }),
    /x\/b -> x\/a:80\/TCP: expected connected, got not connected\n\s+a connection must be allowed\n\s+DENY pod x\/b/,
  );
});

for (const file of establishedFiles()) {
  t.test(`model: established/${file.slice(dir.length + 1)}`, async (t) => {
    const report = await runScenario(loadScenario(file), modelDriver);
    t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
    const checks = report.steps.filter((s) => s.step.kind === 'connections').flatMap((s) => s.outcomes);
    t.ok(checks.length >= 2, `${checks.length} connection checks`);
  });
}

for (const [name, text] of [
  [
    'keep-expects-cut.yaml',
    /c1 \(x\/b -> x\/a:80\/TCP\): expected cut, got alive\n\s+model: alive \(established: keep/,
  ],
  [
    'cut-expects-alive.yaml',
    /c1 \(x\/b -> x\/a:80\/TCP\): expected alive, got cut\n\s+model: cut \(established: cut, and the current policies deny it\)/,
  ],
] as const) {
  t.test(`model: established/wrong/${name} fails where it is wrong`, async (t) => {
    const report = await runScenario(loadScenario(join(dir, 'wrong', name)), modelDriver);
    t.equal(report.failed, 1);
    t.match(formatScenarioReport(report, { matrices: false }), text);
  });
}
