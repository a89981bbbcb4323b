// The tier evaluator (semantics 20-24): Admin ClusterNetworkPolicies, then the NetworkPolicy verdict of
// evaluate.ts, then Baseline, then allow; per direction, and both directions must allow. A reference like
// evaluate.ts: direct, no sets, no I/O; it must not change what NetworkPolicy-only clusters get.

import { rangeContains } from './address.ts';
import type {
  ClusterAction,
  ClusterPeer,
  ClusterPolicy,
  ClusterPort,
  ClusterRule,
  ClusterTier,
} from './cluster-types.ts';
import {
  type DirectionVerdict,
  describeEndpoint,
  type Endpoint,
  evaluate,
  explainVerdict,
  type Flow,
  type Verdict,
  type VerdictReason,
} from './evaluate.ts';
import { type ClusterIndex, isLivePod } from './index.ts';
import { matchesSelector } from './selector.ts';
import type { Direction, LabelSelector, Labels, Pod, ValidationIssue } from './types.ts';
import { PROTOCOLS } from './types.ts';

/** One ClusterNetworkPolicy rule that matched, with the action it took. */
export interface TierMatch {
  readonly tier: ClusterTier;
  readonly policy: string;
  readonly priority: number;
  /** Index in spec.ingress / spec.egress. */
  readonly rule: number;
  readonly ruleName: string;
  /** What the rule did: an invalid Deny or Pass rule denies (fails closed), so it reads Deny here. */
  readonly action: ClusterAction;
  readonly invalid: boolean;
  /** Index in from/to (undefined for an invalid rule, which matches without a peer). */
  readonly peer: number | undefined;
  /** Index in protocols; undefined: the rule has none (every port) or is invalid. */
  readonly port: number | undefined;
}

export type DecidingTier = 'Admin' | 'NetworkPolicy' | 'Baseline' | 'default';

export interface TierDirectionVerdict {
  readonly direction: Direction;
  readonly pod: string;
  /** The first Admin rule that matched (Accept, Deny or Pass), if any. */
  readonly admin: TierMatch | undefined;
  /** The NetworkPolicy tier, when Admin did not decide. */
  readonly networkPolicy: DirectionVerdict | undefined;
  /** The first Baseline rule that matched, when neither Admin nor NetworkPolicies decided. */
  readonly baseline: TierMatch | undefined;
  readonly decidedBy: DecidingTier;
  readonly allowed: boolean;
}

export interface TierVerdict {
  readonly allowed: boolean;
  readonly reason: VerdictReason;
  readonly egress: TierDirectionVerdict | undefined;
  readonly ingress: TierDirectionVerdict | undefined;
}

/**
 * The order inside a tier: priority, then name. Upstream leaves equal priorities undefined; ordering by
 * name makes tollgate's choice stable and explainable (reported by priorityTies).
 */
