// The cluster a scenario describes, as Kubernetes objects, changed step by step; also the address layout
// shared by the model and the lab (node N: 198.51.100.N and 2001:db8::N, pods 10.244.N.10+ and
// fd00:10:244:N::10+, outside host a.b.c.d also at 2001:db8:a:b:c::d).
// No probing and no kernel access here.
import { isIPv4 } from 'node:net';
import { CLUSTER_POLICY_KIND, withClusterPolicies } from '../policy/cluster-normalize.ts';
import { buildState } from '../policy/normalize.ts';
import type { ClusterState } from '../policy/types.ts';
import { ScenarioError, yamlDocuments } from './parse.ts';
import type { Scenario, ScenarioHost, ScenarioPod, ScenarioPort, Step } from './types.ts';

export interface LayoutNode {
  index: number;
  name: string;
  ip4: string;
  ip6: string;
  podCIDR4: string;
  podCIDR6: string;
}

export interface WorldPod {
  key: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  node: number;
  hostNetwork: boolean;
  /** Host number inside the node's pod CIDR (10.244.N.<host>); undefined for hostNetwork pods. */
  host: number | undefined;
  ports: ScenarioPort[];
  /**
   * `same-ip-as`: the addresses of another (live) pod, claimed by this one. Such a pod exists only in
   * the API (a stale object, a bad status): the lab runs no pod for it and probes cannot name it.
   */
  claimed: { ip4: string; ip6: string; of: string } | undefined;
}

/** An outside host with both its addresses (the IPv6 one derived: hostIp6). */
export type WorldHost = ScenarioHost & { ip6: string };

type K8sObject = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } };

export function layoutNode(index: number): LayoutNode {
  return {
    index,
    name: `node-${index}`,
    ip4: `198.51.100.${index}`,
    ip6: `2001:db8::${index.toString(16)}`,
    podCIDR4: `10.244.${index}.0/24`,
    podCIDR6: `fd00:10:244:${index.toString(16)}::/64`,
  };
}

/**
 * An outside host's IPv6 address, derived from its IPv4 one so both read alike and no two hosts collide:
 * 203.0.113.10 -> 2001:db8:203:0:113::10 (the decimal parts written as groups, as pods' host numbers are).
 * Hosts of the lab (203.0.113.0/24) land in 2001:db8:203::/64, apart from the nodes' 2001:db8::/64.
 */
export function hostIp6(ip4: string): string {
  const parts = ip4.split('.');
  if (parts.length !== 4 || !isIPv4(ip4))
    throw new ScenarioError(`host address ${ip4} is not an IPv4 address (hosts: ip)`);
  const [a, b, c, d] = parts as [string, string, string, string];
  return `2001:db8:${Number(a)}:${Number(b)}:${Number(c)}::${Number(d)}`;
}

const FIRST_POD_HOST = 10; // .0 is flannel.1, .1 the cni0 gateway
const LAST_POD_HOST = 254;

export class World {
  readonly scenario: Scenario;
  readonly nodes: LayoutNode[];
  readonly hosts: WorldHost[];
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly pods = new Map<string, WorldPod>();
  readonly policies = new Map<string, K8sObject>();
  /** ClusterNetworkPolicy objects by name (cluster-scoped). */
  readonly clusterPolicies = new Map<string, K8sObject>();
  /** Addresses of deleted pods, for `reuse-ip-of`. */
  private readonly released = new Map<string, { node: number; host: number }>();
  private readonly nextHost = new Map<number, number>();
  private roundRobin = 0;

  constructor(scenario: Scenario) {
    this.scenario = scenario;
    this.nodes = Array.from({ length: scenario.nodes }, (_, i) => layoutNode(i + 1));
    this.hosts = scenario.hosts.map((h) => ({ ...h, ip6: hostIp6(h.ip) }));
    for (const ns of scenario.namespaces) this.namespaces.set(ns.name, { ...ns.labels });
    scenario.pods.forEach((p, i) => {
      this.addPod(p, `${scenario.file}: pods[${i}]`);
    });
  }

