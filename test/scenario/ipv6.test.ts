// Scenario probes over IPv6 (../shared/scenarios/README.md "Address family"): `family` on expect and
// matrix steps parses (bad values named by field), `both` probes each line once per family, IPv6 probes
// use every endpoint's IPv6 address (pods, outside hosts, nodes) and say so in reports; the model decides
// the project's IPv6 fixtures, and the deliberately wrong ones fail on exactly the family that is wrong.
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { validateSpec } from '../../src/lab/lab.ts';
import { labSpecOf } from '../../src/lab/scenario.ts';
import { endpointAddress, modelDriver } from '../../src/scenario/model.ts';
import { loadScenario, parseScenarioText } from '../../src/scenario/parse.ts';
import { expandMatrix, expectProbes, runScenario } from '../../src/scenario/probes.ts';
import { formatScenarioReport } from '../../src/scenario/report.ts';
import { hostIp6, World } from '../../src/scenario/world.ts';

const fixtures = resolve(import.meta.dirname, 'fixtures/ipv6');
const wrong = join(fixtures, 'wrong');
const yamls = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));

const head = `name: f
nodes: 2
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 2}
- {name: x/h, node: 2, hostNetwork: true, ports: [{port: 8080}]}
hosts:
- {name: backup, ip: 203.0.113.10, ports: [{port: 80}]}
`;
const parse = (steps: string) => parseScenarioText(`${head}steps:\n${steps}`, 'f.yaml');

t.test('family parses on expect and matrix steps, ipv4 by default', async (t) => {
  const s = parse(`- expect: ['x/a -> x/b:80 allow']
- expect: {probes: ['x/a -> x/b:80 allow']}
- expect: {family: ipv6, probes: ['x/a -> x/b:80 allow']}
- expect: {family: both, within: 2s, probes: ['x/a -> x/b:80 allow']}
- matrix: {port: 80, rules: []}
- matrix: {port: 80, family: both, rules: ['deny */* -> x/a']}
`);
  t.same(
    s.steps.map((x) => (x as { family?: string }).family),
    ['ipv4', 'ipv4', 'ipv6', 'both', 'ipv4', 'both'],
  );
});

t.test('a bad family, or an unknown matrix field, is an error naming the field', async (t) => {
  t.throws(() => parse(`- expect: {family: ipv5, probes: ['x/a -> x/b:80 allow']}\n`), {
    message: /f\.yaml: steps\[0\]\.expect\.family: must be ipv4, ipv6 or both \(got "ipv5"\)/,
  });
  t.throws(() => parse(`- expect: {family: 6, probes: ['x/a -> x/b:80 allow']}\n`), {
    message: /steps\[0\]\.expect\.family: must be ipv4, ipv6 or both \(got 6\)/,
  });
  t.throws(() => parse(`- matrix: {port: 80, family: IPv6, rules: []}\n`), {
    message: /steps\[0\]\.matrix\.family: must be ipv4, ipv6 or both/,
  });
  // A misspelt family must not silently fall back to IPv4.
  t.throws(() => parse(`- matrix: {port: 80, famliy: ipv6, rules: []}\n`), {
    message: /steps\[0\]\.matrix\.famliy: unknown field/,
  });
  t.throws(() => parseScenarioText(`name: f\nhosts: [{name: h, ip: '2001:db8::5'}]\n`, 'f.yaml'), {
    message: /f\.yaml: hosts\[0\]\.ip: '2001:db8::5' is not an IPv4 address/,
  });
});

t.test('every endpoint has an IPv6 address; substitutions give them', async (t) => {
  const s = parse("- expect: ['x/a -> x/b:80 allow']\n");
  const world = new World(s);
  t.equal(hostIp6('203.0.113.10'), '2001:db8:203:0:113::10');
  t.equal(world.host('backup', 'here').ip6, '2001:db8:203:0:113::10');
  t.equal(
    world.substitute(
      `\${ip6:x/a} \${ip6:x/h} \${host-ip6:backup} \${node-ip6:2} \${node-ip:2} \${host-ip:backup}`,
      'here',
    ),
    'fd00:10:244:1::10 2001:db8::2 2001:db8:203:0:113::10 2001:db8::2 198.51.100.2 203.0.113.10',
  );
  t.throws(() => world.substitute(`\${node-ip6:x}`, 'here'), { message: /here: 'x' is not a node number/ });
  t.throws(() => world.substitute(`\${host-ip6:nope}`, 'here'), { message: /here: no host nope/ });
  t.equal(endpointAddress(world, { kind: 'node', index: 1 }, 6), '2001:db8::1');
  t.equal(endpointAddress(world, { kind: 'host', name: 'backup' }, 6), '2001:db8:203:0:113::10');
  t.equal(endpointAddress(world, { kind: 'pod', key: 'x/b' }, 6), 'fd00:10:244:2::10');
  // The lab is built from the same world: it must use the very same addresses (and accept them).
  const spec = labSpecOf(world);
  t.same(
    spec.hosts.map((h) => [h.ip4, h.ip6]),
    [['203.0.113.10', '2001:db8:203:0:113::10']],
  );
  t.same(
    spec.pods.filter((p) => !p.hostNetwork).map((p) => [p.key, p.ip6]),
    [
      ['x/a', 'fd00:10:244:1::10'],
      ['x/b', 'fd00:10:244:2::10'],
    ],
  );
  t.doesNotThrow(() => validateSpec(spec));
  t.throws(() => validateSpec({ ...spec, hosts: [{ ...spec.hosts[0]!, ip6: '2001:db8::10' }] }), {
    message: /host backup: ip6 2001:db8::10 is not a usable address in 2001:db8:203::\/64/,
  });
});

