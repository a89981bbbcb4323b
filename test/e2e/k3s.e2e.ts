// End-to-end on a real k3s (testcontainers' k3s module, Flannel VXLAN, k3s's own policy controller off):
// builds the image from the Dockerfile, imports it into k3s's containerd, applies daemonset/, runs the seed
// scenarios with real pods and curl between them, then checks the uninstall path (daemonset/cleanup/).
// `npm run test:e2e [-- SCENARIO.yaml...]`. Needs a Docker engine and registry access (k3s, agnhost, the
// Node base images); not part of `npm test`. Exit status: 0 passed, 1 failed, 77 NOT RUN (no Docker engine).
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { StartedK3sContainer } from '@testcontainers/k3s';
import { parseAllDocuments } from 'yaml';
import { loadScenario } from '../../src/scenario/parse.ts';
import {
  type Probe,
  type ProbeOutcome,
  runScenario,
  type ScenarioDriver,
} from '../../src/scenario/probes.ts';
import { formatScenarioReport, formatTotals } from '../../src/scenario/report.ts';
import type { World } from '../../src/scenario/world.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const NOT_RUN = 77;
const K3S_IMAGE = process.env.K3S_IMAGE ?? 'rancher/k3s:v1.31.2-k3s1';
// Serves HTTP on every SERVE_PORT_<n> (porter) and has curl: the image of the upstream e2e tests.
const AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost:2.52';
const E2E_LABEL = 'tollgate-e2e';
/** The README's rule for the lab: a wrong answer may still be converging for up to 10 s. */
const CONVERGE_MS = 10_000;

const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The image name the manifests use (the manifest test keeps it the same everywhere). */
function manifestImage(): string {
  const text = readFileSync(join(REPO, 'daemonset/tollgate-agent.yaml'), 'utf8');
  for (const doc of parseAllDocuments(text)) {
    const image = (doc.toJS() as { spec?: { template?: { spec?: { containers?: { image: string }[] } } } })
      ?.spec?.template?.spec?.containers?.[0]?.image;
    if (image) return image;
  }
  throw new Error('daemonset/tollgate-agent.yaml names no image');
}

class Cluster {
  readonly k3s: StartedK3sContainer;
  private seq = 0;
  constructor(k3s: StartedK3sContainer) {
    this.k3s = k3s;
  }

  async run(cmd: string[], check = true): Promise<{ exitCode: number; output: string }> {
    const r = await this.k3s.exec(cmd);
    if (check && r.exitCode !== 0)
      throw new Error(`${cmd.join(' ')}: exit ${r.exitCode}\n${r.output.trim()}`);
    return r;
  }

  kubectl(args: string[], check = true) {
    return this.run(['kubectl', ...args], check);
  }

  /** kubectl apply of objects (written into the k3s container first). */
  async apply(objects: unknown[]): Promise<void> {
    if (objects.length === 0) return;
    const target = `/tmp/e2e-${++this.seq}.json`;
    const content = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
    await this.k3s.copyContentToContainer([{ content, target }]);
    await this.kubectl(['apply', '-f', target]);
  }

  async json<T>(args: string[]): Promise<T> {
    return JSON.parse((await this.kubectl([...args, '-o', 'json'])).output) as T;
  }
}

interface PodList {
  items: {
    metadata: { name: string; namespace: string; labels?: Record<string, string> };
    status: { podIP?: string };
  }[];
}

/** Drives a scenario on the k3s cluster: the cluster is made equal to the world after every step. */
class K3sDriver implements ScenarioDriver {
  /** ns/pod -> real pod IP. */
  private readonly ips = new Map<string, string>();
  private readonly createdNamespaces = new Set<string>();
  private readonly c: Cluster;
  skipped = 0;

  constructor(c: Cluster) {
    this.c = c;
  }

  async start(world: World): Promise<void> {
    await this.reconcile(world);
  }

  async stop(): Promise<void> {
    for (const ns of this.createdNamespaces)
      await this.c.kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=180s'], false);
    // Shared namespaces (default, kube-system): only what the scenario put there.
    await this.c.kubectl(['delete', 'pods,networkpolicies', '-A', '-l', E2E_LABEL, '--wait=true'], false);
  }