  private addPod(spec: ScenarioPod, where: string): WorldPod {
    if (this.pods.has(spec.name)) throw new ScenarioError(`${where}: pod ${spec.name} already exists`);
    const [namespace, name] = spec.name.split('/') as [string, string];
    if (!this.namespaces.has(namespace)) this.namespaces.set(namespace, {});
    let node = spec.node ?? (this.roundRobin++ % this.nodes.length) + 1;
    let host: number | undefined;
    let claimed: WorldPod['claimed'];
    if (spec.sameIpAs !== undefined) {
      const owner = this.pods.get(spec.sameIpAs);
      if (!owner || owner.hostNetwork || owner.claimed)
        throw new ScenarioError(
          `${where}: same-ip-as: ${spec.sameIpAs} is not a live pod with its own address`,
        );
      if (spec.hostNetwork) throw new ScenarioError(`${where}: same-ip-as: a hostNetwork pod has no address`);
      claimed = { ip4: this.podIp4(owner), ip6: this.podIp6(owner), of: owner.key };
      node = spec.node ?? owner.node;
    } else if (spec.reuseIpOf !== undefined) {
      const old = this.released.get(spec.reuseIpOf);
      if (!old) throw new ScenarioError(`${where}: reuse-ip-of: ${spec.reuseIpOf} is not a deleted pod`);
      this.released.delete(spec.reuseIpOf);
      node = old.node;
      host = old.host;
    } else if (!spec.hostNetwork) {
      host = this.nextHost.get(node) ?? FIRST_POD_HOST;
      if (host > LAST_POD_HOST) throw new ScenarioError(`${where}: node ${node} has no pod address left`);
      this.nextHost.set(node, host + 1);
    }
    const pod: WorldPod = {
      key: spec.name,
      namespace,
      name,
      labels: { ...spec.labels },
      node,
      hostNetwork: spec.hostNetwork,
      host,
      ports: spec.ports,
      claimed,
    };
    this.pods.set(pod.key, pod);
    return pod;
  }

  node(index: number): LayoutNode {
    const n = this.nodes[index - 1];
    if (!n) throw new ScenarioError(`${this.scenario.file}: there is no node ${index}`);
    return n;
  }

  podIp4(pod: WorldPod): string {
    if (pod.claimed) return pod.claimed.ip4;
    return pod.host === undefined ? this.node(pod.node).ip4 : `10.244.${pod.node}.${pod.host}`;
  }

  podIp6(pod: WorldPod): string {
    if (pod.claimed) return pod.claimed.ip6;
    return pod.host === undefined
      ? this.node(pod.node).ip6
      : `fd00:10:244:${pod.node.toString(16)}::${pod.host}`;
  }

  pod(key: string, where: string): WorldPod {
    const p = this.pods.get(key);
    if (!p) throw new ScenarioError(`${where}: no pod ${key}`);
    return p;
  }

