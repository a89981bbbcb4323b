// The cluster driver's reading of drop reports without a cluster: what `tollgate drops --output json`
// prints (src/cli/drops.ts's formatReport) is what DropsFollower keeps, and the lab's waitForDrops matches a
// drops line through it (semantics 26). Root-free; the real CLI on a real cluster is drops-cli.ts.
import t from 'tap';
import { formatReport } from '../../src/cli/drops.ts';
import { waitForDrops } from '../../src/lab/drops.ts';
import { dropExpectations } from '../../src/scenario/drops.ts';
import { modelDriver } from '../../src/scenario/model.ts';
import { parseScenarioText } from '../../src/scenario/parse.ts';
import { expectProbes } from '../../src/scenario/probes.ts';
import type { Step } from '../../src/scenario/types.ts';
import { World } from '../../src/scenario/world.ts';
import { sampleReport } from '../_drop-reports.ts';
import { DropsFollower } from './drops-follower.ts';

const scenario = parseScenarioText(
  `
name: t
namespaces: [{name: x}]
pods:
- {name: x/a, labels: {pod: a}, node: 1}
- {name: x/b, labels: {pod: b}, node: 2}
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny-a, namespace: x}
    spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress]}
- expect: ['x/b -> x/a:80 deny']
- drops:
  - x/b -> x/a:80/TCP ingress x/deny-a
`,
  'f.yaml',
);
const AT = Date.parse('2026-12-01T18:00:00Z');

t.test('a line of tollgate drops --output json matches a drops line through the follower', async (t) => {
  const world = new World(scenario);
  world.applyStep(scenario.steps[0]!);
  const outcomes = await modelDriver.probe(
    world,
    expectProbes(world, scenario.steps[1] as Step & { kind: 'expect' }),
  );
  const expectations = dropExpectations(
    (scenario.steps[2] as Step & { kind: 'drops' }).lines,
    outcomes.map((outcome) => ({ outcome, at: AT, until: AT + 2000 })),
  );
  const clock = { at: AT + 2000 };
  const wait = (f: DropsFollower) =>
    waitForDrops(world, expectations, () => [f], {
      timeoutMs: 5000,
      now: () => clock.at,
      sleep: async (ms) => {
        clock.at += ms;
      },
    });

  const follower = new DropsFollower('hub', 'kubeconfig');
  const report = sampleReport({ at: new Date(AT + 300).toISOString() });
  t.same([report.node, report.dst.pod, report.policies], ['node-1', 'x/a', ['x/deny-a']], 'the sample fits');
  follower.add(formatReport(report, 'json'));
  follower.add('');
  t.equal(follower.reports.length, 1);
  t.ok(follower.seenAt.get(follower.reports[0]!)! > 0, 'its arrival time is kept');
  t.same(
    (await wait(follower)).map((o) => o.matched),
    [true],
  );

  const wrong = new DropsFollower('hub', 'kubeconfig');
  wrong.add(formatReport({ ...report, policies: ['x/other'] }, 'json'));
  wrong.add('tollgate drops: not json');
  const [outcome] = await wait(wrong);
  t.notOk(outcome!.matched, 'another policy set does not match');
  t.match(outcome!.explanation, /not JSON: tollgate drops: not json/, 'a line that is no report is told');
  t.equal(wrong.trouble(), 'tollgate drops was never started');
});
