// The pure parts of the real-cluster scenario driver, without a cluster: the agnhost pods it makes for the
// corpus, label patches, placeholders with real addresses, skip reasons, metrics and probe verdicts.
import t from 'tap';
import { loadScenario, parseScenarioText } from '../../src/scenario/parse.ts';
import { expandMatrix, parseProbe, type ScenarioReport } from '../../src/scenario/probes.ts';
import { World } from '../../src/scenario/world.ts';
import { SHARED_SCENARIOS, scenarioCorpus } from '../_corpus.ts';
import { judgeProbe, probeArgv, withoutSkipped } from './scenario-driver.ts';
import {
  ClusterScenarioError,
  caughtUp,
  faultSkipReason,
  labelsPatch,
  livePodsByNode,
  metricValue,
  nodeSyncState,
  POD_ANNOTATION,
  parseMetrics,
  podManifest,
  probeSkipReason,
  scenarioLabels,
  scenarioSkipReason,
  substituteReal,
} from './scenario-plan.ts';

const IMAGE = 'registry.lab/agnhost:2.55';
/** A scenario placeholder `${kind:arg}` (written so, since a plain string with it reads like a template). */
const ph = (kind: string, arg: string) => `$${'{'}${kind}:${arg}}`;

const SMALL = `
name: small
description: test
namespaces:
- name: x
  labels: {ns: x}
pods:
- name: x/a
  labels: {pod: a}
  node: 2
  ports:
  - {name: http, port: 80, protocol: TCP}
  - {name: dns, port: 53, protocol: UDP}
  - {name: sig, port: 9000, protocol: SCTP}
  - {port: 8080, protocol: TCP}
- name: x/u
  labels: {pod: u}
  ports:
  - {port: 53, protocol: UDP}
- name: x/d
  labels: {pod: d}
hosts:
- name: backup
  ip: 203.0.113.10
  ports: [{port: 80, protocol: TCP}]
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: p, namespace: x}
    spec:
      podSelector: {}
      egress:
      - to: [{ipBlock: {cidr: "\${ip:x/a}/32"}}, {ipBlock: {cidr: "\${host-ip:backup}/32"}}, {ipBlock: {cidr: "\${node-ip:1}/32"}}]
- expect: ['x/a -> x/d:80 deny', 'host/backup -> x/a:80 deny', 'x/d -> x/a:9000/SCTP deny', 'node/2 -> x/a:80 allow']
`;

t.test('a pod is agnhost porter serving every TCP and UDP port it declares, on its node', async (t) => {
  const world = new World(parseScenarioText(SMALL, 'small.yaml'));
  const m = podManifest(world.pod('x/a', 't'), 'worker-2', IMAGE);
  t.same(m.metadata, {
    name: 'a',
    namespace: 'x',
    labels: { pod: 'a' },
    annotations: { [POD_ANNOTATION]: m.metadata.annotations[POD_ANNOTATION] },
  });
  t.equal(m.spec.nodeName, 'worker-2', 'pinned to the node the scenario names');
  const [c] = m.spec.containers as Record<string, unknown>[];
  t.same(c!.args, ['porter']);
  t.equal(c!.image, IMAGE);
  t.same(
    c!.env,
    [
      { name: 'SERVE_PORT_80', value: 'x/a 80/TCP' },
      { name: 'SERVE_UDP_PORT_53', value: 'x/a 53/UDP' },
      { name: 'SERVE_PORT_8080', value: 'x/a 8080/TCP' },
    ],
    'TCP and UDP served; SCTP not (porter would exit without kernel SCTP)',
  );
  t.same(
    c!.ports,
    [
      { name: 'http', containerPort: 80, protocol: 'TCP' },
      { name: 'dns', containerPort: 53, protocol: 'UDP' },
      { name: 'sig', containerPort: 9000, protocol: 'SCTP' },
      { containerPort: 8080, protocol: 'TCP' },
    ],
    'every port declared with its name, so named ports in policies resolve',
  );
  t.same(c!.readinessProbe, { tcpSocket: { port: 80 }, periodSeconds: 1, failureThreshold: 1 });

  const u = podManifest(world.pod('x/u', 't'), 'worker-1', IMAGE);
  t.equal(
    (u.spec.containers as Record<string, unknown>[])[0]!.readinessProbe,
    undefined,
    'UDP only: no TCP readiness',
  );

  const d = podManifest(world.pod('x/d', 't'), 'worker-1', IMAGE);
  t.same(
    ((d.spec.containers as Record<string, unknown>[])[0]!.env as { name: string }[]).map((e) => e.name),
    ['SERVE_PORT_80', 'SERVE_PORT_81', 'SERVE_UDP_PORT_80', 'SERVE_UDP_PORT_81'],
    'a pod without ports serves the standard set',
  );

  const moved = podManifest(world.pod('x/a', 't'), 'worker-1', IMAGE);
  t.not(
    moved.metadata.annotations[POD_ANNOTATION],
    m.metadata.annotations[POD_ANNOTATION],
    'another node: another pod',
  );
  const relabelled = world.pod('x/a', 't');
  relabelled.labels.extra = 'yes';
  t.equal(
    podManifest(relabelled, 'worker-2', IMAGE).metadata.annotations[POD_ANNOTATION],
    m.metadata.annotations[POD_ANNOTATION],
    'labels are patched in place: not part of the fingerprint',
  );
});