  async sync(world: World): Promise<void> {
    await this.reconcile(world);
  }

  private async reconcile(world: World): Promise<void> {
    const existing = new Set(
      (await this.c.json<PodList>(['get', 'namespaces'])).items.map((n) => n.metadata.name),
    );
    for (const [name] of world.namespaces)
      if (!existing.has(name) && !this.createdNamespaces.has(name)) this.createdNamespaces.add(name);
    for (const ns of this.createdNamespaces)
      if (!world.namespaces.has(ns))
        await this.c.kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=180s']);
    // Labels as the world has them: apply (merge) then remove the ones the world lacks.
    await this.c.apply(
      [...world.namespaces].map(([name, labels]) => ({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels },
      })),
    );
    const live = await this.c.json<PodList>(['get', 'pods', '-A', '-l', E2E_LABEL]);
    const liveKeys = new Map(live.items.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    for (const [key, p] of liveKeys) {
      if (world.pods.has(key)) continue;
      await this.c.kubectl([
        'delete',
        'pod',
        '-n',
        p.metadata.namespace,
        p.metadata.name,
        '--grace-period=1',
      ]);
      this.ips.delete(key);
    }
    const created: string[] = [];
    for (const pod of world.pods.values()) {
      const labels = { ...pod.labels, [E2E_LABEL]: 'true' };
      if (liveKeys.has(pod.key)) {
        await this.relabel(
          'pod',
          pod.namespace,
          pod.name,
          liveKeys.get(pod.key)!.metadata.labels ?? {},
          labels,
        );
        continue;
      }
      created.push(pod.key);
      const tcp = pod.ports.filter((p) => p.protocol === 'TCP');
      await this.c.apply([
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: pod.name, namespace: pod.namespace, labels },
          spec: {
            hostNetwork: pod.hostNetwork,
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'server',
                image: AGNHOST,
                args: ['porter'],
                env: tcp.map((p) => ({ name: `SERVE_PORT_${p.port}`, value: `${pod.key}:${p.port}` })),
                ports: pod.ports.map((p) => ({
                  ...(p.name ? { name: p.name } : {}),
                  containerPort: p.port,
                  protocol: p.protocol,
                })),
              },
            ],
          },
        },
      ]);
    }
    for (const key of created) {
      const [ns, name] = key.split('/') as [string, string];
      await this.c.kubectl(['wait', '-n', ns, `pod/${name}`, '--for=condition=Ready', '--timeout=300s']);
    }
    for (const p of (await this.c.json<PodList>(['get', 'pods', '-A', '-l', E2E_LABEL])).items)
      if (p.status.podIP) this.ips.set(`${p.metadata.namespace}/${p.metadata.name}`, p.status.podIP);
    for (const [name, labels] of world.namespaces) {
      const live = await this.c.json<{ metadata: { labels?: Record<string, string> } }>(['get', 'ns', name]);
      await this.relabel('namespace', undefined, name, live.metadata.labels ?? {}, labels);
    }
    await this.syncPolicies(world);
  }

  private async relabel(
    kind: 'pod' | 'namespace',
    namespace: string | undefined,
    name: string,
    have: Record<string, string>,
    want: Record<string, string>,
  ): Promise<void> {
    const changes = Object.entries(want)
      .filter(([k, v]) => have[k] !== v)
      .map(([k, v]) => `${k}=${v}`);
    for (const k of Object.keys(have))
      if (!(k in want) && !k.startsWith('kubernetes.io/') && k !== E2E_LABEL) changes.push(`${k}-`);
    if (changes.length === 0) return;
    await this.c.kubectl([
      'label',
      ...(namespace ? ['-n', namespace] : []),
      kind,
      name,
      '--overwrite',
      ...changes,
    ]);
  }

  /** The world's policies with the layout's pod addresses replaced by the real ones. */
  private async syncPolicies(world: World): Promise<void> {
    const realIp = new Map<string, string>();
    for (const pod of world.pods.values()) {
      const ip = this.ips.get(pod.key);
      if (ip && !pod.hostNetwork) realIp.set(world.podIp4(pod), ip);
    }
    const policies = [...world.policies.values()].map((p) => {
      const text = JSON.stringify(p).replace(
        /\b(\d+\.\d+\.\d+\.\d+)(?=\/|")/g,
        (ip: string) => realIp.get(ip) ?? ip,
      );
      const obj = JSON.parse(text) as { metadata: { labels?: Record<string, string> } };
      obj.metadata.labels = { ...obj.metadata.labels, [E2E_LABEL]: 'true' };
      return obj;
    });
    const live = await this.c.json<PodList>(['get', 'networkpolicies', '-A', '-l', E2E_LABEL]);
    for (const p of live.items) {
      const key = `${p.metadata.namespace}/${p.metadata.name}`;
      if (!world.policies.has(key))
        await this.c.kubectl(['delete', 'networkpolicy', '-n', p.metadata.namespace, p.metadata.name]);
    }
    await this.c.apply(policies);
  }

  async probe(_world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    return mapLimit(probes, 6, (p) => this.probeOne(p));
  }

  private async probeOne(probe: Probe): Promise<ProbeOutcome> {
    if (probe.from.kind !== 'pod' || probe.to.kind !== 'pod' || probe.protocol !== 'TCP') {
      // host/ and node/ endpoints are the lab's machines; UDP and SCTP have no curl. Not counted.
      this.skipped++;
      return { probe, allowed: probe.expectAllow, explanation: 'skipped' };
    }
    const [ns, name] = probe.from.key.split('/') as [string, string];
    const ip = this.ips.get(probe.to.key);
    if (!ip) return { probe, allowed: false, explanation: `no IP for ${probe.to.key}` };
    const deadline = Date.now() + CONVERGE_MS;
    for (;;) {
      const r = await this.c.kubectl(
        [
          'exec',
          '-n',
          ns,
          name,
          '--',
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '--connect-timeout',
          '2',
          '-m',
          '3',
          `http://${ip}:${probe.port}/`,
        ],
        false,
      );
      const allowed = r.exitCode === 0;
      if (allowed === probe.expectAllow || Date.now() > deadline)
        return { probe, allowed, explanation: `curl to ${ip}:${probe.port} exited ${r.exitCode}` };
      await sleep(1000);
    }
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** After uninstall (agent gone, cleanup run), a default-deny policy no longer drops anything. */
async function checkUninstall(c: Cluster): Promise<boolean> {
  const ns = 'e2e-uninstall';
  await c.apply([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    ...['a', 'b'].map((name) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: { pod: name } },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [
          { name: 'server', image: AGNHOST, args: ['porter'], env: [{ name: 'SERVE_PORT_80', value: name }] },
        ],
      },
    })),
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'deny-all', namespace: ns },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    },
  ]);
  await c.kubectl(['wait', '-n', ns, 'pod/a', 'pod/b', '--for=condition=Ready', '--timeout=300s']);
  const ip = (await c.kubectl(['get', 'pod', '-n', ns, 'b', '-o', 'jsonpath={.status.podIP}'])).output.trim();
  const curl = async () =>
    (
      await c.kubectl(
        ['exec', '-n', ns, 'a', '--', 'curl', '-s', '-o', '/dev/null', '-m', '3', `http://${ip}/`],
        false,
      )
    ).exitCode === 0;
  const until = async (want: boolean) => {
    const deadline = Date.now() + CONVERGE_MS;
    for (;;) {
      const got = await curl();
      if (got === want || Date.now() > deadline) return got === want;
      await sleep(1000);
    }
  };
  const deniedBefore = await until(false);
  log(`${deniedBefore ? 'ok  ' : 'FAIL'} uninstall: a default-deny policy drops a -> b while the agent runs`);
  await c.kubectl(['-n', 'tollgate-system', 'delete', 'daemonset', 'tollgate', '--wait=true']);
  await c.kubectl(['apply', '-f', '/tmp/tollgate/cleanup/']);
  await c.kubectl(['-n', 'tollgate-system', 'rollout', 'status', 'ds/tollgate-cleanup', '--timeout=180s']);
  const allowedAfter = await until(true);
  log(`${allowedAfter ? 'ok  ' : 'FAIL'} uninstall: after daemonset/cleanup/ nothing is dropped any more`);
  await c.kubectl(['delete', '-f', '/tmp/tollgate/cleanup/', '--wait=true']);
  return deniedBefore && allowedAfter;
}