export function tierOrder(policies: readonly ClusterPolicy[], tier: ClusterTier): ClusterPolicy[] {
  return policies
    .filter((p) => p.tier === tier)
    .sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const namespaceLabels = (index: ClusterIndex, name: string): Labels | undefined =>
  index.namespace(name)?.labels;

/** Semantics 22: hostNetwork pods, pods without an IP and terminal pods are never subjects. */
export function subjectSelects(index: ClusterIndex, policy: ClusterPolicy, pod: Pod): boolean {
  if (!isLivePod(pod)) return false;
  const ns = namespaceLabels(index, pod.namespace);
  if (ns === undefined || !matchesSelector(policy.subject.namespaces, ns)) return false;
  return policy.subject.kind === 'namespaces' || matchesSelector(policy.subject.pods, pod.labels);
}

function podInScope(index: ClusterIndex, namespaces: LabelSelector, pod: Pod): boolean {
  const ns = namespaceLabels(index, pod.namespace);
  return isLivePod(pod) && ns !== undefined && matchesSelector(namespaces, ns);
}

function peerMatches(index: ClusterIndex, peer: ClusterPeer, other: Endpoint): boolean {
  switch (peer.kind) {
    case 'namespaces':
      return other.kind === 'pod' && podInScope(index, peer.namespaces, other.pod);
    case 'pods':
      return (
        other.kind === 'pod' &&
        podInScope(index, peer.namespaces, other.pod) &&
        matchesSelector(peer.pods, other.pod.labels)
      );
    case 'nodes':
      return other.kind === 'node' && matchesSelector(peer.nodes, other.node.labels);
    case 'networks':
      // Any address in the CIDRs, pods and nodes included.
      return peer.ranges.some((r) => rangeContains(r, other.address));
  }
}

/** Semantics 23 (and 15: a rule with protocols never matches ICMP). */
function clusterPortMatches(port: ClusterPort, flow: Flow, namedPortsOf: Pod | undefined): boolean {
  if (!(PROTOCOLS as readonly string[]).includes(flow.protocol)) return false;
  if (port.kind === 'port')
    return port.protocol === flow.protocol && port.first <= flow.port && flow.port <= port.last;
  // Point 9 as for NetworkPolicies: the name resolves on the destination pod, protocol included.
  return (
    namedPortsOf?.ports.some(
      (p) => p.name === port.name && p.protocol === flow.protocol && p.port === flow.port,
    ) ?? false
  );
}

function ruleMatch(
  index: ClusterIndex,
  policy: ClusterPolicy,
  rule: ClusterRule,
  direction: Direction,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
): TierMatch | undefined {
  const base = {
    tier: policy.tier,
    policy: policy.key,
    priority: policy.priority,
    rule: rule.index,
    ruleName: rule.name,
    invalid: rule.invalid,
  };
  if (rule.invalid)
    return rule.action === 'Accept'
      ? undefined
      : { ...base, action: 'Deny', peer: undefined, port: undefined };
  // The destination's named ports: the subject for ingress, the contacted pod for egress.
  const namedPortsOf = direction === 'ingress' ? subject : other.kind === 'pod' ? other.pod : undefined;
  const peer = rule.peers.findIndex((p) => peerMatches(index, p, other));
  if (peer < 0) return undefined;
  if (rule.ports === undefined) return { ...base, action: rule.action, peer, port: undefined };
  const port = rule.ports.findIndex((p) => clusterPortMatches(p, flow, namedPortsOf));
  return port < 0 ? undefined : { ...base, action: rule.action, peer, port };
}

/** The first matching rule of a tier (policies in tierOrder, rules in order), if any. */
function firstMatch(
  index: ClusterIndex,
  ordered: readonly ClusterPolicy[],
  direction: Direction,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
): TierMatch | undefined {
  for (const policy of ordered) {
    if (policy[direction].length === 0 || !subjectSelects(index, policy, subject)) continue;
    for (const rule of policy[direction]) {
      const m = ruleMatch(index, policy, rule, direction, subject, other, flow);
      if (m) return m;
    }
  }
  return undefined;
}

/**
 * One direction through the three tiers. `networkPolicy` is evaluate()'s verdict for it (the
 * NetworkPolicy tier), consulted only when Admin does not decide.
 */
export function decideTierDirection(
  index: ClusterIndex,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
  networkPolicy: DirectionVerdict,
): TierDirectionVerdict {
  const policies = index.state.clusterPolicies ?? [];
  const { direction } = networkPolicy;
  const base = { direction, pod: subject.key };
  const admin = firstMatch(index, tierOrder(policies, 'Admin'), direction, subject, other, flow);
  if (admin !== undefined && admin.action !== 'Pass') {
    const allowed = admin.action === 'Accept';
    return { ...base, admin, networkPolicy: undefined, baseline: undefined, decidedBy: 'Admin', allowed };
  }
  // Semantics 21: isolating NetworkPolicies decide for good; otherwise on to Baseline.
  if (networkPolicy.isolatedBy.length > 0)
    return {
      ...base,
      admin,
      networkPolicy,
      baseline: undefined,
      decidedBy: 'NetworkPolicy',
      allowed: networkPolicy.allowed,
    };
  const baseline = firstMatch(index, tierOrder(policies, 'Baseline'), direction, subject, other, flow);
  // Pass in Baseline skips the rest of Baseline: nothing is left but the default.
  if (baseline === undefined || baseline.action === 'Pass')
    return { ...base, admin, networkPolicy, baseline, decidedBy: 'default', allowed: true };
  return {
    ...base,
    admin,
    networkPolicy,
    baseline,
    decidedBy: 'Baseline',
    allowed: baseline.action === 'Accept',
  };
}

/** Without ClusterNetworkPolicies the NetworkPolicy verdict stands alone: exactly evaluate()'s. */
function fromVerdict(d: DirectionVerdict): TierDirectionVerdict {
  return {
    direction: d.direction,
    pod: d.pod,
    admin: undefined,
    networkPolicy: d,
    baseline: undefined,
    decidedBy: d.isolatedBy.length > 0 ? 'NetworkPolicy' : 'default',
    allowed: d.allowed,
  };
}

/**
 * Semantics 20-24 for one connection, wrapping evaluate(): its special cases (same pod, own node) stand,
 * and each direction it decided (the source's egress, the destination's ingress, for live pods) goes
 * through the tiers; both must allow (semantics 24, as point 10).
 */
export function evaluateTiers(index: ClusterIndex, flow: Flow): TierVerdict {
  const plain: Verdict = evaluate(index, flow);
  const tiered = (index.state.clusterPolicies ?? []).length > 0;
  const through = (d: DirectionVerdict | undefined, subject: Endpoint, other: Endpoint) => {
    if (d === undefined) return undefined;
    return tiered && subject.kind === 'pod'
      ? decideTierDirection(index, subject.pod, other, flow, d)
      : fromVerdict(d);
  };
  const egress = through(plain.egress, flow.from, flow.to);
  const ingress = through(plain.ingress, flow.to, flow.from);
  return {
    allowed: (egress?.allowed ?? true) && (ingress?.allowed ?? true),
    reason: plain.reason,
    egress,
    ingress,
  };
}

function describeMatch(m: TierMatch, direction: Direction): string {
  const name = m.ruleName === '' ? '' : ` (${m.ruleName})`;
  const list = direction === 'ingress' ? 'from' : 'to';
  if (m.invalid) return `[${m.tier}] ${m.policy} rule ${m.rule}${name} is invalid, fails closed: Deny`;
  const port = m.port === undefined ? '' : `, protocols[${m.port}]`;
  return `[${m.tier}] ${m.policy} rule ${m.rule}${name} (${list}[${m.peer}]${port}) ${m.action}`;
}

function describeNetworkPolicy(d: DirectionVerdict): string {
  if (d.isolatedBy.length === 0) return '[NetworkPolicy] not isolated';
  if (d.allowedBy) {
    const m = d.allowedBy;
    return `[NetworkPolicy] ${m.policy} allows (${m.direction}[${m.rule}])`;
  }
  return `[NetworkPolicy] isolated by ${d.isolatedBy.join(', ')}, no rule allows: denied`;
}

/** The chain of one direction, e.g. `[Admin] guard rule 2 (...) Pass → [NetworkPolicy] prod/db allows`. */
export function describeTierDirection(d: TierDirectionVerdict): string {
  const chain: string[] = [d.admin ? describeMatch(d.admin, d.direction) : '[Admin] no rule matches'];
  if (d.networkPolicy) chain.push(describeNetworkPolicy(d.networkPolicy));
  if (d.decidedBy === 'default' || d.decidedBy === 'Baseline')
    chain.push(d.baseline ? describeMatch(d.baseline, d.direction) : '[Baseline] no rule matches');
  if (d.decidedBy === 'default') chain.push('allowed by default');
  return `${d.direction} of ${d.pod}: ${chain.join(' → ')}: ${d.allowed ? 'allowed' : 'denied'}`;
}

/**
 * The explanation `tollgate explain` and failing scenarios print. A cluster without ClusterNetworkPolicies
 * gets explainVerdict's text unchanged.
 */
export function explainTierVerdict(index: ClusterIndex, flow: Flow, verdict: TierVerdict): string {
  if ((index.state.clusterPolicies ?? []).length === 0 || verdict.reason !== 'policies')
    return explainVerdict(flow, evaluate(index, flow));
  const what = (PROTOCOLS as readonly string[]).includes(flow.protocol)
    ? `${flow.protocol} port ${flow.port}`
    : flow.protocol;
  return [
    `${verdict.allowed ? 'ALLOW' : 'DENY'} ${describeEndpoint(flow.from)} -> ${describeEndpoint(flow.to)} ${what}`,
    `  ${verdict.egress ? describeTierDirection(verdict.egress) : 'egress: the source is not a pod, no egress policy applies'}`,
    `  ${verdict.ingress ? describeTierDirection(verdict.ingress) : 'ingress: the destination is not a pod, no ingress policy applies'}`,
  ].join('\n');
}

/**
 * Semantics 24: policies of one tier and priority whose rules of one direction take different actions
 * could conflict on a connection both match; upstream leaves the winner undefined, tollgate takes the
 * first by name. One issue per such pair (subjects are not compared: labels change, the pair stays risky).
 */
export function priorityTies(policies: readonly ClusterPolicy[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const tier of ['Admin', 'Baseline'] as const) {
    const ordered = tierOrder(policies, tier);
    for (let i = 0; i < ordered.length; i++)
      for (let j = i + 1; j < ordered.length && ordered[j]!.priority === ordered[i]!.priority; j++) {
        const [a, b] = [ordered[i]!, ordered[j]!];
        const clash = (['ingress', 'egress'] as const).filter((d) => {
          const actions = new Set([...a[d], ...b[d]].map((r) => r.action));
          return a[d].length > 0 && b[d].length > 0 && actions.size > 1;
        });
        if (clash.length > 0)
          issues.push({
            object: `ClusterNetworkPolicy ${b.name}`,
            field: 'spec.priority',
            message:
              `${tier} priority ${a.priority} is also ${a.name}'s and their ${clash.join(' and ')} rules ` +
              `take different actions; where both match, tollgate applies ${a.name} first (by name), ` +
              'upstream leaves the order undefined: give them distinct priorities',
          });
      }
  }
  return issues;
}
