// The ClusterNetworkPolicy part of a pod's plan (semantics 20-24): per direction, the Admin and Baseline
// rules that select the pod, in tier order, as matches on shared plan sets. Pure; sets are made by plan.ts.
//
// Per-packet cost, for the dataplane that reads these plans: a new connection of a pod is checked against
// each Admin rule selecting the pod in order (per rule, one set lookup per peer of the rule: an address set,
// or an address-port set for egress named ports), then the NetworkPolicy stage exactly as without
// ClusterNetworkPolicies, then the Baseline rules the same way. So the lookups per packet grow with the
// ClusterNetworkPolicy rules (and their peers) that select the pod, never with the number of
// NetworkPolicies, pods or nodes: those only grow the sets, whose lookups cost the same. A pod no
// ClusterNetworkPolicy selects pays nothing.
import type { AddressRange } from './address.ts';
import type { ClusterAction, ClusterPolicy, ClusterRule, ClusterTier } from './cluster-types.ts';
import type { ClusterIndex } from './index.ts';
import { mergePorts, type PortRange } from './plan.ts';
import { subjectSelects, tierOrder } from './tiers.ts';
import type { Direction, LabelSelector, Peer, Pod } from './types.ts';
import { PROTOCOLS } from './types.ts';

/** What one peer of a rule matches: like a PlanAllow, without the rule references. */
export type TierMatchPlan =
  | {
      readonly kind: 'peers';
      /** An `addresses` set id; undefined: any address (an invalid Deny or Pass rule). */
      readonly set: string | undefined;
      /** Merged per protocol; undefined: every protocol and port, ICMP too. */
      readonly ports: readonly PortRange[] | undefined;
    }
  | {
      readonly kind: 'address-ports';
      /** An `address-ports` set id: egress named ports, resolved on the contacted pod. */
      readonly set: string;
    };

/** One ClusterNetworkPolicy rule selecting the pod; the first whose matches hit decides. */
export interface TierRulePlan {
  readonly tier: ClusterTier;
  readonly policy: string;
  readonly priority: number;
  readonly rule: number;
  /** An invalid Deny or Pass rule reads Deny and matches everything (fails closed). */
  readonly action: ClusterAction;
  readonly invalid: boolean;
  /** Any of them matching makes the rule match; never empty (rules that cannot match are left out). */
  readonly matches: readonly TierMatchPlan[];
}

export interface TierDirectionPlan {
  /** Before the NetworkPolicy stage: Accept and Deny are final, Pass goes on to it. */
  readonly admin: readonly TierRulePlan[];
  /** After it, only when no NetworkPolicy isolates the pod: Accept, Deny; Pass ends in allow. */
  readonly baseline: readonly TierRulePlan[];
}

/** How the planner names the sets a tier rule uses (shared with the NetworkPolicy sets of equal meaning). */
export interface TierSets {
  pods(peer: Peer & { kind: 'pods' }): string;
  /** Egress named port through a pod peer: every protocol the name has on each member. */
  named(peer: Peer & { kind: 'pods' }, name: string): string;
  nodes(selector: LabelSelector): string;
  networks(cidrs: readonly string[], ranges: readonly Readonly<AddressRange>[]): string;
}

const EVERYTHING: TierMatchPlan = { kind: 'peers', set: undefined, ports: undefined };
const ALL_PODS: LabelSelector = { matchLabels: {}, matchExpressions: [] };

/** The ClusterNetworkPolicies of each tier in order, computed once per planner. */
export class TierOrder {
  readonly admin: readonly ClusterPolicy[];
  readonly baseline: readonly ClusterPolicy[];
  constructor(policies: readonly ClusterPolicy[]) {
    this.admin = tierOrder(policies, 'Admin');
    this.baseline = tierOrder(policies, 'Baseline');
  }
  get empty(): boolean {
    return this.admin.length === 0 && this.baseline.length === 0;
  }
  /** The policies selecting the pod, in tier order (Admin first): what its tier plan depends on. */
  selecting(index: ClusterIndex, pod: Pod): ClusterPolicy[] {
    if (this.empty) return [];
    return [...this.admin, ...this.baseline].filter((p) => subjectSelects(index, p, pod));
  }
}

type ClusterPeer = ClusterRule['peers'][number];

/** A cluster peer of pods as the NetworkPolicy pod peer of the same meaning (so both share one set). */
function asPodPeer(peer: Extract<ClusterPeer, { kind: 'namespaces' | 'pods' }>): Peer & { kind: 'pods' } {
  const pods = peer.kind === 'pods' ? peer.pods : ALL_PODS;
  return { kind: 'pods', namespaces: { kind: 'selector', selector: peer.namespaces }, pods };
}

function peerSet(peer: ClusterPeer, sets: TierSets): string {
  switch (peer.kind) {
    case 'namespaces':
    case 'pods':
      return sets.pods(asPodPeer(peer));
    case 'nodes':
      return sets.nodes(peer.nodes);
    case 'networks':
      return sets.networks(peer.cidrs, peer.ranges);
  }
}

function planRule(
  policy: ClusterPolicy,
  rule: ClusterRule,
  direction: Direction,
  pod: Pod,
  sets: TierSets,
): TierRulePlan | undefined {
  const base = { tier: policy.tier, policy: policy.key, priority: policy.priority, rule: rule.index };
  if (rule.invalid)
    return rule.action === 'Accept'
      ? undefined
      : { ...base, action: 'Deny', invalid: true, matches: [EVERYTHING] };
  const numeric: PortRange[] = [];
  const named: string[] = [];
  for (const p of rule.ports ?? []) {
    if (p.kind === 'port') numeric.push({ protocol: p.protocol, first: p.first, last: p.last });
    else if (direction === 'egress') named.push(p.name);
    // Ingress: the name resolves on the subject itself, every protocol it has (semantics 23, point 9).
    else
      for (const c of pod.ports)
        if (c.name === p.name && (PROTOCOLS as readonly string[]).includes(c.protocol))
          numeric.push({ protocol: c.protocol, first: c.port, last: c.port });
  }
  const anyPort = rule.ports === undefined;
  if (!anyPort && numeric.length === 0 && named.length === 0) return undefined;
  const ports = anyPort ? undefined : mergePorts(numeric);
  const matches: TierMatchPlan[] = [];
  for (const peer of rule.peers) {
    const set = peerSet(peer, sets);
    if (ports === undefined || ports.length > 0) matches.push({ kind: 'peers', set, ports });
    // Named ports never go through nodes or networks (normalization makes such a rule invalid).
    if (peer.kind === 'namespaces' || peer.kind === 'pods')
      for (const name of named)
        matches.push({ kind: 'address-ports', set: sets.named(asPodPeer(peer), name) });
  }
  return matches.length === 0 ? undefined : { ...base, action: rule.action, invalid: false, matches };
}

/**
 * The tier plan of one pod and direction, from the policies selecting it (TierOrder.selecting); undefined
 * when no rule of theirs can match for the direction (the pod's plan is then exactly as without them).
 */
export function planTiers(
  selecting: readonly ClusterPolicy[],
  direction: Direction,
  pod: Pod,
  sets: TierSets,
): TierDirectionPlan | undefined {
  const admin: TierRulePlan[] = [];
  const baseline: TierRulePlan[] = [];
  for (const policy of selecting)
    for (const rule of policy[direction]) {
      const planned = planRule(policy, rule, direction, pod, sets);
      if (planned) (policy.tier === 'Admin' ? admin : baseline).push(planned);
    }
  return admin.length + baseline.length > 0 ? { admin, baseline } : undefined;
}
