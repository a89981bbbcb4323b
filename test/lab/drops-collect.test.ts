// The lab's collection of drop reports for `drops` steps, against synthetic agent log lines in the exact
// record form of src/nflog/report.ts (the kernel side is rep18's): a line passes when a report of the
// right node (ingress: the destination's, egress: the source's), no older than its probe, matches it.
// Root-free: no lab is built; the world and the probes are the model's.
import t from 'tap';
import { ReportLog, waitForDrops } from '../../src/lab/drops.ts';
import { type DropReport, REPORT_MESSAGE } from '../../src/nflog/report.ts';
import { type DropExpectation, dropExpectations } from '../../src/scenario/drops.ts';
import { modelDriver } from '../../src/scenario/model.ts';
import { parseScenarioText } from '../../src/scenario/parse.ts';
import { expectProbes, type ProbeOutcome } from '../../src/scenario/probes.ts';
import type { Step } from '../../src/scenario/types.ts';
import { World } from '../../src/scenario/world.ts';
import { reportLogLine, sampleReport } from '../_drop-reports.ts';

const scenario = parseScenarioText(
  `
name: t
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 2}
hosts: [{name: backup, ip: 203.0.113.10, ports: [{port: 80}]}]
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny-a, namespace: x}
    spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress, Egress]}
- expect: ['x/b -> x/a:80 deny', 'x/a -> host/backup:80 deny']
- drops:
  - x/b -> x/a:80/TCP ingress x/deny-a
  - x/a -> host/backup:80/TCP egress x/deny-a
`,
  'f.yaml',
);

const PROBED_AT = Date.parse('2026-12-01T18:00:00Z');

async function setUp(): Promise<{ world: World; expectations: DropExpectation[] }> {
  const world = new World(scenario);
  world.applyStep(scenario.steps[0]!);
  const probes = expectProbes(world, scenario.steps[1] as Step & { kind: 'expect' });
  const outcomes: ProbeOutcome[] = await modelDriver.probe(world, probes);
  const drops = scenario.steps[2] as Step & { kind: 'drops' };
  return {
    world,
    expectations: dropExpectations(
      drops.lines,
      outcomes.map((outcome) => ({ outcome, at: PROBED_AT, until: PROBED_AT + 2000 })),
    ),
  };
}

const logLine = reportLogLine;
const ingress = (o: Partial<DropReport> = {}): DropReport =>
  sampleReport({ at: new Date(PROBED_AT + 300).toISOString(), ...o });
const egress = (o: Partial<DropReport> = {}): DropReport => ({
  ...ingress(),
  direction: 'egress',
  src: { address: '10.244.1.10', pod: 'x/a' },
  dst: { address: '203.0.113.10' },
  ...o,
});

/** A fake clock: each pause moves it on and may deliver lines that the agents log meanwhile. */
function clock(onPause: (at: number) => void = () => {}, start = 0) {
  let at = start;
  return {
    now: () => at,
    sleep: async (ms: number) => {
      at += ms;
      onPause(at);
    },
    get at() {
      return at;
    },
  };
}

t.test('the layout names the nodes as the reports do', async (t) => {
  const { world } = await setUp();
  t.equal(world.node(1).name, 'node-1', 'if this fails, fix the node names in this test');
  t.equal(world.podIp4(world.pods.get('x/a')!), '10.244.1.10');
});

t.test('every line matched by a report of the right node: passes without waiting', async (t) => {
  const { world, expectations } = await setUp();
  const n1 = new ReportLog();
  n1.add('{"level":30,"msg":"synced"}');
  n1.add('not json at all');
  n1.add(logLine(ingress()));
  n1.add(logLine(egress()));
  const c = clock();
  const out = await waitForDrops(world, expectations, () => [n1], { timeoutMs: 5000, ...c });
  t.same(
    out.map((o) => o.matched),
    [true, true],
  );
  t.equal(c.at, 0, 'no wait');
});

t.test('a report that arrives later is waited for, within the limit', async (t) => {
  const { world, expectations } = await setUp();
  const n1 = new ReportLog();
  n1.add(logLine(egress()));
  const c = clock((at) => {
    if (at === 1200) n1.add(logLine(ingress()));
  });
  const out = await waitForDrops(world, expectations, () => [n1], { timeoutMs: 5000, ...c });
  t.same(
    out.map((o) => o.matched),
    [true, true],
  );
  t.equal(c.at, 1200, 'stopped waiting as soon as it came');
});

t.test('wrong node, direction, policies, kind or an older report: not matched, explained', async (t) => {
  const { world, expectations } = await setUp();
  const wrong = [
    ingress({ node: 'node-2' }), // ingress is the destination's node
    ingress({ direction: 'egress' }),
    ingress({ policies: ['x/deny-a', 'x/other'] }),
    ingress({ kind: 'would-deny' }),
    ingress({ at: new Date(PROBED_AT - 5000).toISOString() }), // before its probe
    ingress({ at: new Date(PROBED_AT + 2000 + 5001).toISOString() }), // over 5 s after its step
    ingress({ port: 81 }),
    ingress({ src: { address: '10.244.2.10' } }), // a pod's report must name the pod
  ];
  for (const r of wrong) {
    const log = new ReportLog();
    log.add(logLine(r));
    const c = clock();
    const [first] = await waitForDrops(world, expectations.slice(0, 1), () => [log], {
      timeoutMs: 5000,
      ...c,
    });
    t.equal(first?.matched, false, JSON.stringify(r));
    t.ok(c.at >= 5000, 'waited the whole limit');
    t.match(first?.explanation, /no matching report from node-1's agent within 5000 ms/);
  }
  const log = new ReportLog();
  log.add(logLine(ingress({ node: 'node-2' })));
  const [o] = await waitForDrops(world, expectations.slice(0, 1), () => [log], {
    timeoutMs: 100,
    ...clock(),
  });
  t.match(
    o?.explanation,
    /reports about these two ends: x\/b -> x\/a:80\/TCP ingress x\/deny-a \(node node-2,/,
  );
});

t.test('probes whose allowance is long over: one look, no wait', async (t) => {
  const { world, expectations } = await setUp();
  const c = clock(() => {}, PROBED_AT + 60_000);
  const out = await waitForDrops(world, expectations, () => [new ReportLog()], { timeoutMs: 5000, ...c });
  t.same(
    out.map((o) => o.matched),
    [false, false],
  );
  t.equal(c.at, PROBED_AT + 60_000, 'nothing can still count, so nothing is waited for');
});

t.test(
  'a non-pod end matches by any of its addresses; a report record that does not parse is shown',
  async (t) => {
    const { world, expectations } = await setUp();
    const log = new ReportLog();
    log.add(logLine(egress({ dst: { address: '2001:db8:203:0:113::10' } })));
    log.add(JSON.stringify({ level: 30, msg: REPORT_MESSAGE, report: { kind: 'deny' } }));
    const out = await waitForDrops(world, expectations, () => [log], { timeoutMs: 100, ...clock() });
    t.equal(out[1]?.matched, true, 'the host by its IPv6 address');
    t.equal(out[0]?.matched, false);
    t.match(out[0]?.explanation, /a report record that did not parse: .*lacks kind, direction/);
    t.equal(log.reports.length, 1);
  },
);