  host(name: string, where: string): WorldHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new ScenarioError(`${where}: no host ${name}`);
    return h;
  }

  /** Replaces ${ip:ns/pod}, ${ip6:ns/pod}, ${host-ip:NAME}, ${host-ip6:NAME}, ${node-ip:N}, ${node-ip6:N}. */
  substitute(text: string, where: string): string {
    return text.replace(
      /\$\{(ip|ip6|host-ip|host-ip6|node-ip|node-ip6):([^}]+)\}/g,
      (_m, kind: string, arg: string) => {
        if (kind === 'ip') return this.podIp4(this.pod(arg, where));
        if (kind === 'ip6') return this.podIp6(this.pod(arg, where));
        if (kind === 'host-ip') return this.host(arg, where).ip;
        if (kind === 'host-ip6') return this.host(arg, where).ip6;
        const node = this.node(this.nodeIndex(arg, where));
        return kind === 'node-ip' ? node.ip4 : node.ip6;
      },
    );
  }

  private nodeIndex(text: string, where: string): number {
    if (!/^\d+$/.test(text.trim())) throw new ScenarioError(`${where}: '${text}' is not a node number`);
    return Number(text);
  }

  /** The pods the lab runs (every pod but those that exist only in the API). */
  labPods(): WorldPod[] {
    return [...this.pods.values()].filter((p) => p.claimed === undefined);
  }

  /** Applies a state-changing step; expect/matrix and fault steps change nothing. */
  applyStep(step: Step): void {
    switch (step.kind) {
      case 'apply':
        this.applyDocuments(this.substitute(step.text, step.where), step.where);
        return;
      case 'delete':
        this.delete(step.resource, step.key, step.where);
        return;
      case 'label': {
        const labels =
          step.target === 'namespace' ? this.namespaces.get(step.key) : this.pods.get(step.key)?.labels;
        if (!labels) throw new ScenarioError(`${step.where}: no ${step.target} ${step.key}`);
        Object.assign(labels, step.set);
        for (const k of step.remove) delete labels[k];
        return;
      }
      case 'add-pods':
        step.pods.forEach((p, i) => {
          this.addPod(p, `${step.where}[${i}]`);
        });
        return;
      default:
        return;
    }
  }

  private delete(resource: string, key: string, where: string): void {
    if (resource === 'clusternetworkpolicy') this.deleteClusterPolicy(key, where);
    else if (resource === 'networkpolicy') {
      const k = key.includes('/') ? key : `default/${key}`;
      if (!this.policies.delete(k)) throw new ScenarioError(`${where}: no networkpolicy ${k}`);
    } else if (resource === 'pod') {
      const pod = this.pod(key, where);
      this.pods.delete(key);
      if (pod.host !== undefined) this.released.set(key, { node: pod.node, host: pod.host });
    } else {
      if (!this.namespaces.delete(key)) throw new ScenarioError(`${where}: no namespace ${key}`);
      for (const [k, p] of this.pods) if (p.namespace === key) this.pods.delete(k);
      for (const [k, p] of this.policies) if (p.metadata.namespace === key) this.policies.delete(k);
    }
  }

  private deleteClusterPolicy(name: string, where: string): void {
    if (!this.clusterPolicies.delete(name))
      throw new ScenarioError(`${where}: no clusternetworkpolicy ${name}`);
  }

  /** A ClusterNetworkPolicy document: cluster-scoped, so a namespace in it is an error, not ignored. */
  private applyClusterPolicy(obj: K8sObject, where: string): void {
    if (obj.metadata.namespace !== undefined)
      throw new ScenarioError(
        `${where}: a ClusterNetworkPolicy is cluster-scoped: remove metadata.namespace`,
      );
    this.clusterPolicies.set(obj.metadata.name, obj);
  }

  private applyDocuments(text: string, where: string): void {
    yamlDocuments(text, where).forEach((doc, i) => {
      const obj = doc as K8sObject | null;
      if (obj === null) return;
      const name = obj?.metadata?.name;
      if (typeof name !== 'string')
        throw new ScenarioError(`${where}: document ${i}: metadata.name is required`);
      if (obj.kind === CLUSTER_POLICY_KIND) {
        this.applyClusterPolicy(obj, `${where}: document ${i}`);
        return;
      }
      const namespace = obj.metadata.namespace ?? 'default';
      switch (obj.kind) {
        case 'NetworkPolicy':
          this.policies.set(`${namespace}/${name}`, { ...obj, metadata: { ...obj.metadata, namespace } });
          break;
        case 'Namespace': {
          const labels = (obj.metadata as { labels?: Record<string, string> }).labels ?? {};
          this.namespaces.set(name, { ...labels });
          break;
        }
        case 'Pod': {
          const pod = this.pod(`${namespace}/${name}`, `${where}: document ${i}`);
          const labels = (obj.metadata as { labels?: Record<string, string> }).labels ?? {};
          for (const k of Object.keys(pod.labels)) delete pod.labels[k];
          Object.assign(pod.labels, labels);
          break;
        }
        default:
          throw new ScenarioError(
            `${where}: document ${i}: kind '${String(obj.kind)}' is not NetworkPolicy, ClusterNetworkPolicy, Namespace or Pod`,
          );
      }
    });
  }

  /** The cluster as Kubernetes API objects (what a real API server would hold). */
  objects(): {
    namespaces: K8sObject[];
    nodes: K8sObject[];
    pods: K8sObject[];
    policies: K8sObject[];
    clusterPolicies: K8sObject[];
  } {
    const namespaces = [...this.namespaces].map(([name, labels]) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { ...labels } },
    }));
    const nodes = this.nodes.map((n) => ({
      apiVersion: 'v1',
      kind: 'Node',
      // What every kubelet sets (ClusterNetworkPolicy node peers select by them).
      metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux' } },
      spec: { podCIDR: n.podCIDR4, podCIDRs: [n.podCIDR4, n.podCIDR6] },
      status: {
        addresses: [
          { type: 'InternalIP', address: n.ip4 },
          { type: 'InternalIP', address: n.ip6 },
        ],
      },
    }));
    const pods = [...this.pods.values()].map((p) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels } },
      spec: {
        nodeName: this.node(p.node).name,
        hostNetwork: p.hostNetwork,
        containers: [
          {
            name: 'server',
            ports: p.ports.map((x) => ({
              ...(x.name ? { name: x.name } : {}),
              containerPort: x.port,
              protocol: x.protocol,
            })),
          },
        ],
      },
      status: {
        phase: 'Running',
        podIP: this.podIp4(p),
        podIPs: [{ ip: this.podIp4(p) }, { ip: this.podIp6(p) }],
      },
    }));
    return {
      namespaces,
      nodes,
      pods,
      policies: [...this.policies.values()],
      clusterPolicies: [...this.clusterPolicies.values()],
    };
  }

  /** The normalized cluster state the policy engine works on. */
  state(): ClusterState {
    const objects = this.objects();
    return withClusterPolicies(buildState(objects), objects.clusterPolicies);
  }
}
