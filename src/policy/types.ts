// The normalized model of the Kubernetes objects that NetworkPolicy semantics depend on; data only.
// Everything here is already defaulted and validated (see normalize.ts), so the evaluator and the planner
// never look at raw API objects.
import type { Address, AddressRange } from './address.ts';

export type Labels = Readonly<Record<string, string>>;

/** The protocols NetworkPolicy defines (semantics point 15). */
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export type Direction = 'ingress' | 'egress';

export interface SelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

export interface LabelSelector {
  matchLabels: Labels;
  matchExpressions: SelectorRequirement[];
}

export interface ContainerPort {
  name: string | undefined;
  port: number;
  protocol: Protocol;
}

export interface Pod {
  namespace: string;
  name: string;
  /** `namespace/name` */
  key: string;
  labels: Labels;
  nodeName: string | undefined;
  hostNetwork: boolean;
  phase: string;
  /** status.podIPs (or podIP), at most one per family (semantics point 18). */
  ips: Address[];
  ports: ContainerPort[];
}

export interface Namespace {
  name: string;
  /** Always includes kubernetes.io/metadata.name (semantics point 6). */
  labels: Labels;
}

export interface Node {
  name: string;
  /** The node's own addresses: traffic between them and the node's pods always passes (point 12). */
  addresses: Address[];
  podCIDRs: AddressRange[];
}

/** Which namespaces a pod peer looks in: the policy's own (podSelector alone) or a selector. */
export type PeerNamespaces = { kind: 'own' } | { kind: 'selector'; selector: LabelSelector };

export type Peer =
  | { kind: 'pods'; namespaces: PeerNamespaces; pods: LabelSelector }
  | {
      kind: 'ipBlock';
      cidr: string;
      except: string[];
      /** cidr minus its excepts: the except carves out of this peer only (point 6). */
      ranges: AddressRange[];
    };

export interface PolicyPort {
  protocol: Protocol;
  /** undefined: every port of the protocol (point 8); a string is a named port (point 9). */
  port: number | string | undefined;
  endPort: number | undefined;
}

export interface Rule {
  /** Index in spec.ingress / spec.egress, for explanations. */
  index: number;
  /** undefined: any peer (absent or empty from/to, point 5). */
  peers: Peer[] | undefined;
  /** undefined: any port of any protocol (absent or empty ports, point 5). */
  ports: PolicyPort[] | undefined;
  /** An invalid rule allows nothing (fail closed); the policy still isolates. */
  invalid: boolean;
}

export interface ValidationIssue {
  /** `kind namespace/name`, e.g. `NetworkPolicy prod/allow-db`. */
  object: string;
  /** JSON-path-like field, e.g. `spec.ingress[0].from[1].ipBlock.cidr`. */
  field: string;
  message: string;
}

export interface Policy {
  namespace: string;
  name: string;
  key: string;
  podSelector: LabelSelector;
  /** false when the pod selector itself was invalid: the policy then isolates every pod of its namespace. */
  podSelectorValid: boolean;
  /** undefined when the direction is not in policyTypes (after defaulting, point 2). */
  ingress: Rule[] | undefined;
  egress: Rule[] | undefined;
  issues: ValidationIssue[];
}

/** Everything the semantics need, for the whole cluster. Build with `buildState`. */
export interface ClusterState {
  pods: Pod[];
  namespaces: Map<string, Namespace>;
  policies: Policy[];
  nodes: Node[];
}
