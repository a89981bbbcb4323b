// The plain input of the lab (LabSpec) and the shapes it returns; data only, no behaviour.
// It reads no scenario files (an adapter turns a scenario into a LabSpec); the node shape is the scenario layout's.
import type { LayoutNode } from '../scenario/world.ts';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface PortSpec {
  port: number;
  protocol: Protocol;
}

/**
 * A node: index N (node/N), name, 198.51.100.N and 2001:db8::N, pod CIDRs 10.244.N.0/24 (only /24) and
 * fd00:10:244:N::/64 (only /64 written as `PREFIX::/64`). The same shape as the scenario layout's.
 */
export type NodeSpec = LayoutNode;

export interface PodSpec {
  /** `namespace/name`. */
  key: string;
  /** NodeSpec.index of the node the pod runs on. */
  node: number;
  /** Default: the next never-used address from .10 up in the node's podCIDR4 (ignored for hostNetwork). */
  ip4?: string;
  /** Default: the IPv6 address with the same host number as ip4 in podCIDR6. */
  ip6?: string;
  /** A hostNetwork pod has no namespace of its own: it is the node namespace and its addresses. */
  hostNetwork: boolean;
  ports: PortSpec[];
}

export interface HostSpec {
  /** host/NAME in probes. */
  name: string;
  /** In 203.0.113.0/24, not .254 (the underlay router). */
  ip4: string;
  /** In 2001:db8:203::/64 (HOST_NET6); default: derived from ip4 as the scenario layout does (hostIp6). */
  ip6?: string;
  ports: PortSpec[];
}

export interface LabSpec {
  nodes: NodeSpec[];
  pods: PodSpec[];
  hosts: HostSpec[];
}

/** The result of one probe: `ok` means the server answered (HTTP response or UDP echo). */
export interface ProbeResult {
  from: string;
  to: string;
  /** The address actually probed. */
  address: string;
  port: number;
  protocol: Protocol;
  ok: boolean;
  /** The responder's identity when ok, else why not (curl exit code, timeout, refused). */
  detail: string;
  ms: number;
}

export interface ProbeOptions {
  /** Whole-probe budget; TCP connect timeout is min(1 s, this). Default 2000. */
  timeoutMs?: number;
  /** Address family used when `to` names an endpoint. Default 4. */
  family?: 4 | 6;
}

export interface ProbeRequest extends ProbeOptions {
  from: string;
  to: string;
  port: number;
  protocol: Protocol;
}

export interface ExecResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}
