// The normalized model of the Kubernetes objects that NetworkPolicy semantics depend on; data only.
// Everything here is already defaulted and validated (see normalize.ts), so the evaluator and the planner
// never look at raw API objects.
import type { Address, AddressRange } from './address.ts';
import type { ClusterPolicy } from './cluster-types.ts';

export type Labels = Readonly<Record<string, string>>;

/** The protocols NetworkPolicy defines (semantics point 15). */
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export type Direction = 'ingress' | 'egress';

export interface SelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels: Labels;
  readonly matchExpressions: readonly SelectorRequirement[];
}

export interface ContainerPort {
  readonly name: string | undefined;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface Pod {
  readonly namespace: string;
  readonly name: string;
  /** `namespace/name` */
  readonly key: string;
  readonly labels: Labels;
  readonly nodeName: string | undefined;
  readonly hostNetwork: boolean;
  readonly phase: string;
  /** status.podIPs (or podIP), at most one per family (semantics point 18). */
  readonly ips: readonly Readonly<Address>[];
  readonly ports: readonly ContainerPort[];
}

export interface Namespace {
  readonly name: string;
  /** Always includes kubernetes.io/metadata.name (semantics point 6). */
  readonly labels: Labels;
  /** Annotated tollgate.dev/drop-reports: "off": its pods' denials are not reported (semantics 16). */
  readonly dropReportsOff?: true;
}

export interface Node {
  readonly name: string;
  /** metadata.labels: ClusterNetworkPolicy node peers select nodes by them (semantics 22). */
  readonly labels: Labels;
  /** The node's own addresses: traffic between them and the node's pods always passes (point 12). */
  readonly addresses: readonly Readonly<Address>[];
  readonly podCIDRs: readonly Readonly<AddressRange>[];
}

/** Which namespaces a pod peer looks in: the policy's own (podSelector alone) or a selector. */
export type PeerNamespaces =
  | { readonly kind: 'own' }
  | { readonly kind: 'selector'; readonly selector: LabelSelector };

export type Peer =
  | { readonly kind: 'pods'; readonly namespaces: PeerNamespaces; readonly pods: LabelSelector }
  | {
      readonly kind: 'ipBlock';
      readonly cidr: string;
      readonly except: readonly string[];
      /** cidr minus its excepts: the except carves out of this peer only (point 6). */
      readonly ranges: readonly Readonly<AddressRange>[];
    };

export interface PolicyPort {
  readonly protocol: Protocol;
  /** undefined: every port of the protocol (point 8); a string is a named port (point 9). */
  readonly port: number | string | undefined;
  readonly endPort: number | undefined;
}

export interface Rule {
  /** Index in spec.ingress / spec.egress, for explanations. */
  readonly index: number;
  /** undefined: any peer (absent or empty from/to, point 5). */
  readonly peers: readonly Peer[] | undefined;
  /** undefined: any port of any protocol (absent or empty ports, point 5). */
  readonly ports: readonly PolicyPort[] | undefined;
  /** An invalid rule allows nothing (fail closed); the policy still isolates. */
  readonly invalid: boolean;
}

export interface ValidationIssue {
  /** `kind namespace/name`, e.g. `NetworkPolicy prod/allow-db`. */
  readonly object: string;
  /** JSON-path-like field, e.g. `spec.ingress[0].from[1].ipBlock.cidr`. */
  readonly field: string;
  readonly message: string;
}

export interface Policy {
  readonly namespace: string;
  readonly name: string;
  readonly key: string;
  readonly podSelector: LabelSelector;
  /** false when the pod selector itself was invalid: the policy then isolates every pod of its namespace. */
  readonly podSelectorValid: boolean;
  /** undefined when the direction is not in policyTypes (after defaulting, point 2). */
  readonly ingress: readonly Rule[] | undefined;
  readonly egress: readonly Rule[] | undefined;
  readonly issues: readonly ValidationIssue[];
  /**
   * Annotated `tollgate.dev/audit: "true"` (point 25): isolates nothing and allows nothing; the
   * connections it would deny are reported as would-deny. Absent: enforced.
   */
  readonly audit?: boolean;
}

/**
 * Everything the semantics need, for the whole cluster. Build with `buildState`. Read-only all the way
 * down: the index, planners and compilers keep memos keyed by these objects and lists (by identity), so
 * a state handed to them is never written; code that needs a changing collection keeps its own and hands
 * over a new state.
 */
export interface ClusterState {
  readonly pods: readonly Pod[];
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly policies: readonly Policy[];
  readonly nodes: readonly Node[];
  /** ClusterNetworkPolicies (semantics 20-24); absent or empty: NetworkPolicies alone decide. */
  readonly clusterPolicies?: readonly ClusterPolicy[];
}
