// `tollgate explain --policy NS/NAME` end to end on the real cluster of scenarios.test.ts (issue 18): the real
// CLI (bin/tollgate.js) with the cluster's kubeconfig, in the hub's network namespace, reading the agents'
// `policy usage` lines through pods/log after allowed and denied curl probes between real pods on both
// nodes. Starts no cluster; the pods and policies come from a small scenario run by the driver.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { curlProbeArgv } from '../../src/lab/curl.ts';
import { run } from '../../src/lab/exec.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { ClusterError } from './_boxes.ts';
import type { LabCluster } from './_cluster.ts';
import { requireHub } from './drops-follower.ts';
import { hubNetnsOf } from './outside-hosts.ts';
import { type ClusterScenarioDriver, formatClusterResult, runOnCluster } from './scenario-driver.ts';

const CLI = fileURLToPath(new URL('../../bin/tollgate.js', import.meta.url));
const NS = 'use-cli';
/** Isolates the server's ingress, allows the clients on 80: allowed on node 1 (both clients), denied `blocked`. */
const INGRESS = `${NS}/allow-clients`;
/** Isolates the clients' egress, allows the server on 80: allowed on both nodes, denied on 81. */
const EGRESS = `${NS}/clients-egress`;
/** Selects no pod: no traffic can use it. */
const UNUSED = `${NS}/unused`;
/** Probes of each kind from each client (allowed, denied on 81) and from `blocked` (denied on 80). */
const PROBES = 4;
/** The agents' usage pass runs every 10 s (the daemonset's default); a count shows up within two. */
const USAGE_WAIT_MS = 90_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Server and client-1 on node 1, client-2 and blocked on node 2: same-node and cross-node connections, and
// counts of one policy on both nodes that the CLI has to add up.
const SCENARIO = `name: policy-usage-cli
description: the pods and policies of the tollgate explain --policy CLI test (issue 18, semantics 5)
nodes: 2
namespaces:
- name: ${NS}
pods:
- {name: ${NS}/server, labels: {pod: server}, node: 1}
- {name: ${NS}/client-1, labels: {pod: client}, node: 1}
- {name: ${NS}/client-2, labels: {pod: client}, node: 2}
- {name: ${NS}/blocked, labels: {pod: blocked}, node: 2}
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: allow-clients, namespace: ${NS}}
    spec:
      podSelector: {matchLabels: {pod: server}}
      policyTypes: [Ingress]
      ingress:
      - from: [{podSelector: {matchLabels: {pod: client}}}]
        ports: [{port: 80, protocol: TCP}]
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: clients-egress, namespace: ${NS}}
    spec:
      podSelector: {matchLabels: {pod: client}}
      policyTypes: [Egress]
      egress:
      - to: [{podSelector: {matchLabels: {pod: server}}}]
        ports: [{port: 80, protocol: TCP}]
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: unused, namespace: ${NS}}
    spec:
      podSelector: {matchLabels: {pod: nobody}}
      policyTypes: [Ingress, Egress]
- expect:
  - ${NS}/client-1 -> ${NS}/server:80 allow
  - ${NS}/client-2 -> ${NS}/server:80 allow
  - ${NS}/blocked -> ${NS}/server:80 deny
`;

type Counts = { allowed: number; denied: number };
interface Explained {
  agents: number;
  ingress: Counts;
  egress: Counts;
  text: string;
}

/** The usage part of explain's output (usageLines in src/cli/policy-usage.ts); undefined: not there. */
export function parseExplainUsage(text: string): Explained | undefined {
  const agents = /^usage \(.* from (\d+) agent\(s\) with counts\):$/m.exec(text);
  const dir = (d: string) => {
    const m = new RegExp(`^  ${d}: allowed (\\d+), denied (\\d+)`, 'm').exec(text);
    return m ? { allowed: Number(m[1]), denied: Number(m[2]) } : undefined;
  };
  const ingress = dir('ingress');
  const egress = dir('egress');
  if (!agents || !ingress || !egress) return undefined;
  return { agents: Number(agents[1]), ingress, egress, text };
}

