// Issue 15: what only a real cluster shows, on one real two-node dual-stack cluster (kubelet, containerd,
// runc, kube-proxy in nftables mode, Flannel VXLAN; test/cluster/_cluster.ts) with tollgate installed from
// daemonset/ as a user installs it. One file starts one cluster and runs the cases in order, so no other
// heavy cluster test runs beside it (startCluster also holds a machine-wide lock). Probes are curl from inside
// the source pod's network namespace; a reply is judged by the body (the backend pod's name).
// Waiting limits scale with the machine's load (src/lab/load.ts); no fixed sleeps decide an outcome.
import t, { type Test } from 'tap';
import { scaledMs } from '../../src/lab/load.ts';
import { ClusterError, type LabCluster, startCluster, waitFor } from './_cluster.ts';

const NS = 'demo';

function agnhostPod(name: string, node: string, labels: Record<string, string>, extra: object = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'agnhost',
          image: '',
          args: ['netexec', '--http-port=8080'],
          ports: [{ containerPort: 8080, name: 'http' }],
          ...extra,
        },
      ],
    },
  };
}

interface Probe {
  ok: boolean;
  body: string;
  code: number;
}

/** One HTTP request from `from` (a pod of NS) to ip:8080/hostname; allowed means the named backend answered. */
async function probe(c: LabCluster, from: string, ip: string, namespace = NS, seconds = 2): Promise<Probe> {
  const r = await c.inPodNetns(namespace, from, [
    'curl',
    '-s',
    '--max-time',
    String(seconds),
    `http://${host(ip)}:8080/hostname`,
  ]);
  return { ok: r.code === 0, body: r.stdout.trim(), code: r.code };
}

async function podIp6(c: LabCluster, name: string, namespace = NS): Promise<string> {
  return waitFor(`an IPv6 address for ${namespace}/${name}`, 120_000, async () => {
    const r = await c.kubectl(['get', 'pod', '-n', namespace, name, '-o', 'jsonpath={.status.podIPs[*].ip}']);
    return r.stdout.split(' ').find((ip) => ip.includes(':'));
  });
}

/** curl's limit for a probe that should be answered: 2 s on a quiet machine, more under load. */
const allowedSeconds = () => Math.max(2, Math.ceil(scaledMs(2000) / 1000));

/** An address as a URL host. */
const host = (ip: string) => (ip.includes(':') ? `[${ip}]` : ip);

async function podIp(c: LabCluster, name: string, namespace = NS): Promise<string> {
  return waitFor(`an IP for ${namespace}/${name}`, 120_000, async () => {
    const r = await c.kubectl(['get', 'pod', '-n', namespace, name, '-o', 'jsonpath={.status.podIP}']);
    return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
  });
}

async function apply(c: LabCluster, objects: object[]): Promise<void> {
  const r = await c.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
  });
  if (r.code !== 0) throw new ClusterError('E_CLUSTER_COMMAND', `kubectl apply: ${r.stderr}`);
}

async function waitReady(c: LabCluster, namespace: string, names: string[]): Promise<void> {
  const r = await c.kubectl(
    [
      'wait',
      '-n',
      namespace,
      '--for=condition=Ready',
      `--timeout=${Math.round(scaledMs(180_000) / 1000)}s`,
    ].concat(names.map((n) => `pod/${n}`)),
    { timeoutMs: scaledMs(180_000) + 30_000 },
  );
  if (r.code !== 0) {
    const pods = await c.kubectl(['get', 'pods', '-n', namespace, '-o', 'wide']);
    const events = await c.kubectl(['get', 'events', '-n', namespace]);
    throw new ClusterError(
      'E_CLUSTER_START',
      `pods not Ready: ${r.stderr}\n${pods.stdout}\n${events.stdout.split('\n').slice(-15).join('\n')}`,
    );
  }
}

/** Polls until `from` -> ip gives the wanted verdict three times in a row (the agent has synced). */
async function until(c: LabCluster, from: string, ip: string, wantOk: boolean, what: string) {
  let streak = 0;
  await waitFor(what, 60_000, async () => {
    const p = await probe(c, from, ip);
    streak = p.ok === wantOk ? streak + 1 : 0;
    return streak >= 3 ? true : undefined;
  });
}

