// The pure half of running scenario files on a real cluster (scenario-driver.ts does the I/O): the manifests
// of scenario pods, label patches, placeholders filled with the cluster's real addresses, what a real cluster
// cannot offer (skip reasons) and the agents' metrics. No kubectl, no processes, no clock here.
import type { Probe } from '../../src/scenario/probes.ts';
import { isFault, type Scenario, type Step } from '../../src/scenario/types.ts';
import type { World, WorldPod } from '../../src/scenario/world.ts';
import { TollgateError } from '../../src/util/errors.ts';

export type ClusterScenarioErrorCode =
  | 'E_CLUSTER_SKIP' // the real cluster cannot offer what the scenario needs (counted as skipped, never passed)
  | 'E_CLUSTER_KUBECTL' // a kubectl call failed
  | 'E_CLUSTER_NOT_READY' // a pod did not become Ready, or an object did not go away, within the limit
  | 'E_CLUSTER_STATE'; // the cluster holds something the driver did not expect (a foreign pod of that name)

export class ClusterScenarioError extends TollgateError {
  declare readonly code: ClusterScenarioErrorCode;
  constructor(code: ClusterScenarioErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Marks the pods the driver made; its value is the pod's fingerprint (what cannot be patched in place). */
export const POD_ANNOTATION = 'tollgate.dev/scenario-pod';
/** Marks the namespaces the driver made (it deletes only those). */
export const NAMESPACE_ANNOTATION = 'tollgate.dev/scenario-namespace';
/** The API server sets it on every namespace; scenarios never manage it. */
export const METADATA_NAME = 'kubernetes.io/metadata.name';

export type Labels = Record<string, string>;

export interface PodManifest {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: { name: string; namespace: string; labels: Labels; annotations: Record<string, string> };
  spec: Record<string, unknown>;
}

/**
 * What a pod is made with and cannot be changed on a live pod: its node, network mode, ports and image.
 * Two scenarios that want the same fingerprint share the pod (only its labels are patched).
 */
export function podFingerprint(pod: WorldPod, nodeName: string, image: string): string {
  return JSON.stringify({
    node: nodeName,
    hostNetwork: pod.hostNetwork,
    ports: pod.ports.map((p) => [p.name ?? '', p.port, p.protocol]),
    image,
  });
}

/**
 * A scenario pod as agnhost `porter`: an HTTP server on each TCP port and an echo on each UDP port (the
 * answer names the pod and port). SCTP ports are declared (named ports resolve) but not served: porter
 * exits when the kernel has no SCTP, and SCTP probes are skipped anyway. Pinned with nodeName (no
 * scheduler decision), ready once its first TCP port accepts, so a refused probe never means "not up yet".
 */
export function podManifest(pod: WorldPod, nodeName: string, image: string): PodManifest {
  const env = pod.ports
    .filter((p) => p.protocol !== 'SCTP')
    .map((p) => ({
      name: p.protocol === 'TCP' ? `SERVE_PORT_${p.port}` : `SERVE_UDP_PORT_${p.port}`,
      value: `${pod.key} ${p.port}/${p.protocol}`,
    }));
  const firstTcp = pod.ports.find((p) => p.protocol === 'TCP');
  const container: Record<string, unknown> = {
    name: 'server',
    image,
    imagePullPolicy: 'IfNotPresent',
    args: ['porter'],
    env,
    ports: pod.ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      containerPort: p.port,
      protocol: p.protocol,
    })),
    ...(firstTcp
      ? { readinessProbe: { tcpSocket: { port: firstTcp.port }, periodSeconds: 1, failureThreshold: 1 } }
      : {}),
  };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      labels: { ...pod.labels },
      annotations: { [POD_ANNOTATION]: podFingerprint(pod, nodeName, image) },
    },
    spec: {
      nodeName,
      hostNetwork: pod.hostNetwork,
      containers: [container],
      // porter has no SIGTERM handler (Go's default ends it), so nothing is lost without a grace period.
      terminationGracePeriodSeconds: 1,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      tolerations: [{ operator: 'Exists' }],
    },
  };
}

/** A JSON merge patch of metadata.labels turning `from` into `to` (null removes); undefined: no change. */
export function labelsPatch(from: Labels, to: Labels): Record<string, string | null> | undefined {
  const patch: Record<string, string | null> = {};
  for (const k of Object.keys(from)) if (!Object.hasOwn(to, k)) patch[k] = null;
  for (const [k, v] of Object.entries(to)) if (from[k] !== v) patch[k] = v;
  return Object.keys(patch).length > 0 ? patch : undefined;
}

/** A namespace's labels as the scenario means them: the API server's metadata.name label aside. */
export function scenarioLabels(labels: Labels | undefined): Labels {
  const out = { ...(labels ?? {}) };
  delete out[METADATA_NAME];
  return out;
}

/** The real addresses the cluster gave: pod keys to pod IPs, node indexes to node IPs. */
export interface RealAddresses {
  pod(key: string): string | undefined;
  node(index: number): string | undefined;
}

/**
 * The scenario placeholders with the cluster's addresses (World.substitute uses the layout's, which a real
 * cluster does not honour: its IPAM decides). `${host-ip:NAME}` keeps the scenario's address: a policy may
 * name an outside host even where no such host exists. IPv6 placeholders skip: the cluster is IPv4.
 */