/** Registers the CLI test; `get` gives the cluster and driver once the file's `before` has made them. */
export function policyUsageCliTests(get: () => { cluster: LabCluster; driver: ClusterScenarioDriver }): void {
  t.test('tollgate explain --policy usage on the real cluster (issue 18, semantics 5)', async (t) => {
    const { cluster, driver } = get();
    const hub = requireHub(hubNetnsOf(cluster), 'tollgate explain --policy CLI');
    const dir = mkdtempSync(join(tmpdir(), 'tg-use-cli-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'policy-usage-cli.yaml');
    writeFileSync(file, SCENARIO);
    const setup = await runOnCluster(driver, 'policy-usage-cli', loadScenario(file));
    t.equal(
      setup.failed,
      0,
      setup.failed === 0
        ? 'the clients are allowed, blocked denied'
        : formatClusterResult(setup, { matrices: false }),
    );
    const serverIp = (
      await cluster.kubectlOk(['get', 'pod', '-n', NS, 'server', '-o', 'jsonpath={.status.podIP}'])
    ).trim();

    const explain = async (policy: string): Promise<Explained> => {
      const argv = [
        'nsenter',
        `--net=/run/netns/${hub}`,
        '--',
        process.execPath,
        CLI,
        'explain',
        `--policy=${policy}`,
        `--kubeconfig=${cluster.kubeconfig}`,
        '--since=15m',
      ];
      const r = await run(argv, {
        timeoutMs: scaledMs(60_000),
        env: { ...process.env, NO_PROXY: '*', no_proxy: '*' },
      });
      const parsed = r.code === 0 ? parseExplainUsage(r.stdout) : undefined;
      if (parsed === undefined)
        throw new ClusterError(
          'E_CLUSTER_COMMAND',
          `tollgate explain --policy ${policy}: exit ${r.code}\n${r.stdout}\n${r.stderr}`,
        );
      return parsed;
    };

    // The counts before this test's probes (the setup's expect probed too): the asserted growth is ours.
    // Taken after two usage intervals, so the setup's connections are in them.
    await sleep(scaledMs(20_000));
    const before = { ingress: await explain(INGRESS), egress: await explain(EGRESS) };

    const probe = async (pod: string, port: number, want: 'allow' | 'deny', i: number) => {
      const r = await cluster.inPodNetns(NS, pod, curlProbeArgv(serverIp, port, 1500), {
        timeoutMs: scaledMs(20_000),
      });
      if (want === 'allow') t.equal(r.code, 0, `${pod} -> server:${port} probe ${i + 1} is allowed`);
      else t.not(r.code, 0, `${pod} -> server:${port} probe ${i + 1} is denied`);
    };
    for (let i = 0; i < PROBES; i++) {
      await probe('client-1', 80, 'allow', i);
      await probe('client-2', 80, 'allow', i);
      await probe('client-1', 81, 'deny', i);
      await probe('client-2', 81, 'deny', i);
      await probe('blocked', 80, 'deny', i);
    }

    // Each client's PROBES allowed connections count once for each policy (ingress on node 1, egress on
    // its own node); a denied probe's SYN retransmits may report more than once, so denied is at least.
    const want = {
      ingress: { ingress: { allowed: 2 * PROBES, denied: PROBES }, egress: { allowed: 0, denied: 0 } },
      egress: { ingress: { allowed: 0, denied: 0 }, egress: { allowed: 2 * PROBES, denied: 2 * PROBES } },
    };
    const grown = (now: Explained, was: Explained, w: (typeof want)['ingress']) =>
      (['ingress', 'egress'] as const).every(
        (d) =>
          now[d].allowed - was[d].allowed >= w[d].allowed && now[d].denied - was[d].denied >= w[d].denied,
      );
    const limit = performance.now() + scaledMs(USAGE_WAIT_MS);
    let now = { ingress: before.ingress, egress: before.egress };
    for (;;) {
      now = { ingress: await explain(INGRESS), egress: await explain(EGRESS) };
      const done =
        grown(now.ingress, before.ingress, want.ingress) && grown(now.egress, before.egress, want.egress);
      if (done || performance.now() > limit) break;
      await sleep(2000);
    }
    const load = (await run(['cat', '/proc/loadavg'])).stdout.trim();
    const show = (e: Explained) =>
      `ingress allowed ${e.ingress.allowed} denied ${e.ingress.denied}, egress allowed ${e.egress.allowed} denied ${e.egress.denied}, ${e.agents} agent(s)`;
    t.comment(`${INGRESS}: before ${show(before.ingress)}; after ${show(now.ingress)} (load ${load})`);
    t.comment(`${EGRESS}: before ${show(before.egress)}; after ${show(now.egress)}`);

    const check = (policy: string, e: Explained, was: Explained, w: (typeof want)['ingress']) => {
      for (const d of ['ingress', 'egress'] as const) {
        const allowed = e[d].allowed - was[d].allowed;
        const denied = e[d].denied - was[d].denied;
        t.ok(allowed >= w[d].allowed, `${policy} ${d}: ${allowed} more allowed, at least ${w[d].allowed}`);
        t.ok(denied >= w[d].denied, `${policy} ${d}: ${denied} more denied, at least ${w[d].denied}`);
        if (w[d].allowed === 0) t.equal(e[d].allowed, 0, `${policy} allows nothing ${d}`);
        if (w[d].denied === 0) t.equal(e[d].denied, 0, `${policy} denies nothing ${d}`);
      }
    };
    check(INGRESS, now.ingress, before.ingress, want.ingress);
    check(EGRESS, now.egress, before.egress, want.egress);
    // The allowed counts are the conntrack entries the agents saw, so not far over the connections made:
    // this test's probes, the setup's and the driver's own (a handful).
    t.ok(now.ingress.ingress.allowed <= 2 * PROBES + 40, `${INGRESS} ingress allowed is not inflated`);
    t.equal(now.ingress.agents, 1, `${INGRESS}: only the server's node counts it (ingress)`);
    t.equal(now.egress.agents, 2, `${EGRESS}: both clients' nodes count it, and the CLI adds them`);
    t.match(now.egress.text, /^NetworkPolicy use-cli\/clients-egress$/m, 'the description comes first');

    const unused = await explain(UNUSED);
    t.same(
      [unused.agents, unused.ingress, unused.egress],
      [0, { allowed: 0, denied: 0 }, { allowed: 0, denied: 0 }],
      `${UNUSED}: nothing used it`,
    );
    t.match(unused.text, /no agent logged a count for this policy/, `${UNUSED}: says why 0`);
  });
}
