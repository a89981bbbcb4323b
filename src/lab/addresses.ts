// Address conventions of the lab (node, pod, host, router addresses and MACs): pure functions, no I/O.
// Must not reach outside the documentation/pod ranges listed in shared/scenarios/README.md.
import { isIPv4, isIPv6 } from 'node:net';
import { hostIp6, layoutNode } from '../scenario/world.ts';
import { LabError } from './errors.ts';
import type { HostSpec, LabSpec, NodeSpec, PodSpec, PortSpec } from './types.ts';

/** The underlay router (the lab's "network" namespace) on the node and host networks. */
export const ROUTER = {
  nodeNet4: '198.51.100.254',
  nodeNet6: '2001:db8::fffe',
  hostNet4: '203.0.113.254',
  /** hostIp6 of 203.0.113.254: the router is on the host network in both families alike. */
  hostNet6: '2001:db8:203:0:113::254',
} as const;

export const NODE_NET4_PREFIX = 24;
export const NODE_NET6_PREFIX = 64;
export const HOST_NET4_PREFIX = 24;
/** Outside hosts' IPv6 network: hostIp6 maps 203.0.113.0/24 into it, apart from the nodes' 2001:db8::/64. */
export const HOST_NET6 = '2001:db8:203::/64';
export const HOST_NET6_PREFIX = 64;

/** An outside host's IPv6 address: the one given, else derived from its IPv4 one as the scenario layout does. */
export function hostAddress6(host: HostSpec): string {
  return host.ip6 ?? hostIp6(host.ip4);
}

/** The node at index N as Flannel and the scenario README name it. */
export function nodeSpec(index: number): NodeSpec {
  if (!Number.isInteger(index) || index < 1 || index > 253) {
    throw new LabError('E_LAB_SPEC', `node index ${index} is outside 1..253`);
  }
  // The scenario layout owns the address plan (model and lab must agree at any node count); a
  // standalone lab names its nodes nodeN.
  return { ...layoutNode(index), name: `node${index}` };
}

/** `10.244.1.0/24` -> `10.244.1.`; only /24 networks are supported. */
export function prefix4(cidr: string): string {
  const m = /^(\d+\.\d+\.\d+\.)0\/24$/.exec(cidr);
  if (!m?.[1] || !isIPv4(`${m[1]}0`)) {
    throw new LabError('E_LAB_SPEC', `pod CIDR ${cidr} is not an IPv4 /24 ending in .0/24`);
  }
  return m[1];
}

/** `fd00:10:244:1::/64` -> `fd00:10:244:1::`; only /64 written with a trailing `::` is supported. */
export function prefix6(cidr: string): string {
  const m = /^([0-9a-f:]+::)\/64$/i.exec(cidr);
  if (!m?.[1] || !isIPv6(m[1]) || m[1].split(':').filter((g) => g !== '').length > 4) {
    throw new LabError('E_LAB_SPEC', `pod CIDR ${cidr} is not an IPv6 /64 written as PREFIX::/64`);
  }
  return m[1];
}

/** Host number of an IPv4 address inside a /24 (`10.244.1.12` -> 12), or undefined if outside it. */
export function hostNumber4(cidr: string, ip: string): number | undefined {
  const p = prefix4(cidr);
  if (!isIPv4(ip) || !ip.startsWith(p)) return undefined;
  return Number(ip.slice(p.length));
}

export function podIP4(node: NodeSpec, host: number): string {
  return `${prefix4(node.podCIDR4)}${host}`;
}

/** Same host number as the IPv4 address, written in hex (`.12` -> `::c`), so both stay easy to pair. */
export function podIP6(node: NodeSpec, host: number): string {
  return `${prefix6(node.podCIDR6)}${host.toString(16)}`;
}

export function gateway4(node: NodeSpec): string {
  return podIP4(node, 1);
}

export function gateway6(node: NodeSpec): string {
  return `${prefix6(node.podCIDR6)}1`;
}

/** Flannel puts the subnet's network address on flannel.1 (10.244.N.0/32) and uses it as the next hop. */
export function vtep4(node: NodeSpec): string {
  return podIP4(node, 0);
}

export function vtep6(node: NodeSpec): string {
  return prefix6(node.podCIDR6);
}

function mac(bytes: number[]): string {
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * A pod's MAC derived from its IPv4 address, as the CNI bridge plugin does (0a:58:<ip>): a pod re-created
 * with a deleted pod's address gets the same MAC, so neighbour caches on the node and in other pods stay valid.
 */
export function podMAC(ip4: string): string {
  return mac([0x0a, 0x58, ...ip4.split('.').map(Number)]);
}

/** Fixed VTEP MACs so every node can program its peers without asking them (locally administered). */
export function vtepMAC(node: NodeSpec, family: 4 | 6): string {
  return mac([0x0e, family === 4 ? 0x04 : 0x06, 0, 0, (node.index >> 8) & 0xff, node.index & 0xff]);
}

/** The default ports every pod serves when the scenario names none (shared/scenarios/README.md). */
export const DEFAULT_PORTS: readonly PortSpec[] = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 80, protocol: 'UDP' },
  { port: 81, protocol: 'UDP' },
];

/**
 * A demo spec: `nodes` nodes, `podsPerNode` pods per node in namespaces x/y/z round-robin, each serving the
 * default ports, and one outside host `backup` at 203.0.113.10 and 2001:db8:203:0:113::10.
 */
export function demoSpec(nodes: number, pods: number): LabSpec {
  const nodeSpecs = Array.from({ length: nodes }, (_, i) => nodeSpec(i + 1));
  const namespaces = ['x', 'y', 'z'];
  const podSpecs: PodSpec[] = Array.from({ length: pods }, (_, i) => ({
    key: `${namespaces[i % 3]}/${String.fromCharCode(97 + (Math.floor(i / 3) % 26))}${i >= 78 ? i : ''}`,
    node: (i % nodes) + 1,
    hostNetwork: false,
    ports: [...DEFAULT_PORTS],
  }));
  const hosts: HostSpec[] = [
    {
      name: 'backup',
      ip4: '203.0.113.10',
      ip6: hostIp6('203.0.113.10'),
      ports: [{ port: 80, protocol: 'TCP' }],
    },
  ];
  return { nodes: nodeSpecs, pods: podSpecs, hosts };
}