async function main(): Promise<number> {
  const { GenericContainer, getContainerRuntimeClient } = await import('testcontainers');
  let runtime: Awaited<ReturnType<typeof getContainerRuntimeClient>>;
  try {
    runtime = await getContainerRuntimeClient();
  } catch (error) {
    const reason = (error as Error).message.split('\n')[0];
    log(`k3s end-to-end: NOT RUN (no Docker engine reachable: ${reason})`);
    return NOT_RUN;
  }
  const { K3sContainer } = await import('@testcontainers/k3s');
  const files = process.argv.slice(2);
  const scenarios = (
    files.length > 0
      ? files
      : readdirSync(join(REPO, '../shared/scenarios/seeds'))
          .filter((f) => f.endsWith('.yaml'))
          .sort()
          .map((f) => join(REPO, '../shared/scenarios/seeds', f))
  ).map((f) => loadScenario(f));

  const image = manifestImage();
  log(`building ${image} from the Dockerfile (BuildKit)`);
  await GenericContainer.fromDockerfile(REPO).withBuildkit().build(image, { deleteOnExit: false });
  const work = mkdtempSync(join(tmpdir(), 'tollgate-e2e-'));
  const tar = join(work, 'tollgate.tar');
  await pipeline(await runtime.container.dockerode.getImage(image).get(), createWriteStream(tar));

  log(`starting ${K3S_IMAGE}: Flannel VXLAN, k3s's network policy controller off`);
  const k3s = await new K3sContainer(K3S_IMAGE)
    .withCommand([
      'server',
      '--disable=traefik',
      '--disable=metrics-server',
      '--disable-network-policy',
      '--flannel-backend=vxlan',
      '--cluster-cidr=10.244.0.0/16',
    ])
    .start();
  const c = new Cluster(k3s);
  let ok = false;
  try {
    await k3s.copyFilesToContainer([{ source: tar, target: '/tmp/tollgate.tar' }]);
    await c.run(['k3s', 'ctr', '-n', 'k8s.io', 'images', 'import', '/tmp/tollgate.tar']);
    const manifests = readdirSync(join(REPO, 'daemonset')).filter((f) => f.endsWith('.yaml'));
    await k3s.copyFilesToContainer([
      ...manifests.map((f) => ({ source: join(REPO, 'daemonset', f), target: `/tmp/tollgate/${f}` })),
      ...readdirSync(join(REPO, 'daemonset/cleanup')).map((f) => ({
        source: join(REPO, 'daemonset/cleanup', f),
        target: `/tmp/tollgate/cleanup/${f}`,
      })),
    ]);
    // Same-node pod traffic is bridged: it reaches the forward hook only through br_netfilter.
    await c.run(['sysctl', '-w', 'net.bridge.bridge-nf-call-iptables=1'], false);
    await c.kubectl(['apply', '-f', '/tmp/tollgate/']);
    await c.kubectl(['-n', 'tollgate-system', 'rollout', 'status', 'ds/tollgate', '--timeout=300s']);
    log('tollgate DaemonSet ready (/readyz: first full sync in the kernel)');

    let passed = 0;
    let failed = 0;
    for (const scenario of scenarios) {
      const driver = new K3sDriver(c);
      const report = await runScenario(scenario, driver);
      report.passed -= driver.skipped;
      passed += report.passed;
      failed += report.failed;
      log(formatScenarioReport(report, { matrices: false }));
      if (driver.skipped > 0) log(`  (${driver.skipped} host/, node/ or non-TCP probes skipped)`);
    }
    const uninstalled = await checkUninstall(c);
    log(`k3s end-to-end: ${formatTotals(passed, failed)}${uninstalled ? '' : '; uninstall check FAILED'}`);
    ok = failed === 0 && passed > 0 && uninstalled;
  } catch (error) {
    log(`k3s end-to-end: FAILED: ${(error as Error).message}`);
  } finally {
    if (!ok) {
      const logs = await c.kubectl(['-n', 'tollgate-system', 'logs', 'ds/tollgate', '--tail=100'], false);
      log(`agent logs (last 100 lines):\n${logs.output}`);
    }
    await k3s.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
