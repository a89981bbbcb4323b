// `tollgate drops` end to end on the real cluster of scenarios.test.ts (issue 18): the real CLI (bin/tollgate.js)
// with the cluster's kubeconfig, in the hub's network namespace, after denied probes between real pods.
// Checks its filters (--namespace, --policy, --no-follow) and measures report latency, probe start to the
// line in a following CLI's output. Starts no cluster; the pods come from a small scenario run by the driver.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { curlProbeArgv } from '../../src/lab/curl.ts';
import { run } from '../../src/lab/exec.ts';
import { scaledMs } from '../../src/lab/load.ts';
import type { DropReport } from '../../src/nflog/report.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import type { LabCluster } from './_cluster.ts';
import { DropsFollower, dropsCliArgv, requireHub } from './drops-follower.ts';
import { hubNetnsOf } from './outside-hosts.ts';
import { type ClusterScenarioDriver, formatClusterResult, runOnCluster } from './scenario-driver.ts';

const NS = 'drops-cli';
const POLICY = `${NS}/deny-server`;
const PROBES = 12;
/** A report's time is the agent's and the kernel's, at ms precision; this much before `sent` still counts. */
const CLOCK_SLACK_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Server on node 1, client on node 2: the report comes from node 1's agent (ingress), through the API.
const SCENARIO = `name: drops-cli
description: the pods and policy of the tollgate drops CLI test (semantics 26)
nodes: 2
namespaces:
- name: ${NS}
pods:
- {name: ${NS}/server, labels: {pod: server}, node: 1}
- {name: ${NS}/client, labels: {pod: client}, node: 2}
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: deny-server, namespace: ${NS}}
    spec:
      podSelector: {matchLabels: {pod: server}}
      policyTypes: [Ingress]
- expect:
  - ${NS}/client -> ${NS}/server:80 deny
`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Registers the CLI tests; `get` gives the cluster and driver once the file's `before` has made them. */
export function dropsCliTests(get: () => { cluster: LabCluster; driver: ClusterScenarioDriver }): void {
  t.test('tollgate drops CLI on the real cluster (semantics 26)', async (t) => {
    const { cluster, driver } = get();
    const hub = requireHub(hubNetnsOf(cluster), 'tollgate drops CLI');
    const dir = mkdtempSync(join(tmpdir(), 'tg-drops-cli-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'drops-cli.yaml');
    writeFileSync(file, SCENARIO);
    const setup = await runOnCluster(driver, 'drops-cli', loadScenario(file));
    t.equal(
      setup.failed,
      0,
      setup.failed === 0 ? 'the client is denied' : formatClusterResult(setup, { matrices: false }),
    );
    const serverIp = (
      await cluster.kubectlOk(['get', 'pod', '-n', NS, 'server', '-o', 'jsonpath={.status.podIP}'])
    ).trim();

    const follower = new DropsFollower(hub, cluster.kubeconfig, [`--namespace=${NS}`, `--policy=${POLICY}`]);
    t.teardown(() => follower.close());
    follower.start();
    // The follower is reading once the setup's own probe reports have come through (10 minutes back).
    const readyBy = performance.now() + scaledMs(30_000);
    while (follower.reports.length === 0 && follower.trouble() === undefined && performance.now() < readyBy)
      await sleep(100);
    t.ok(
      follower.reports.length > 0,
      `the following CLI printed the setup probe's report ${follower.trouble() ?? ''}`,
    );

    const latencies: number[] = [];
    /** From the report's own time (the agent's) to the line: the agent, the kubelet's log and the API. */
    const pipeline: number[] = [];
    const missing: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const before = follower.reports.length;
      const sent = Date.now();
      const r = await cluster.inPodNetns(NS, 'client', curlProbeArgv(serverIp, 80, 1500), {
        timeoutMs: scaledMs(20_000),
      });
      t.not(r.code, 0, `probe ${i + 1} is denied`);
      const limit = performance.now() + scaledMs(10_000);
      let line: DropReport | undefined;
      for (;;) {
        line = follower.reports
          .slice(before)
          // Made after this probe was sent (same clock): not a late line of the previous probe's retry.
          .find(
            (x) =>
              x.src.pod === `${NS}/client` &&
              x.dst.pod === `${NS}/server` &&
              Date.parse(x.at) >= sent - CLOCK_SLACK_MS,
          );
        if (line || performance.now() > limit) break;
        await sleep(20);
      }
      if (line) {
        latencies.push(follower.seenAt.get(line)! - sent);
        pipeline.push(follower.seenAt.get(line)! - Date.parse(line.at));
      } else missing.push(i + 1);
    }
    t.same(missing, [], `every probe's report reached the CLI's output ${follower.trouble() ?? ''}`);
    const sorted = [...latencies].sort((a, b) => a - b);
    const load = (await run(['cat', '/proc/loadavg'])).stdout.trim();
    const fromAt = [...pipeline].sort((a, b) => a - b);
    t.comment(
      `tollgate drops latency, probe start to the line, ${sorted.length} probes: p50 ${quantile(sorted, 0.5)} ms, max ${sorted.at(-1)} ms; report time to the line: p50 ${quantile(fromAt, 0.5)} ms, max ${fromAt.at(-1)} ms (load ${load})`,
    );
    for (const r of follower.reports) {
      t.equal(r.node, cluster.nodes[0]!.name, "the destination node's agent reports it");
      t.same([r.kind, r.direction, r.port, r.protocol, r.policies], ['deny', 'ingress', 80, 'TCP', [POLICY]]);
      break;
    }

    // --no-follow: what the logs hold, filtered; exits by itself.
    const once = async (flags: string[]) => {
      const argv = [
        'nsenter',
        `--net=/run/netns/${hub}`,
        '--',
        ...dropsCliArgv(cluster.kubeconfig, ['--no-follow', '--since=10m', ...flags]),
      ];
      const r = await run(argv, {
        timeoutMs: scaledMs(60_000),
        env: { ...process.env, NO_PROXY: '*', no_proxy: '*' },
      });
      t.equal(r.code, 0, `tollgate drops ${flags.join(' ')} exits 0 ${r.stderr.trim()}`);
      return r.stdout.split('\n').filter((l) => l.includes(`${NS}/client -> ${NS}/server:80/TCP ingress`));
    };
    const byNamespace = await once([`--namespace=${NS}`]);
    t.ok(byNamespace.length >= PROBES, `--namespace ${NS}: ${byNamespace.length} lines`);
    t.match(
      byNamespace[0] ?? '',
      new RegExp(`^\\S+ ${cluster.nodes[0]!.name} ${NS}/client -> ${NS}/server:80/TCP ingress ${POLICY}$`),
    );
    t.same(await once(['--namespace=kube-system']), [], '--namespace of neither end: no line');
    t.ok((await once([`--policy=${POLICY}`])).length >= PROBES, `--policy ${POLICY}: the lines`);
    t.same(await once([`--policy=${NS}/other`]), [], '--policy that did not deny: no line');
    t.same(
      await once([`--node=${cluster.nodes[1]!.name}`]),
      [],
      "--node of the source's node: no line (ingress)",
    );
  });
}