t.test('every corpus pod makes a pod the API server accepts, on a two-node cluster', async (t) => {
  const problems: string[] = [];
  let pods = 0;
  for (const { label, path } of scenarioCorpus()) {
    const world = new World(loadScenario(path));
    const skip = scenarioSkipReason(world.scenario, 2);
    if (skip) problems.push(`${label}: ${skip}`);
    for (const p of world.labPods()) {
      const [c] = podManifest(p, 'n', IMAGE).spec.containers as {
        ports: { name?: string; containerPort: number; protocol: string }[];
      }[];
      const names = c!.ports.flatMap((x) => (x.name ? [x.name] : []));
      // IANA_SVC_NAME: at most 15 characters, lower case letters, digits and '-', at least one letter.
      for (const n of names)
        if (!/^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/.test(n))
          problems.push(`${label}: ${p.key}: port name ${n}`);
      if (new Set(names).size !== names.length) problems.push(`${label}: ${p.key}: port names repeat`);
      const pairs = c!.ports.map((x) => `${x.containerPort}/${x.protocol}`);
      if (new Set(pairs).size !== pairs.length)
        problems.push(`${label}: ${p.key}: port/protocol pairs repeat`);
      pods++;
    }
  }
  t.same(problems, [], 'valid names, no repeated ports, no scenario needing more than two nodes');
  // examples/ alone has fewer pods; the team's corpus (when it is beside the clone) has many more.
  t.ok(pods > (SHARED_SCENARIOS ? 50 : 10), `${pods} pods checked`);
  t.match(
    scenarioSkipReason(
      parseScenarioText(SMALL.replace('description: test', 'description: test\nnodes: 3'), 's'),
      2,
    ),
    /needs 3 nodes/,
    'the check can fail',
  );
});

t.test('label patches: set, change, remove, nothing', async (t) => {
  t.same(labelsPatch({ a: '1', b: '2' }, { a: '1', b: '3', c: '4' }), { b: '3', c: '4' });
  t.same(
    labelsPatch({ a: '1', old: 'x' }, { a: '1' }),
    { old: null },
    'a removed label is null (merge patch)',
  );
  t.equal(labelsPatch({ a: '1' }, { a: '1' }), undefined, 'no change: no patch');
  t.same(
    scenarioLabels({ 'kubernetes.io/metadata.name': 'x', ns: 'x' }),
    { ns: 'x' },
    "the API server's own label is never patched",
  );
});

t.test('placeholders take the cluster addresses, not the layout', async (t) => {
  const world = new World(parseScenarioText(SMALL, 'small.yaml'));
  const real = {
    pod: (k: string) => (k === 'x/a' ? '10.244.0.7' : undefined),
    node: (i: number) => (i === 1 ? '198.51.100.11' : undefined),
  };
  t.equal(
    substituteReal(
      `a ${ph('ip', 'x/a')} h ${ph('host-ip', 'backup')} n ${ph('node-ip', '1')}`,
      world,
      real,
      'w',
    ),
    'a 10.244.0.7 h 203.0.113.10 n 198.51.100.11',
  );
  t.not(world.podIp4(world.pod('x/a', 't')), '10.244.0.7', 'the layout address would have been another');
  t.throws(
    () => substituteReal(ph('ip6', 'x/a'), world, real, 'w'),
    { code: 'E_CLUSTER_SKIP' },
    'no IPv6: skipped',
  );
  t.throws(
    () => substituteReal(ph('ip', 'x/u'), world, real, 'w'),
    { code: 'E_CLUSTER_STATE' },
    'a pod without an address',
  );
  t.throws(() => substituteReal(ph('ip', 'x/nope'), world, real, 'w'), /no pod x\/nope/);
});