/** Polls until `from` -> ip is answered by `backend` (a Service is programmed, a pod listens). */
async function untilAnswered(c: LabCluster, from: string, ip: string, backend: string, what: string) {
  await waitFor(what, 120_000, async () => {
    const p = await probe(c, from, ip);
    return p.ok && p.body === backend ? true : undefined;
  }).catch((error: unknown) => {
    // A timeout is reported by the assertion that follows, with the last probe's answer.
    if (!(error instanceof ClusterError)) throw error;
  });
}

/** kubelet's failed-probe events for a pod (an event repeats by its count). */
async function unhealthyCount(c: LabCluster, ns: string, pod: string): Promise<number> {
  const r = await c.kubectl([
    'get',
    'events',
    '-n',
    ns,
    '--field-selector',
    `involvedObject.name=${pod},reason=Unhealthy`,
    '-o',
    'json',
  ]);
  const items = (
    JSON.parse(r.stdout || '{"items":[]}') as { items: { count?: number; series?: { count?: number } }[] }
  ).items;
  return items.reduce((n, e) => n + Math.max(e.count ?? 1, e.series?.count ?? 0), 0);
}

async function nftTable(c: LabCluster, node: string): Promise<number> {
  return (await c.onNode(node, ['nft', 'list', 'table', 'inet', 'tollgate'])).code;
}

