// Static checks of the install manifests in daemonset/: every YAML parses, `kubectl apply -f daemonset/`
// creates the Namespace first, and the agent runs with exactly the privileges and wiring it needs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = join(REPO, 'daemonset');

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; the assertions check the shape.
type Obj = any;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return yamlFiles(p);
      return /\.ya?ml$/.test(name) ? [p] : [];
    });
}

interface Loaded {
  file: string;
  obj: Obj;
}

function load(file: string): Loaded[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${file}: document ${i}: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as Obj;
    return obj === null ? [] : [{ file: relative(REPO, file), obj }];
  });
}

const files = yamlFiles(DIR);
const all = files.flatMap(load);
const find = (kind: string, name: string, where = all): Obj => {
  const hit = where.find((x) => x.obj.kind === kind && x.obj.metadata?.name === name);
  if (!hit) throw new Error(`no ${kind} ${name} in daemonset/`);
  return hit.obj;
};
// `kubectl apply -f daemonset/` reads the directory's own files in name order, not subdirectories.
const topLevel = files.filter((f) => dirname(f) === DIR).flatMap(load);
const agentDs = find('DaemonSet', 'tollgate', topLevel);
const cleanupDs = find('DaemonSet', 'tollgate-cleanup');
const agentPod = agentDs.spec.template.spec;
const agent = agentPod.containers.find((c: Obj) => c.name === 'agent');

function bytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(String(quantity));
  if (!m) throw new Error(`not a memory quantity: ${quantity}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

/** The address the agent is told to listen on, as HOST and PORT. */
function metricsAddr(container: Obj): { host: string; port: number } {
  const args: string[] = [...(container.command ?? []), ...(container.args ?? [])];
  const i = args.findIndex((a) => a === '--metrics-addr' || a.startsWith('--metrics-addr='));
  if (i < 0) throw new Error('the agent gets no --metrics-addr (its default 127.0.0.1 fails the probes)');
  const value = args[i]!.includes('=') ? args[i]!.split('=')[1]! : args[i + 1]!;
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
}

function probePort(container: Obj, probe: Obj): number {
  const port = probe.httpGet.port;
  if (typeof port === 'number') return port;
  const named = (container.ports ?? []).find((p: Obj) => p.name === port);
  if (!named) throw new Error(`probe port ${port} names no container port`);
  return named.containerPort;
}

t.test('every manifest parses and has kind, apiVersion and a name', async (t) => {
  t.ok(files.length >= 3, `${files.length} YAML files`);
  for (const { file, obj } of all) {
    t.ok(obj.apiVersion && obj.kind && obj.metadata?.name, `${file}: ${obj.kind}/${obj.metadata?.name}`);
  }
});

t.test('kubectl apply -f daemonset/ creates the Namespace before anything in it', async (t) => {
  const nsIndex = topLevel.findIndex((x) => x.obj.kind === 'Namespace');
  t.ok(nsIndex >= 0, 'a Namespace among the top-level files');
  const ns = topLevel[nsIndex]!.obj.metadata.name;
  t.equal(ns, 'tollgate-system');
  topLevel.forEach((x, i) => {
    if (x.obj.metadata.namespace === ns) t.ok(i > nsIndex, `${x.file}: ${x.obj.kind} comes after it`);
  });
  t.ok(
    files.some((f) => relative(REPO, f) === 'daemonset/rbac.yaml'),
    'rbac.yaml keeps its name (other tests apply it)',
  );
  t.notOk(
    topLevel.some((x) => x.obj.metadata?.name === 'tollgate-cleanup'),
    'the cleanup DaemonSet is not installed with the agent',
  );
});

t.test('the ClusterRole reads pods, namespaces, nodes and the two policy kinds, nothing more', async (t) => {
  const role = find('ClusterRole', 'tollgate');
  const granted = new Set<string>();
  for (const rule of role.rules) {
    t.same([...rule.verbs].sort(), ['get', 'list', 'watch'], `verbs on ${rule.resources}`);
    t.notOk(rule.nonResourceURLs || rule.resourceNames, 'no URL or name-scoped rules');
    for (const group of rule.apiGroups) for (const r of rule.resources) granted.add(`${group}/${r}`);
  }
  t.same(
    [...granted].sort(),
    [
      '/namespaces',
      '/nodes',
      '/pods',
      'networking.k8s.io/networkpolicies',
      'policy.networking.k8s.io/clusternetworkpolicies',
    ],
    'exactly the five resources',
  );
  const binding = find('ClusterRoleBinding', 'tollgate');
  t.same(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tollgate' });
  t.same(binding.subjects, [{ kind: 'ServiceAccount', name: 'tollgate', namespace: 'tollgate-system' }]);
  find('ServiceAccount', 'tollgate');
  t.equal(agentPod.serviceAccountName, 'tollgate', 'the agent runs as that service account');
});

t.test('the agent DaemonSet: host network, NET_ADMIN only, read-only, every node', async (t) => {
  t.equal(agentDs.metadata.namespace, 'tollgate-system');
  t.same(agentDs.spec.selector.matchLabels, agentDs.spec.template.metadata.labels, 'the selector matches');
  t.equal(agentPod.hostNetwork, true, 'hostNetwork: the table lives in the node network namespace');
  t.equal(agentPod.priorityClassName, 'system-node-critical');
  t.ok(agentPod.terminationGracePeriodSeconds > 0, 'a termination grace period');
  t.same(agentDs.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  t.ok(
    agentPod.tolerations.some((x: Obj) => x.operator === 'Exists' && !x.key && !x.effect),
    'tolerates every taint',
  );
  t.notOk(agentPod.hostPID || agentPod.hostIPC, 'no host PID or IPC namespace');
  // One hostPath, the agent's state directory (pod ranges for the boot-closed table), mounted where
  // --state-dir points.
  const hostPaths = (agentPod.volumes ?? []).filter((v: Obj) => v.hostPath);
  t.same(
    hostPaths.map((v: Obj) => v.hostPath),
    [{ path: '/var/lib/tollgate', type: 'DirectoryOrCreate' }],
    'only the state directory from the host',
  );
  t.equal(agentPod.containers.length, 1, 'one container');
  t.ok(agent, 'a container named agent');
  t.equal(agent.args?.[0], 'agent', 'it runs `tollgate agent` (the image entrypoint is tollgate)');
  const mount = agent.volumeMounts?.find((m: Obj) => m.name === hostPaths[0]?.name);
  t.ok(agent.args.includes(`--state-dir=${mount?.mountPath}`), '--state-dir is the mounted state directory');
  t.notOk(agent.command, 'the image entrypoint is kept');

  const sc = agent.securityContext;
  t.not(sc.privileged, true, 'not privileged');
  t.equal(sc.allowPrivilegeEscalation, false, 'no privilege escalation');
  t.equal(sc.readOnlyRootFilesystem, true, 'read-only root filesystem');
  t.equal(sc.runAsUser, 0, 'uid 0: Kubernetes grants added capabilities to root only');
  t.same(sc.capabilities.drop, ['ALL'], 'drops every capability');
  t.same(sc.capabilities.add, ['NET_ADMIN'], 'adds back NET_ADMIN only');
  t.notOk(agentPod.securityContext?.sysctls, 'no sysctls');

  const env = Object.fromEntries(agent.env.map((e: Obj) => [e.name, e]));
  t.equal(env.NODE_NAME?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName', 'NODE_NAME from the downward API');

  const limit = bytes(agent.resources.limits.memory);
  t.ok(limit >= 256 * 2 ** 20, `memory limit ${agent.resources.limits.memory} well above the 150 MB target`);
  t.ok(bytes(agent.resources.requests.memory) <= limit, 'request within the limit');
  t.ok(agent.resources.requests.cpu, 'a CPU request');
});

t.test('probes reach the agent where it listens', async (t) => {
  const { host, port } = metricsAddr(agent);
  t.ok(port > 0 && port < 65536, `port ${port}`);
  t.notOk(/^(127\.|localhost$|\[::1\]$)/.test(host), `${host}: not loopback (the kubelet probes the pod IP)`);
  const variable = /^\$\(([A-Z_]+)\)$/.exec(host)?.[1];
  if (variable) {
    const source = agent.env.find((e: Obj) => e.name === variable);
    t.equal(source?.valueFrom?.fieldRef?.fieldPath, 'status.podIP', `${variable} is the pod IP`);
  } else {
    t.ok(host === '0.0.0.0' || host === '', `${host}: all addresses`);
  }
  t.equal(agent.livenessProbe.httpGet.path, '/healthz', 'liveness on /healthz');
  t.equal(agent.readinessProbe.httpGet.path, '/readyz', 'readiness on /readyz');
  t.equal(probePort(agent, agent.livenessProbe), port, 'liveness on the metrics port');
  t.equal(probePort(agent, agent.readinessProbe), port, 'readiness on the metrics port');
  t.notOk(agent.livenessProbe.httpGet.host, 'the probes use the pod IP');
  t.ok(
    agent.ports.some((p: Obj) => p.containerPort === port && p.protocol === 'TCP'),
    'the port is declared (a host port: the scheduler keeps it free)',
  );
});

t.test('the cleanup DaemonSet runs `tollgate cleanup` once per node with NET_ADMIN only', async (t) => {
  const spec = cleanupDs.spec.template.spec;
  t.equal(cleanupDs.metadata.namespace, 'tollgate-system');
  t.equal(spec.hostNetwork, true);
  t.ok(spec.tolerations.some((x: Obj) => x.operator === 'Exists' && !x.key));
  const init = spec.initContainers.find((c: Obj) => c.args?.[0] === 'cleanup');
  t.ok(init, 'an init container runs `tollgate cleanup`');
  t.same(init.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
  t.equal(init.securityContext.allowPrivilegeEscalation, false);
  t.equal(init.securityContext.readOnlyRootFilesystem, true);
  for (const c of spec.containers) {
    t.notOk(c.securityContext?.capabilities?.add, `${c.name}: no capability`);
    t.equal(c.securityContext?.privileged ?? false, false);
  }
});

t.test('one image name everywhere, and the README builds and loads that name', async (t) => {
  const images = new Set<string>();
  for (const { obj } of all) {
    const spec = obj.spec?.template?.spec;
    if (!spec) continue;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) images.add(c.image);
  }
  t.equal(images.size, 1, `one image: ${[...images].join(', ')}`);
  const image = [...images][0]!;
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  t.ok(readme.includes(`docker build -t ${image} .`), `the README builds ${image}`);
  t.ok(readme.includes(`kind load docker-image ${image}`), `the README loads ${image} into kind`);
  t.ok(readme.includes('k3s ctr images import'), 'the README imports the image into k3s');
  const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
  t.ok(dockerfile.includes(`docker build -t ${image} .`), `the Dockerfile's build line makes ${image}`);
});