t.test('what the real cluster cannot offer is skipped with the reason', async (t) => {
  const world = new World(parseScenarioText(SMALL, 'small.yaml'));
  const step = world.scenario.steps[1]!;
  if (step.kind !== 'expect') throw new Error('fixture');
  const probes = step.probes.map((l, i) => parseProbe(world, l, `e[${i}]`));
  t.same(
    probes.map((p) => probeSkipReason(p, false)),
    [
      undefined,
      'the cluster offers no outside hosts (host/ endpoints)',
      'SCTP probes are not run on the real cluster',
      undefined,
    ],
  );
  t.equal(probeSkipReason(probes[1]!, true), undefined, 'a cluster with outside hosts probes them');
  const v6 = parseProbe(world, step.probes[0]!, 'e[0]', 6);
  t.match(
    probeSkipReason(v6, true),
    /IPv6 probes are not run/,
    'an IPv6 probe is skipped, not probed over IPv4',
  );
  const three = parseScenarioText(
    `${SMALL.replace('description: test', 'description: test\nnodes: 3')}`,
    's.yaml',
  );
  t.equal(scenarioSkipReason(three, 2), 'needs 3 nodes, the cluster has 2');
  t.equal(scenarioSkipReason(three, 3), undefined);
  const sameIp = parseScenarioText(
    `${SMALL}- add-pods: [{name: x/e, labels: {pod: e}, same-ip-as: x/a}]\n`,
    's.yaml',
  );
  t.match(scenarioSkipReason(sameIp, 2), /same-ip-as/);
  const fault = parseScenarioText(`${SMALL}- tamper: {node: 1, nft: "flush ruleset"}\n`, 'f.yaml');
  t.match(faultSkipReason(fault.steps.at(-1)!), /tamper faults are not carried out/);
  t.equal(faultSkipReason(fault.steps[0]!), undefined, 'an apply is no fault');
});

t.test(
  'agent metrics: caught up only after a successful sync since the change with every live pod',
  async (t) => {
    const text = [
      '# HELP tollgate_programmed What the node table holds',
      '# TYPE tollgate_programmed gauge',
      'tollgate_programmed{what="chains"} 12',
      'tollgate_programmed{what="pods"} 4',
      'tollgate_sync_failures_consecutive 0',
      'tollgate_last_successful_sync_timestamp_seconds 1700000000.5',
      'tollgate_syncs_total{kind="full",result="ok"} 1',
      'tollgate_syncs_total{kind="diff",result="ok"} 6',
    ].join('\n');
    const samples = parseMetrics(text);
    t.equal(metricValue(samples, 'tollgate_syncs_total'), 7, 'summed over label sets');
    t.equal(metricValue(samples, 'tollgate_syncs_total', { kind: 'diff' }), 6);
    t.equal(metricValue(samples, 'tollgate_nothing'), undefined);
    const state = nodeSyncState(samples);
    t.same(state, { lastSuccessMs: 1700000000500, failures: 0, programmedPods: 4 });
    t.equal(caughtUp(state, 1700000000000, 4), undefined);
    t.match(caughtUp(state, 1700000001000, 4), /500 ms before the change/);
    t.match(caughtUp(state, 1700000000000, 5), /programs 4 pods, the API has 5/);
    t.match(caughtUp({ ...state, failures: 2 }, 1700000000000, 4), /2 failing syncs/);
    t.match(caughtUp(nodeSyncState([]), 0, 0), /no successful sync yet/);
  },
);

t.test('live pods per node: with an address, not hostNetwork, not finished or going', async (t) => {
  const pod = (name: string, node: string, extra: Record<string, unknown> = {}) => ({
    metadata: { name, namespace: 'x', ...(extra.deleting ? { deletionTimestamp: 'now' } : {}) },
    spec: { nodeName: node, hostNetwork: extra.hostNetwork === true },
    status: { phase: (extra.phase as string) ?? 'Running', ...(extra.noIp ? {} : { podIP: '10.244.0.9' }) },
  });
  const live = livePodsByNode([
    pod('a', 'n1'),
    pod('b', 'n1'),
    pod('c', 'n2'),
    pod('h', 'n2', { hostNetwork: true }),
    pod('p', 'n2', { noIp: true }),
    pod('d', 'n2', { deleting: true }),
    pod('s', 'n1', { phase: 'Succeeded' }),
  ]);
  t.same(
    [...live],
    [
      ['n1', 2],
      ['n2', 1],
    ],
  );
});