t.test('both probes each line and each matrix cell once per family, IPv6 named in the text', async (t) => {
  const s = parse(`- expect: {family: both, probes: ['x/a -> host/backup:80 allow', 'node/1 -> x/b:80 deny']}
- expect: {family: ipv6, probes: ['x/a -> x/b:80 allow']}
- matrix: {port: 80, family: both, rules: []}
`);
  const world = new World(s);
  const both = expectProbes(world, s.steps[0] as never);
  t.same(
    both.map((p) => [p.text, p.family]),
    [
      ['x/a -> host/backup:80/TCP', 4],
      ['x/a -> host/backup:80/TCP over IPv6', 6],
      ['node/1 -> x/b:80/TCP', 4],
      ['node/1 -> x/b:80/TCP over IPv6', 6],
    ],
  );
  t.same(
    expectProbes(world, s.steps[1] as never).map((p) => p.family),
    [6],
  );
  const m = expandMatrix(world, s.steps[2] as never);
  t.same(
    m.probes.map((p) => p.text),
    ['x/a -> x/b:80/TCP', 'x/a -> x/b:80/TCP over IPv6', 'x/b -> x/a:80/TCP', 'x/b -> x/a:80/TCP over IPv6'],
  );
});

for (const file of yamls(fixtures)) {
  t.test(`model: ${file.slice(fixtures.length + 1)}`, async (t) => {
    const report = await runScenario(loadScenario(file), modelDriver);
    t.equal(report.failed, 0, formatScenarioReport(report, { matrices: true }));
    const v6 = report.steps.flatMap((s) => s.outcomes).filter((o) => o.probe.family === 6);
    t.ok(v6.length >= 5, `${v6.length} of ${report.passed} expectations are IPv6 probes`);
  });
}

t.test('model: ipv6/faults/tamper-both.yaml (the faults skipped, both families checked)', async (t) => {
  const report = await runScenario(loadScenario(join(fixtures, 'faults/tamper-both.yaml')), modelDriver);
  t.equal(report.failed, 0, formatScenarioReport(report, { matrices: false }));
  t.equal(report.passed, 18);
});

t.test('family both fails when only IPv6 is wrong, naming the IPv6 probe (point 6)', async (t) => {
  const report = await runScenario(loadScenario(join(wrong, 'both-ipv4-only-block.yaml')), modelDriver);
  t.equal(report.passed, 1, 'the IPv4 probe holds');
  t.equal(report.failed, 1, 'the IPv6 probe fails');
  const text = formatScenarioReport(report, { matrices: false });
  t.match(text, /^FAIL wrong-both-ipv4-only-block: 1\/2 expectations$/m);
  t.match(text, /host\/backup -> x\/b:80\/TCP over IPv6: expected allow, got deny/);
  t.match(text, /DENY external address 2001:db8:203:0:113::10 -> pod x\/b \(fd00:10:244:2::10\)/);
  t.notMatch(text, /host\/backup -> x\/b:80\/TCP: expected/, 'the IPv4 probe is not reported');
});

t.test('a both matrix fails when only IPv4 is wrong, the cell marked (point 6)', async (t) => {
  const report = await runScenario(loadScenario(join(wrong, 'both-ipv6-only-matrix.yaml')), modelDriver);
  t.equal(report.failed, 1, 'only x/b -> x/a over IPv4 is wrong');
  t.equal(report.passed, 3);
  const text = formatScenarioReport(report, { matrices: false });
  t.match(text, /steps\[1\]\.matrix \(port 80\/TCP, IPv4 and IPv6\):/);
  t.match(text, /x\/b {2}! {3}-/, 'the cell is marked wrong although its IPv6 probe holds');
  t.match(text, /x\/b -> x\/a:80\/TCP: expected allow, got deny/);
});
