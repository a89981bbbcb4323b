// The normalized model of ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2, semantics 20-24);
// data only, defaulted and validated by cluster-normalize.ts, so the tier evaluator never reads raw objects.
//
// Field names and rules were read (not copied) from kubernetes-sigs/network-policy-api at tag v0.2.0+23,
// commit 0eec1b0e5fa92715b4c0f4c48d3c8d2913ed2159 (2026-07-01): apis/v1alpha2/clusternetworkpolicy_types.go,
// config/crd/experimental/*clusternetworkpolicies.yaml (the CEL rules) and conformance/tests/*.go with
// conformance/base/**. What upstream leaves open and what tollgate decided:
// - Ties: two policies of one tier with the same priority are ordered by name (then rule order), so a
//   verdict never depends on the order the API listed them in; such pairs are reported (semantics 24).
// - Pass in the Baseline tier skips the rest of Baseline: the connection is allowed by default.
// - A peer or rule tollgate cannot enforce fails closed the way upstream says for an unknown peer: an
//   Accept rule matches nothing, a Deny or Pass rule denies everything it could have matched.
import type { AddressRange } from './address.ts';
import type { LabelSelector, Protocol, ValidationIssue } from './types.ts';

export const CLUSTER_TIERS = ['Admin', 'Baseline'] as const;
export type ClusterTier = (typeof CLUSTER_TIERS)[number];

export const CLUSTER_ACTIONS = ['Accept', 'Deny', 'Pass'] as const;
export type ClusterAction = (typeof CLUSTER_ACTIONS)[number];

/** Priorities run 0..1000; lower goes first. */
export const MAX_CLUSTER_PRIORITY = 1000;

/** Who a policy applies to: every pod of the selected namespaces, or selected pods in them. */
export type ClusterSubject =
  | { readonly kind: 'namespaces'; readonly namespaces: LabelSelector }
  | { readonly kind: 'pods'; readonly namespaces: LabelSelector; readonly pods: LabelSelector };

export type ClusterPeer =
  | { readonly kind: 'namespaces'; readonly namespaces: LabelSelector }
  | { readonly kind: 'pods'; readonly namespaces: LabelSelector; readonly pods: LabelSelector }
  /** Egress only: the nodes' own addresses (status.addresses), by node labels. */
  | { readonly kind: 'nodes'; readonly nodes: LabelSelector }
  /** Egress only: any address in the CIDRs, pods included (upstream says so). */
  | {
      readonly kind: 'networks';
      readonly cidrs: readonly string[];
      readonly ranges: readonly Readonly<AddressRange>[];
    };

export type ClusterPort =
  /** A number (first === last) or an inclusive range of one protocol. */
  | { readonly kind: 'port'; readonly protocol: Protocol; readonly first: number; readonly last: number }
  /** destinationNamedPort: a container port name of the destination pod, with that port's protocol. */
  | { readonly kind: 'named'; readonly name: string };

export interface ClusterRule {
  /** Index in spec.ingress / spec.egress, for explanations ("rule 2"). */
  readonly index: number;
  /** The rule's optional name ('' when absent). */
  readonly name: string;
  readonly action: ClusterAction;
  /** At least one when valid (from / to is required upstream). */
  readonly peers: readonly ClusterPeer[];
  /** undefined: every protocol and port (protocols absent). */
  readonly ports: readonly ClusterPort[] | undefined;
  /**
   * Fails closed (an issue says why): an Accept rule then matches nothing, a Deny or Pass rule matches
   * everything and denies it.
   */
  readonly invalid: boolean;
}

export interface ClusterPolicy {
  readonly name: string;
  /** `name`: cluster-scoped, so the name is the key. */
  readonly key: string;
  readonly tier: ClusterTier;
  readonly priority: number;
  readonly subject: ClusterSubject;
  /** Empty when the policy has no rules for that direction (it then does not affect it). */
  readonly ingress: readonly ClusterRule[];
  readonly egress: readonly ClusterRule[];
  readonly issues: readonly ValidationIssue[];
}