t.test('probe verdicts: refused/timeout deny, an answer allows, a broken probe throws', async (t) => {
  const r = (code: number, stderr = '') => ({ code, stdout: 'x/a 80/TCP', stderr });
  t.same(judgeProbe('TCP', r(0), 'p'), { ok: true, detail: 'x/a 80/TCP' });
  t.equal(judgeProbe('TCP', r(7, 'Connection refused'), 'p').ok, false);
  t.equal(judgeProbe('TCP', r(28, 'timed out'), 'p').ok, false);
  t.throws(() => judgeProbe('TCP', r(1, 'nsenter: cannot open'), 'p'), { code: 'E_CLUSTER_STATE' });
  t.equal(judgeProbe('UDP', r(3), 'p').ok, false);
  t.throws(() => judgeProbe('UDP', r(2), 'p'), ClusterScenarioError);
  t.same(probeArgv('TCP', '10.244.0.7', 80, 1500).slice(-1), ['http://10.244.0.7:80/']);
  t.same(probeArgv('UDP', '10.244.0.7', 53, 1500).slice(-3), ['10.244.0.7', '53', '1500']);
  t.throws(() => probeArgv('SCTP', '10.244.0.7', 9000, 1500), { code: 'E_CLUSTER_SKIP' });
});

t.test('skipped outcomes leave the failed count, never reach the passed one', async (t) => {
  const world = new World(parseScenarioText(SMALL, 'small.yaml'));
  const { probes } = expandMatrix(world, {
    index: 0,
    where: 'm',
    kind: 'matrix',
    family: 'ipv4',
    port: 80,
    protocol: 'TCP',
    rules: [],
  });
  const outcomes = probes.map((probe, i) => ({
    probe,
    allowed: i === 0 ? !probe.expectAllow : probe.expectAllow,
    explanation: undefined,
  }));
  const report: ScenarioReport = {
    scenario: world.scenario,
    steps: [{ step: world.scenario.steps[1]!, outcomes, matrixPods: undefined }],
    passed: outcomes.length - 1,
    failed: 1,
  };
  const skippedOne = outcomes[0]!;
  const { report: clean, skipped } = withoutSkipped(report, (o) => o === skippedOne);
  t.equal(skipped, 1);
  t.equal(clean.failed, 0);
  t.equal(clean.passed, outcomes.length - 1);
  t.equal(clean.steps[0]!.outcomes.length, outcomes.length - 1);
});

t.test(
  'udp-probe: an echo allows, a closed port is denied (3), bad arguments are an error (2)',
  async (t) => {
    const { createSocket } = await import('node:dgram');
    const { run } = await import('../../src/lab/exec.ts');
    const script = new URL('./udp-probe.ts', import.meta.url).pathname;
    // Loopback of this process only: nothing leaves the machine.
    const server = createSocket('udp4');
    server.on('message', (msg, from) => server.send(`echo ${msg.toString()}`, from.port, from.address));
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const port = server.address().port;
    const ok = await run([process.execPath, script, '127.0.0.1', String(port), '3000']);
    t.equal(ok.code, 0, ok.stderr);
    t.equal(ok.stdout.trim(), 'echo probe');
    server.close();
    const closed = await run([process.execPath, script, '127.0.0.1', String(port), '3000']);
    t.equal(closed.code, 3, `refused: ${closed.stderr.trim()}`);
    const bad = await run([process.execPath, script, '127.0.0.1', 'http']);
    t.equal(bad.code, 2);
  },
);

