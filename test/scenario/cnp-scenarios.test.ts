// The ClusterNetworkPolicy scenarios (test/scenarios/cnp, modelled on the upstream conformance tests) in
// model mode: each passes, and each fails when only NetworkPolicies are evaluated (so it tests the tiers).
// The lab does not enforce ClusterNetworkPolicies yet: its drivers refuse such a scenario up front.
import { join } from 'node:path';
import t from 'tap';
import { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import { LabScenarioDriver } from '../../src/lab/scenario.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { modelDriver, probeFlow } from '../../src/scenario/model.ts';
import { loadScenario, parseScenarioText } from '../../src/scenario/parse.ts';
import { runScenario, type ScenarioDriver } from '../../src/scenario/probes.ts';
import { REPO, yamlBelow } from '../_corpus.ts';

const DIR = join(REPO, 'test/scenarios/cnp');
const files = yamlBelow(DIR);

/** Which file models which upstream conformance test (network-policy-api conformance/tests). */
const MODELS: Record<string, string[]> = {
  CNPAdminTierIngressTCP: ['c-admin-ingress-tcp'],
  CNPAdminTierIngressUDP: ['c-admin-ingress-udp'],
  CNPAdminTierIngressSCTP: ['c-admin-ingress-sctp'],
  CNPAdminTierEgressTCP: ['c-admin-egress-tcp'],
  CNPAdminTierEgressUDP: ['c-admin-egress-udp'],
  CNPAdminTierEgressSCTP: ['c-admin-egress-sctp'],
  CNPAdminTierGress: ['c-admin-gress'],
  CNPAdminTierIntegration: ['c-admin-integration'],
  CNPAdminTierPriorityField: ['c-admin-priority'],
  CNPAdminTierEgressInlineCIDRPeers: ['c-admin-networks'],
  CNPAdminTierIngressNamedPort: ['c-admin-named-ports'],
  CNPAdminTierEgressNamedPort: ['c-admin-named-ports'],
  CNPAdminTierEgressNodePeers: ['c-admin-node-peers'],
  CNPBaselineTierIngressTCP: ['c-baseline-ingress-tcp'],
  CNPBaselineTierIngressUDP: ['c-baseline-ingress-udp'],
  CNPBaselineTierIngressSCTP: ['c-baseline-ingress-sctp'],
  CNPBaselineTierEgressTCP: ['c-baseline-egress-tcp'],
  CNPBaselineTierEgressUDP: ['c-baseline-egress-udp'],
  CNPBaselineTierEgressSCTP: ['c-baseline-egress-sctp'],
  CNPBaselineTierGress: ['c-baseline-gress'],
  CNPBaselineTierEgressInlineCIDRPeers: ['c-baseline-networks'],
  CNPBaselineTierIngressNamedPort: ['c-baseline-named-ports'],
  CNPBaselineTierEgressNamedPort: ['c-baseline-named-ports'],
  CNPBaselineTierEgressNodePeers: ['c-baseline-node-peers'],
};
/** Our own, for what the conformance suite does not check. */
const OWN = ['c-labels-and-deletion', 'c-port-ranges'];

t.test('every conformance test is modelled, and every file is listed', async (t) => {
  t.equal(Object.keys(MODELS).length, 24, 'the 24 upstream tests');
  const named = new Set([...Object.values(MODELS).flat(), ...OWN]);
  t.same([...named].sort(), files.map((f) => f.replace(/\.yaml$/, '')).sort());
  for (const [test, list] of Object.entries(MODELS))
    for (const f of list)
      t.match(loadScenario(join(DIR, `${f}.yaml`)).description, test, `${f} names ${test}`);
});

/** The model as it was before the tiers: NetworkPolicies alone decide (the "without the fix" driver). */
const networkPoliciesOnly: ScenarioDriver = {
  enforcesClusterPolicies: true,
  async sync() {},
  async probe(world, probes) {
    const index = new ClusterIndex(world.state());
    return probes.map((probe) => {
      const flow = probeFlow(world, index, probe);
      return { probe, allowed: evaluate(index, flow).allowed, explanation: '' };
    });
  },
};

for (const file of files) {
  t.test(`model: ${file}`, async (t) => {
    const report = await runScenario(loadScenario(join(DIR, file)), modelDriver);
    const wrong = report.steps.flatMap((s) => s.outcomes.filter((o) => o.allowed !== o.probe.expectAllow));
    t.equal(
      report.failed,
      0,
      `no failing expectation${wrong.map((o) => `\n${o.probe.text}\n${o.explanation}`).join('')}`,
    );
    t.ok(report.passed > 0, `${report.passed} expectations hold`);
    const without = await runScenario(loadScenario(join(DIR, file)), networkPoliciesOnly);
    t.ok(without.failed > 0, `${without.failed} expectations fail when only NetworkPolicies count`);
  });
}

t.test('a driver that does not enforce ClusterNetworkPolicies refuses them before starting', async (t) => {
  // Both lab drivers enforce them now (the netns lab and the API lab: test/lab*/cnp-scenarios.test.ts).
  for (const driver of [new LabScenarioDriver(), new ApiScenarioDriver()])
    t.equal(driver.enforcesClusterPolicies, true, `${driver.constructor.name} enforces them`);
  let started = false;
  const plain: ScenarioDriver = {
    start: async () => {
      started = true;
    },
    sync: async () => {},
    probe: async () => [],
  };
  await t.rejects(runScenario(loadScenario(join(DIR, files[0]!)), plain), {
    message: /steps\[0\]\.apply: ClusterNetworkPolicy is not enforced by the lab yet/,
  });
  t.equal(started, false, 'refused before start');
});

const tiny = (steps: string) =>
  parseScenarioText(
    `name: tiny\nnamespaces: [{name: x}]\npods: [{name: x/a, labels: {pod: a}}, {name: x/b}]\nsteps:\n${steps}`,
    'tiny.yaml',
  );
const guard = `
- apply: |
    apiVersion: policy.networking.k8s.io/v1alpha2
    kind: ClusterNetworkPolicy
    metadata: {name: guard}
    spec:
      tier: Admin
      priority: 1
      subject: {pods: {podSelector: {matchLabels: {pod: a}}}}
      ingress: [{action: Deny, from: [{namespaces: {}}]}]`;

t.test('apply and delete: clusternetworkpolicy NAME in the model', async (t) => {
  const report = await runScenario(
    tiny(
      `${guard}\n- expect: ['x/b -> x/a:80 deny']\n- delete: clusternetworkpolicy guard\n- expect: ['x/b -> x/a:80 allow']`,
    ),
    modelDriver,
  );
  t.same([report.passed, report.failed], [2, 0]);
  const failing = await runScenario(tiny(`${guard}\n- expect: ['x/b -> x/a:80 allow']`), modelDriver);
  t.match(
    failing.steps[0]!.outcomes[0]!.explanation,
    /ingress of x\/a: \[Admin\] guard rule 0 \(from\[0\]\) Deny: denied/,
  );
  await t.rejects(runScenario(tiny('- delete: clusternetworkpolicy nope'), modelDriver), {
    message: /steps\[0\]\.delete: no clusternetworkpolicy nope/,
  });
  await t.rejects(
    runScenario(tiny(guard.replace('{name: guard}', '{name: guard, namespace: x}')), modelDriver),
    {
      message: /cluster-scoped: remove metadata.namespace/,
    },
  );
  t.throws(() => tiny('- delete: clusternetworkpolicies guard'), /'clusternetworkpolicy NAME'/);
});

t.test('an invalid ClusterNetworkPolicy in a scenario fails closed and says why', async (t) => {
  const world = await runScenario(
    tiny(
      `${guard.replace('action: Deny', 'action: Pass').replace('{namespaces: {}}', '{}')}\n- expect: ['x/b -> x/a:80 deny']`,
    ),
    modelDriver,
  );
  t.equal(world.failed, 0, 'an invalid Pass rule denies');
});