export function substituteReal(text: string, world: World, real: RealAddresses, where: string): string {
  return text.replace(
    /\$\{(ip|ip6|host-ip|host-ip6|node-ip|node-ip6):([^}]+)\}/g,
    (_m, kind: string, arg: string) => {
      if (kind.endsWith('6'))
        throw new ClusterScenarioError(
          'E_CLUSTER_SKIP',
          `${where}: \${${kind}:${arg}}: the cluster has no IPv6`,
        );
      if (kind === 'host-ip') return world.host(arg, where).ip;
      const ip = kind === 'ip' ? real.pod(world.pod(arg, where).key) : real.node(Number(arg));
      if (ip === undefined)
        throw new ClusterScenarioError(
          'E_CLUSTER_STATE',
          `${where}: \${${kind}:${arg}}: the cluster has no address for it (not running?)`,
        );
      return ip;
    },
  );
}

/** Why a whole scenario cannot run on a cluster of `nodeCount` nodes; undefined: it can. */
export function scenarioSkipReason(scenario: Scenario, nodeCount: number): string | undefined {
  if (scenario.nodes > nodeCount) return `needs ${scenario.nodes} nodes, the cluster has ${nodeCount}`;
  for (const step of scenario.steps)
    if (step.kind === 'add-pods' && step.pods.some((p) => p.sameIpAs !== undefined))
      return `${step.where}: same-ip-as (a pod object with another live pod's address) cannot exist under a real kubelet and IPAM`;
  const hostPorts = new Map<string, string>();
  for (const p of [
    ...scenario.pods,
    ...scenario.steps.flatMap((s) => (s.kind === 'add-pods' ? s.pods : [])),
  ]) {
    if (!p.hostNetwork) continue;
    for (const port of p.ports) {
      const key = `${p.node ?? '?'} ${port.port}/${port.protocol}`;
      const other = hostPorts.get(key);
      if (other !== undefined && other !== p.name)
        return `hostNetwork pods ${other} and ${p.name} both serve ${port.port}/${port.protocol} on one node`;
      hostPorts.set(key, p.name);
    }
  }
  return undefined;
}

/** Why one probe cannot be sent on the real cluster; undefined: it can. */
export function probeSkipReason(probe: Probe, hosts: boolean): string | undefined {
  if (probe.protocol === 'SCTP') return 'SCTP probes are not run on the real cluster';
  if (probe.family === 6)
    return 'IPv6 probes are not run on the real cluster (its scenario pods are IPv4 only)';
  for (const e of [probe.from, probe.to])
    if (e.kind === 'host' && !hosts) return 'the cluster offers no outside hosts (host/ endpoints)';
  return undefined;
}

/** Why a fault step cannot be carried out on the real cluster (all of them, for now). */
export function faultSkipReason(step: Step): string | undefined {
  if (!isFault(step)) return undefined;
  return `${step.where}: ${step.kind} faults are not carried out on the real cluster; later expectations are skipped`;
}

export interface MetricSample {
  name: string;
  labels: Labels;
  value: number;
}

/** Prometheus text format, the samples only (comments and malformed lines dropped). */
export function parseMetrics(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    const value = Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** The sum of a metric's samples whose labels include `labels`; undefined when there is none. */
export function metricValue(samples: MetricSample[], name: string, labels: Labels = {}): number | undefined {
  const hits = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return hits.length === 0 ? undefined : hits.reduce((a, s) => a + s.value, 0);
}

/** What the driver reads of a pod in `kubectl get pods -o json`. */
export interface ApiPod {
  metadata: {
    name: string;
    namespace: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
    labels?: Labels;
  };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string; podIP?: string };
}

/**
 * The pods an agent programs on each node: live ones with an address of their own (not hostNetwork, not
 * finished, not being deleted). An agent whose `tollgate_programmed{what="pods"}` equals this count has
 * seen every pod start and go.
 */
export function livePodsByNode(pods: ApiPod[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of pods) {
    if (p.spec.hostNetwork || !p.spec.nodeName || !p.status?.podIP) continue;
    if (p.metadata.deletionTimestamp || p.status.phase === 'Succeeded' || p.status.phase === 'Failed')
      continue;
    out.set(p.spec.nodeName, (out.get(p.spec.nodeName) ?? 0) + 1);
  }
  return out;
}

export interface NodeSyncState {
  /** tollgate_last_successful_sync_timestamp_seconds, as epoch ms. */
  lastSuccessMs: number | undefined;
  failures: number | undefined;
  programmedPods: number | undefined;
}

export function nodeSyncState(samples: MetricSample[]): NodeSyncState {
  const last = metricValue(samples, 'tollgate_last_successful_sync_timestamp_seconds');
  return {
    lastSuccessMs: last === undefined ? undefined : last * 1000,
    failures: metricValue(samples, 'tollgate_sync_failures_consecutive'),
    programmedPods: metricValue(samples, 'tollgate_programmed', { what: 'pods' }),
  };
}

/**
 * Whether a node's agent has caught up with a change written at `changedAtMs`: a successful sync since, no
 * failing syncs, and its programmed pods equal the API's live pods of that node. Necessary, not sufficient
 * (a sync for an earlier event may end after the change): the probes still retry until they hold.
 */
export function caughtUp(state: NodeSyncState, changedAtMs: number, livePods: number): string | undefined {
  if (state.lastSuccessMs === undefined) return 'no successful sync yet';
  if (state.lastSuccessMs < changedAtMs)
    return `last successful sync ${Math.round(changedAtMs - state.lastSuccessMs)} ms before the change`;
  if (state.failures !== 0) return `${state.failures ?? '?'} failing syncs in a row`;
  if (state.programmedPods !== livePods)
    return `programs ${state.programmedPods ?? '?'} pods, the API has ${livePods} live pods on the node`;
  return undefined;
}