t.test(
  'the whole corpus through the driver on a stand-in cluster (the model as a perfect enforcer)',
  async (t) => {
    const { FakeCluster } = await import('./_fake-cluster.ts');
    const { ClusterScenarioDriver, runOnCluster } = await import('./scenario-driver.ts');
    const fake = new FakeCluster();
    const driver = new ClusterScenarioDriver(fake, {
      nodeExec: fake.nodeExec,
      convergeMs: 0,
      createRetryMs: 0,
    });
    const files = scenarioCorpus();
    let pods = 0;
    let expectedSkips = 0;
    for (const { label, path } of files) {
      const scenario = loadScenario(path);
      const world = new World(scenario);
      pods += world.labPods().length;
      for (const s of scenario.steps)
        if (s.kind === 'expect') expectedSkips += s.probes.filter((l) => /host\/|\/SCTP/.test(l)).length;
      const r = await runOnCluster(driver, label, scenario);
      t.equal(r.skippedScenario, undefined, `${label}: runs`);
      t.equal(
        r.failed,
        0,
        `${label}: ${r.failed} failed\n${r.report ? r.report.steps.flatMap((s) => s.outcomes.filter((o) => o.allowed !== o.probe.expectAllow).map((o) => `${o.probe.where} ${o.probe.text}: ${o.explanation}`)).join('\n') : ''}`,
      );
      t.ok(r.passed > 0, `${label}: ${r.passed} passed, ${r.skipped} skipped`);
      t.ok(
        r.skips.every((s) => /outside hosts|SCTP|IPv6 probes/.test(s.reason)),
        `${label}: only hosts, SCTP and IPv6 skipped`,
      );
    }
    t.ok(
      fake.podsCreated < pods / 2,
      `pods kept between scenarios: ${fake.podsCreated} created for ${pods} scenario pods`,
    );
    t.ok(expectedSkips > 0, `${expectedSkips} host/SCTP probes in the corpus`);
    t.ok(
      fake.calls.some((c) => c === 'apply -f -') &&
        fake.calls.filter((c) => c.startsWith('apply')).length > 1,
      'pods and policies applied',
    );
    await driver.close();
    t.same(
      [...fake.namespaces.keys()].sort(),
      ['default', 'kube-public', 'kube-system', 'tollgate-system'],
      'own namespaces removed',
    );
    t.same([...fake.pods.keys()], ['kube-system/coredns-7f9c'], "only the cluster's own pod is left");
    t.equal(fake.policies.size, 0, 'no policy left');
    t.same(
      fake.namespaces.get('default')!.metadata.labels,
      { 'kubernetes.io/metadata.name': 'default' },
      'labels restored',
    );
  },
);

t.test(
  'a cluster that does not enforce policies fails the scenarios (the driver reports, never hides)',
  async (t) => {
    const { FakeCluster } = await import('./_fake-cluster.ts');
    const { ClusterScenarioDriver, runOnCluster } = await import('./scenario-driver.ts');
    const fake = new FakeCluster({ ignorePolicies: true });
    // No retries: nothing converges later on a stand-in.
    const driver = new ClusterScenarioDriver(fake, {
      nodeExec: fake.nodeExec,
      convergeMs: 0,
      createRetryMs: 0,
    });
    const u01 = scenarioCorpus().find((f) => f.label.includes('u01-default-deny-ingress'));
    const seed = scenarioCorpus().find((f) => f.label.includes('seed-db-only-from-api'));
    for (const f of [u01, seed]) {
      if (!f) continue;
      const r = await runOnCluster(driver, f.label, loadScenario(f.path));
      t.ok(r.failed > 0, `${f.label}: ${r.failed} failed`);
    }
    const ipBlock = parseScenarioText(SMALL, 'small.yaml');
    const small = new FakeCluster();
    const r = await runOnCluster(
      new ClusterScenarioDriver(small, { nodeExec: small.nodeExec, convergeMs: 0, createRetryMs: 0 }),
      'small',
      ipBlock,
    );
    t.equal(r.skipped, 2, 'the host and the SCTP probe skipped');
    t.equal(r.passed, 2);
    t.equal(r.failed, 0);
    await driver.close();
  },
);

t.test("u34's ipBlock names the pod's cluster address, not the layout's", async (t) => {
  const { FakeCluster } = await import('./_fake-cluster.ts');
  const { ClusterScenarioDriver, runOnCluster } = await import('./scenario-driver.ts');
  const f = scenarioCorpus().find((x) => x.label.includes('u34-egress-cidr'));
  if (!f) {
    t.comment('no ../shared/scenarios: skipped');
    return;
  }
  const fake = new FakeCluster();
  const r = await runOnCluster(
    new ClusterScenarioDriver(fake, { nodeExec: fake.nodeExec, convergeMs: 0, createRetryMs: 0 }),
    f.label,
    loadScenario(f.path),
  );
  t.equal(r.failed, 0);
  const yb = fake.pods.get('y/b')!.status as { podIP: string };
  t.match(JSON.stringify([...fake.policies.values()]), `${yb.podIP}/32`);
});

t.test('outside hosts need the hub namespace the cluster tells', async (t) => {
  const { hubNetnsOf } = await import('./outside-hosts.ts');
  const { FakeCluster } = await import('./_fake-cluster.ts');
  t.equal(hubNetnsOf(new FakeCluster()), undefined, 'no hub: host probes are skipped');
  const withHub = Object.assign(new FakeCluster(), { hubNetns: 'tgcl-abc123-hub' });
  t.equal(hubNetnsOf(withHub), 'tgcl-abc123-hub');
});