/** Pods shared by the cases: servers on both nodes, an allowed client and another pod on node 1; two Services. */
async function setUpDemo(c: LabCluster, n1: string, n2: string) {
  await c.kubectlOk(['create', 'namespace', NS]);
  const image = c.agnhostImage;
  const withImage = (p: ReturnType<typeof agnhostPod>) => {
    p.spec.containers[0]!.image = image;
    return p;
  };
  await apply(c, [
    withImage(agnhostPod('srv-a', n1, { app: 'srv', instance: 'a' })),
    withImage(agnhostPod('srv-b', n2, { app: 'srv', instance: 'b' })),
    withImage(agnhostPod('client', n1, { role: 'client' })),
    withImage(agnhostPod('other', n1, { role: 'other' })),
    ...(['a', 'b'] as const).map((x) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${x}`, namespace: NS },
      spec: { selector: { instance: x }, ports: [{ port: 8080, targetPort: 8080 }] },
    })),
    // On a dual-stack cluster, IPv6-only Services too (point 18: rules apply to both families).
    ...(c.dualStack
      ? (['a', 'b'] as const).map((x) => ({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: `svc6-${x}`, namespace: NS },
          spec: {
            ipFamilies: ['IPv6'],
            ipFamilyPolicy: 'SingleStack',
            selector: { instance: x },
            ports: [{ port: 8080, targetPort: 8080 }],
          },
        }))
      : []),
  ]);
  await waitReady(c, NS, ['srv-a', 'srv-b', 'client', 'other']);
  const ips = { a: await podIp(c, 'srv-a'), b: await podIp(c, 'srv-b') };
  const svc = {
    a: (await c.kubectl(['get', 'svc', '-n', NS, 'svc-a', '-o', 'jsonpath={.spec.clusterIP}'])).stdout.trim(),
    b: (await c.kubectl(['get', 'svc', '-n', NS, 'svc-b', '-o', 'jsonpath={.spec.clusterIP}'])).stdout.trim(),
  };

  const allowClient = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'srv-from-client', namespace: NS },
    spec: {
      podSelector: { matchLabels: { app: 'srv' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 8080 }] }],
    },
  };

  const v6 = c.dualStack
    ? {
        a: await podIp6(c, 'srv-a'),
        b: await podIp6(c, 'srv-b'),
        svcA: (
          await c.kubectlOk(['get', 'svc', '-n', NS, 'svc6-a', '-o', 'jsonpath={.spec.clusterIP}'])
        ).trim(),
        svcB: (
          await c.kubectlOk(['get', 'svc', '-n', NS, 'svc6-b', '-o', 'jsonpath={.spec.clusterIP}'])
        ).trim(),
      }
    : undefined;
  type Flow = readonly [string, string, boolean, string, string];
  const v6flows: Flow[] = v6
    ? [
        ['client', v6.a, true, 'srv-a', 'IPv6, same node'],
        ['client', v6.b, true, 'srv-b', 'IPv6, cross node (VXLAN)'],
        ['client', v6.svcB, true, 'srv-b', 'IPv6 ClusterIP, backend on the other node'],
        ['other', v6.a, false, 'srv-a', 'IPv6, same node'],
        ['other', v6.b, false, 'srv-b', 'IPv6, cross node (VXLAN)'],
        ['other', v6.svcA, false, 'srv-a', 'IPv6 ClusterIP, backend on the same node'],
      ]
    : [];
  // The flows of the smoke case and of the rolling update: [source pod, target, expected, backend name].
  const flows = (): readonly Flow[] => [
    ['client', ips.a, true, 'srv-a', 'same node'],
    ['client', ips.b, true, 'srv-b', 'cross node (VXLAN)'],
    ['client', svc.b, true, 'srv-b', 'ClusterIP, backend on the other node'],
    ['client', svc.a, true, 'srv-a', 'ClusterIP, backend on the same node'],
    ['other', ips.a, false, 'srv-a', 'same node'],
    ['other', ips.b, false, 'srv-b', 'cross node (VXLAN)'],
    ['other', svc.a, false, 'srv-a', 'ClusterIP, backend on the same node'],
    ['other', svc.b, false, 'srv-b', 'ClusterIP, backend on the other node'],
    ...v6flows,
  ];
  return { withImage, ips, svc, flows, allowClient };
}

/** Case (a), point 14: also run on the iptables-mode cluster. */
function smokeCase(t: Tap, c: LabCluster, d: Demo) {
  const { flows, ips, allowClient } = d;
  return t.test(
    'smoke: a policy enforced same-node, cross-node and through a ClusterIP (point 14)',
    async (t) => {
      // Before any policy every flow passes, so the denials below are the policy's doing. kube-proxy programs a
      // Service some time after its endpoints are ready (iptables mode: its first sync can lag by seconds on
      // a loaded machine), so wait until each flow has been answered by its backend once, then assert.
      for (const [from, ip, , backend, where] of flows()) {
        await untilAnswered(
          c,
          from,
          ip,
          backend,
          `${from} -> ${ip} (${where}) to be answered before any policy`,
        );
        const p = await probe(c, from, ip, NS, allowedSeconds());
        t.ok(
          p.ok && p.body === backend,
          `no policy: ${from} -> ${ip} (${where}) answered by ${backend}: ${p.body}`,
        );
      }
      await apply(c, [allowClient]);
      await until(c, 'other', ips.a, false, 'the policy to be enforced on node 1');
      await until(c, 'other', ips.b, false, 'the policy to be enforced on node 2');
      for (const [from, ip, allow, backend, where] of flows()) {
        for (let i = 0; i < 3; i++) {
          // An allowed probe may take longer on a loaded machine; a denied one times out either way.
          const p = await probe(c, from, ip, NS, allow ? allowedSeconds() : 2);
          if (allow)
            t.ok(p.ok && p.body === backend, `${from} -> ${ip} (${where}) allowed, answered by ${backend}`);
          else t.notOk(p.ok, `${from} -> ${ip} (${where}) denied (curl exit ${p.code})`);
        }
      }
    },
  );
}

type Demo = Awaited<ReturnType<typeof setUpDemo>>;
type Tap = Test;

// Bring-up (~2-3 min) and the cases (~3-4 min) exceed tap's default 600 s per file on a loaded machine.
t.setTimeout(scaledMs(30 * 60_000));
if (process.getuid?.() !== 0) {
  t.plan(0, 'the real cluster needs root (network namespaces, mounts, cgroups)');
  process.exit(0);
}
// One outer test per cluster: tap ends a test whose queue runs empty, so the cluster's teardown must hang on a
// test that lasts as long as the cases do.
t.test('one dual-stack cluster, kube-proxy in nftables mode', async (t) => {
  const started = performance.now();
  const c = await startCluster({ proxyMode: 'nftables', dualStack: true });
  t.teardown(() => c.stop());
  t.comment(
    `cluster ${c.id} up in ${Math.round(performance.now() - started)} ms: ${JSON.stringify(c.timings)}`,
  );
  const [n1, n2] = [c.nodes[0]!.name, c.nodes[1]!.name];

  await t.test(
    'install: the DaemonSet runs on both nodes with CAP_NET_ADMIN only and programs the table',
    async (t) => {
      const ds = JSON.parse(
        (await c.kubectl(['-n', 'tollgate-system', 'get', 'ds', 'tollgate', '-o', 'json'])).stdout,
      ) as {
        status: { numberReady: number; desiredNumberScheduled: number };
        spec: { template: { spec: { containers: { securityContext: { capabilities: unknown } }[] } } };
      };
      t.equal(ds.status.desiredNumberScheduled, 2);
      t.equal(ds.status.numberReady, 2);
      t.same(ds.spec.template.spec.containers[0]!.securityContext.capabilities, {
        drop: ['ALL'],
        add: ['NET_ADMIN'],
      });
      for (const node of [n1, n2]) {
        t.equal(await nftTable(c, node), 0, `inet tollgate exists on ${node}`);
        // The agent's effective capabilities, read from /proc on the node: CAP_NET_ADMIN (bit 12) alone.
        const pids = (await c.onNode(node, ['pgrep', '-f', 'tollgate.*agent'])).stdout.trim().split('\n');
        const status = (await c.onNode(node, ['cat', `/proc/${pids[0]}/status`])).stdout;
        t.equal(
          /^CapEff:\s+(\S+)/m.exec(status)?.[1],
          '0000000000001000',
          `${node}: CapEff is CAP_NET_ADMIN only`,
        );
        t.comment(`${node}: agent ${/^VmRSS:.*$/m.exec(status)?.[0]}`);
      }
    },
  );

  const d = await setUpDemo(c, n1, n2);
  const { withImage, flows } = d;
  await smokeCase(t, c, d);

  await t.test('kubelet probes keep passing under a default-deny ingress policy (point 12)', async (t) => {
    const ns = 'probes';
    await c.kubectlOk(['create', 'namespace', ns]);
    const probeSpec = {
      httpGet: { path: '/hostname', port: 8080 },
      periodSeconds: 2,
      timeoutSeconds: 1,
      failureThreshold: 1,
    };
    const pod = withImage(
      agnhostPod('probed', n2, { app: 'probed' }, { livenessProbe: probeSpec, readinessProbe: probeSpec }),
    );
    pod.metadata.namespace = ns;
    const open = withImage(agnhostPod('sentinel', n2, { app: 'sentinel' }));
    open.metadata.namespace = ns;
    await apply(c, [pod, open]);
    await waitReady(c, ns, ['probed', 'sentinel']);
    const ip = await podIp(c, 'probed', ns);
    await apply(c, [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'deny-all-ingress', namespace: ns },
        spec: { podSelector: {}, policyTypes: ['Ingress'] },
      },
    ]);
    // Enforced: from another pod (node 1, other namespace) the probed pod is unreachable.
    await until(c, 'client', ip, false, 'default deny to be enforced');
    // Failed probes before the policy (the first readiness probe may beat the server's start) do not count:
    // compare kubelet's Unhealthy event counts from here on.
    const before = await unhealthyCount(c, ns, 'probed');
    // Twelve probe periods: each failed probe would flip Ready (failureThreshold 1) or restart the container.
    const windowEnd = performance.now() + 24_000;
    let samples = 0;
    while (performance.now() < windowEnd) {
      const status = JSON.parse(
        (await c.kubectl(['get', 'pod', '-n', ns, 'probed', '-o', 'json'])).stdout,
      ) as {
        status: {
          conditions: { type: string; status: string }[];
          containerStatuses: { restartCount: number }[];
        };
      };
      const ready = status.status.conditions.find((x) => x.type === 'Ready')?.status;
      const restarts = status.status.containerStatuses[0]!.restartCount;
      if (ready !== 'True' || restarts !== 0) {
        t.fail(`probed pod: Ready=${ready}, restartCount=${restarts} under default deny`);
        return;
      }
      samples++;
      await new Promise((r) => setTimeout(r, 1000));
    }
    t.pass(`Ready and 0 restarts in all ${samples} samples over 24 s (12 probe periods)`);
    t.equal(
      await unhealthyCount(c, ns, 'probed'),
      before,
      'no failed liveness/readiness probe under the policy',
    );
    // And the policy really was in force all along.
    t.notOk((await probe(c, 'client', ip)).ok, 'the probed pod is still unreachable from another pod');
  });

  await t.test('a pod created under an existing deny policy is never reachable (point 17)', async (t) => {
    const ns = 'fresh';
    await c.kubectlOk(['create', 'namespace', ns]);
    await apply(c, [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'deny-all-ingress', namespace: ns },
        spec: { podSelector: {}, policyTypes: ['Ingress'] },
      },
    ]);
    // The control: the same pod in a namespace without policy becomes reachable with the same probe loop.
    const results: Record<string, { passed: number; denied: number; firstIpMs: number }> = {};
    const watch = async (namespace: string, name: string, node: string) => {
      const pod = withImage(agnhostPod(name, node, { app: name }));
      pod.metadata.namespace = namespace;
      const t0 = performance.now();
      await apply(c, [pod]);
      let ip = '';
      await waitFor(
        `an IP for ${namespace}/${name}`,
        120_000,
        async () => {
          const r = await c.kubectl(['get', 'pod', '-n', namespace, name, '-o', 'jsonpath={.status.podIP}']);
          ip = r.stdout.trim();
          return ip ? true : undefined;
        },
        50,
      );
      const res = { passed: 0, denied: 0, firstIpMs: Math.round(performance.now() - t0) };
      results[`${namespace}/${name}`] = res;
      // From the moment it has an IP until 10 s after it is Ready, four probe loops at once (a denied probe
      // waits out its 1 s timeout, so one loop alone would sample only once a second).
      let readyAt = 0;
      const done = () => readyAt < 0 || (readyAt > 0 && performance.now() - readyAt > 10_000);
      const probeLoop = async () => {
        while (!done()) {
          const p = await c.inPodNetns(NS, 'client', [
            'curl',
            '-s',
            '--max-time',
            '1',
            `http://${host(ip)}:8080/hostname`,
          ]);
          if (p.code === 0 && p.stdout.trim() === name) res.passed++;
          else res.denied++;
        }
      };
      const readyLoop = async () => {
        while (!readyAt) {
          const r = await c.kubectl([
            'get',
            'pod',
            '-n',
            namespace,
            name,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          ]);
          if (r.stdout.trim() === 'True') readyAt = performance.now();
          else if (performance.now() - t0 > scaledMs(180_000)) {
            readyAt = -1;
            throw new ClusterError('E_CLUSTER_START', `${name} never became Ready`);
          }
        }
      };
      await Promise.all([readyLoop(), probeLoop(), probeLoop(), probeLoop(), probeLoop()]);
    };
    await watch(ns, 'newcomer', n2);
    await watch(NS, 'newcomer-open', n2);
    t.comment(JSON.stringify(results));
    t.equal(
      results[`${ns}/newcomer`]!.passed,
      0,
      'no probe reached the pod created under deny, from its first IP on',
    );
    t.ok(results[`${ns}/newcomer`]!.denied >= 5, 'and it was probed');
    t.ok(
      results[`${NS}/newcomer-open`]!.passed > 0,
      'the control pod without policy is reached by the same probe',
    );
  });

  await t.test(
    'rolling update of the DaemonSet while probes run: no denied flow passes, allowed ones stay',
    async (t) => {
      const newImage = await c.retagImage(c.tollgateImage, 'lab-next');
      const log: { at: number; i: number; ok: boolean }[] = [];
      const list = flows();
      let running = true;
      // One loop per flow, so a denied flow's timeouts do not slow the allowed flows' sampling.
      const prober = Promise.all(
        list.map(async ([from, ip, , backend], i) => {
          while (running) {
            const p = await probe(c, from, ip, NS, 1);
            log.push({ at: performance.now(), i, ok: p.ok && p.body === backend });
          }
        }),
      );
      const t0 = performance.now();
      const nodeReady: Record<string, number> = {};
      const r = await c.kubectl([
        '-n',
        'tollgate-system',
        'set',
        'image',
        'daemonset/tollgate',
        `agent=${newImage}`,
      ]);
      t.equal(r.code, 0, 'set image');
      await waitFor(
        'both nodes on the new image',
        300_000,
        async () => {
          const pods = JSON.parse(
            (await c.kubectl(['-n', 'tollgate-system', 'get', 'pods', '-o', 'json'])).stdout,
          ) as {
            items: {
              spec: { nodeName: string; containers: { image: string }[] };
              status: { conditions?: { type: string; status: string }[] };
            }[];
          };
          for (const p of pods.items)
            if (
              p.spec.containers[0]!.image === newImage &&
              p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') &&
              !nodeReady[p.spec.nodeName]
            )
              nodeReady[p.spec.nodeName] = performance.now();
          return Object.keys(nodeReady).length === 2 ? true : undefined;
        },
        300,
      );
      await c.rollout();
      // A few more rounds after the last node is done.
      const end = performance.now() + 5000;
      while (performance.now() < end) await new Promise((r) => setTimeout(r, 250));
      running = false;
      await prober;
      const updateMs = Math.round(Math.max(...Object.values(nodeReady)) - t0);
      t.comment(
        `rollout took ${updateMs} ms; node ready at ${JSON.stringify(Object.fromEntries(Object.entries(nodeReady).map(([k, v]) => [k, Math.round(v - t0)])))}; ${log.length} probes`,
      );
      for (const [i, [from, ip, allow, , where]] of list.entries()) {
        const mine = log.filter((x) => x.i === i);
        if (!allow) {
          t.equal(
            mine.filter((x) => x.ok).length,
            0,
            `denied ${from} -> ${ip} (${where}) never passed in ${mine.length} probes`,
          );
          continue;
        }
        // The longest run of failures of an allowed flow, bounded by the whole update.
        let worst = 0;
        let since = 0;
        for (const x of mine) {
          if (!x.ok && !since) since = x.at;
          if (x.ok && since) {
            worst = Math.max(worst, x.at - since);
            since = 0;
          }
        }
        if (since) worst = Infinity;
        t.ok(
          worst <= updateMs,
          `allowed ${from} -> ${ip} (${where}): longest cut ${Math.round(worst)} ms <= update ${updateMs} ms (${mine.length} probes)`,
        );
      }
    },
  );

  await t.test('uninstall with daemonset/cleanup leaves no table on any node', async (t) => {
    const del = await c.kubectl(['-n', 'tollgate-system', 'delete', 'daemonset', 'tollgate', '--wait'], {
      timeoutMs: scaledMs(120_000),
    });
    t.equal(del.code, 0, 'DaemonSet deleted');
    for (const node of [n1, n2])
      t.equal(await nftTable(c, node), 0, `the table stays after the agent is gone (${node})`);
    const dir = c.manifestsWithLabImage('cleanup');
    t.equal((await c.kubectl(['apply', '-f', `${dir}/`])).code, 0, 'kubectl apply -f daemonset/cleanup/');
    const r = await c.kubectl(
      [
        '-n',
        'tollgate-system',
        'rollout',
        'status',
        'ds/tollgate-cleanup',
        `--timeout=${Math.round(scaledMs(180_000) / 1000)}s`,
      ],
      { timeoutMs: scaledMs(180_000) + 30_000 },
    );
    t.equal(r.code, 0, `cleanup rollout: ${r.stderr}`);
    for (const node of [n1, n2]) t.not(await nftTable(c, node), 0, `no inet tollgate table on ${node}`);
    const fin = await c.kubectl(
      ['delete', '--ignore-not-found', '-f', `${dir}/`, '-f', `${c.manifestsWithLabImage()}/`],
      {
        timeoutMs: scaledMs(120_000),
      },
    );
    t.equal(fin.code, 0, 'the rest deleted');
  });
});

// Point 14 again with kube-proxy in iptables mode (its DNAT lives in `ip nat` chains instead of kube-proxy's
// own nftables table): a second cluster, started after the first has stopped.
t.test('one cluster, kube-proxy in iptables mode: the ClusterIP is judged by the backend', async (t) => {
  const started = performance.now();
  const c = await startCluster({ proxyMode: 'iptables' });
  t.teardown(() => c.stop());
  t.comment(
    `cluster ${c.id} up in ${Math.round(performance.now() - started)} ms: ${JSON.stringify(c.timings)}`,
  );
  const mode = await c.onNode(c.nodes[0]!.name, ['iptables-save', '-t', 'nat']);
  t.match(mode.stdout, /KUBE-SERVICES/, 'kube-proxy programs iptables nat chains');
  const d = await setUpDemo(c, c.nodes[0]!.name, c.nodes[1]!.name);
  await smokeCase(t, c, d);
});
