// The reference evaluator: decides one connection from the normalized objects alone and explains why.
// Deliberately direct (no sets, no precomputation beyond ClusterIndex) so that it can check the planner
// and the dataplane. Pure: no I/O.

import type { Address } from './address.ts';
import { formatAddress, rangeContains } from './address.ts';
import { type ClusterIndex, isLivePod } from './index.ts';
import type { Direction, Node, Peer, Pod, Policy, PolicyPort, Rule } from './types.ts';
import { PROTOCOLS } from './types.ts';

export type Endpoint =
  | { kind: 'pod'; pod: Pod; address: Address }
  | { kind: 'node'; node: Node; address: Address }
  | { kind: 'external'; address: Address };

/** What an address is: a live pod, a node's own address (also hostNetwork pods), or anything else. */
export function endpointAt(index: ClusterIndex, address: Address): Endpoint {
  const pod = index.podAt(address);
  if (pod) return { kind: 'pod', pod, address };
  const node = index.nodeAt(address);
  if (node) return { kind: 'node', node, address };
  return { kind: 'external', address };
}

export interface Flow {
  from: Endpoint;
  to: Endpoint;
  /** TCP, UDP, SCTP, or another IP protocol name such as ICMP (point 15). */
  protocol: string;
  /** Destination port; ignored for protocols without ports. */
  port: number;
}

/** Which rule allowed a direction: the policy, the rule index, the peer index and the port index. */
export interface RuleMatch {
  policy: string;
  direction: Direction;
  rule: number;
  /** Index in from/to; undefined when the rule has no peers (any peer). */
  peer: number | undefined;
  /** Index in ports; undefined when the rule has no ports (any port). */
  port: number | undefined;
}

export interface DirectionVerdict {
  direction: Direction;
  /** The pod whose policies decide this direction: the source for egress, the destination for ingress. */
  pod: string;
  /** Policies that select the pod and list this direction; none means not isolated (point 3). */
  isolatedBy: string[];
  allowedBy: RuleMatch | undefined;
  allowed: boolean;
  /**
   * Point 25: audit-mode policies that would isolate this direction, listed only when no enforced policy
   * does (an enforced isolation decides alone, so audit policies there can never make a would-deny).
   */
  auditedBy: string[];
  /** Not isolated, but the audit policies would isolate it and none of their rules allows it. */
  wouldDeny: boolean;
}

export type VerdictReason = 'same-pod' | 'own-node' | 'policies';

export interface Verdict {
  allowed: boolean;
  reason: VerdictReason;
  /** Present when the source is a pod (and reason is 'policies'). */
  egress: DirectionVerdict | undefined;
  /** Present when the destination is a pod (and reason is 'policies'). */
  ingress: DirectionVerdict | undefined;
  /** Point 25: allowed, but denied if the audit-mode policies were enforced. */
  wouldDeny: boolean;
}

export function portMatches(
  spec: PolicyPort,
  protocol: string,
  port: number,
  namedPortsOf: Pod | undefined,
): boolean {
  // Point 15: a rule with ports only ever matches TCP, UDP and SCTP.
  if (!(PROTOCOLS as readonly string[]).includes(protocol) || spec.protocol !== protocol) return false;
  if (spec.port === undefined) return true; // point 8: protocol without port = every port
  if (typeof spec.port === 'number') return spec.port <= port && port <= (spec.endPort ?? spec.port);
  // Point 9: a named port resolves on one pod, with the protocol matching too.
  if (!namedPortsOf) return false;
  return namedPortsOf.ports.some(
    (p) => p.name === spec.port && p.protocol === spec.protocol && p.port === port,
  );
}

function peerMatches(index: ClusterIndex, peer: Peer, policy: Policy, other: Endpoint): boolean {
  if (peer.kind === 'ipBlock') return peer.ranges.some((r) => rangeContains(r, other.address));
  return other.kind === 'pod' && index.podPeerMatches(peer, policy.namespace, other.pod);
}

/** Does one rule allow the flow? `subject` is the selected pod, `other` the far end. */
function ruleMatch(
  index: ClusterIndex,
  policy: Policy,
  rule: Rule,
  direction: Direction,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
): RuleMatch | undefined {
  if (rule.invalid) return undefined;
  const otherPod = other.kind === 'pod' ? other.pod : undefined;
  // Candidate peers: [peer index, pod whose named ports apply]. Ingress: the selected pod itself.
  // Egress: the contacted pod, except through an ipBlock peer (point 9: never a named port there).
  const candidates: [number | undefined, Pod | undefined][] = [];
  if (rule.peers === undefined) candidates.push([undefined, direction === 'ingress' ? subject : otherPod]);
  else {
    rule.peers.forEach((peer, j) => {
      if (!peerMatches(index, peer, policy, other)) return;
      const named = direction === 'ingress' ? subject : peer.kind === 'pods' ? otherPod : undefined;
      candidates.push([j, named]);
    });
  }
  for (const [peerIndex, namedPortsOf] of candidates) {
    if (rule.ports === undefined)
      return { policy: policy.key, direction, rule: rule.index, peer: peerIndex, port: undefined };
    const k = rule.ports.findIndex((p) => portMatches(p, flow.protocol, flow.port, namedPortsOf));
    if (k >= 0) return { policy: policy.key, direction, rule: rule.index, peer: peerIndex, port: k };
  }
  return undefined;
}

function decideDirection(
  index: ClusterIndex,
  direction: Direction,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
): DirectionVerdict {
  const isolating = index.policiesSelecting(subject).filter((p) => p[direction] !== undefined);
  const allowedBy = allowingRules(index, isolating, direction, subject, other, flow);
  const audit =
    isolating.length > 0
      ? []
      : index.auditPoliciesSelecting(subject).filter((p) => p[direction] !== undefined);
  return {
    direction,
    pod: subject.key,
    isolatedBy: isolating.map((p) => p.key),
    allowedBy,
    allowed: isolating.length === 0 || allowedBy !== undefined,
    auditedBy: audit.map((p) => p.key),
    wouldDeny: audit.length > 0 && allowingRules(index, audit, direction, subject, other, flow) === undefined,
  };
}

/**
 * Point 5: the union of every rule of every policy; no order, no deny. The first rule (in policy order)
 * that allows the flow, the one a verdict reports; with `all`, each policy's first allowing rule is
 * pushed to it instead. A plain loop that allocates nothing: it runs for every flow the evaluator judges
 * (a generator here cost the policy benchmark's evaluation ~20% per flow).
 */
function allowingRules(
  index: ClusterIndex,
  policies: readonly Policy[],
  direction: Direction,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
  all?: RuleMatch[],
): RuleMatch | undefined {
  for (const policy of policies) {
    for (const rule of policy[direction] ?? []) {
      const m = ruleMatch(index, policy, rule, direction, subject, other, flow);
      if (m === undefined) continue;
      if (all === undefined) return m;
      all.push(m);
      break;
    }
  }
  return undefined;
}

/**
 * Every policy isolating `subject` in `direction` one of whose rules allows the flow: point 5 makes them a
 * union, so each one is in use for it (src/agent/usage.ts counts them; the verdict reports the first only).
 */
export function policiesAllowing(
  index: ClusterIndex,
  direction: Direction,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
): string[] {
  const policies = index.policiesSelecting(subject);
  const all: RuleMatch[] = [];
  allowingRules(index, policies, direction, subject, other, flow, all);
  return all.map((m) => m.policy);
}

export function evaluate(index: ClusterIndex, flow: Flow): Verdict {
  const { from, to } = flow;
  if (from.kind === 'pod' && to.kind === 'pod' && from.pod.key === to.pod.key) {
    // A pod talking to itself never crosses the node's forward path.
    return { allowed: true, reason: 'same-pod', egress: undefined, ingress: undefined, wouldDeny: false };
  }
  // Point 12: a pod and its own node always talk; other nodes are ordinary addresses.
  if (
    (from.kind === 'pod' && to.kind === 'node' && to.node.name === from.pod.nodeName) ||
    (from.kind === 'node' && to.kind === 'pod' && from.node.name === to.pod.nodeName)
  ) {
    return { allowed: true, reason: 'own-node', egress: undefined, ingress: undefined, wouldDeny: false };
  }
  // Point 10: egress of the source and ingress of the destination must both allow.
  const egress =
    from.kind === 'pod' && isLivePod(from.pod)
      ? decideDirection(index, 'egress', from.pod, to, flow)
      : undefined;
  const ingress =
    to.kind === 'pod' && isLivePod(to.pod)
      ? decideDirection(index, 'ingress', to.pod, from, flow)
      : undefined;
  const allowed = (egress?.allowed ?? true) && (ingress?.allowed ?? true);
  return {
    allowed,
    reason: 'policies',
    egress,
    ingress,
    wouldDeny: allowed && (egress?.wouldDeny === true || ingress?.wouldDeny === true),
  };
}

export function describeEndpoint(e: Endpoint): string {
  const ip = formatAddress(e.address);
  if (e.kind === 'pod') return `pod ${e.pod.key} (${ip})`;
  if (e.kind === 'node') return `node ${e.node.name} (${ip})`;
  return `external address ${ip}`;
}

function describeMatch(m: RuleMatch): string {
  const list = m.direction === 'ingress' ? 'from' : 'to';
  const peer = m.peer === undefined ? `any peer` : `${list}[${m.peer}]`;
  const port = m.port === undefined ? 'any port' : `ports[${m.port}]`;
  return `policy ${m.policy} ${m.direction}[${m.rule}] (${peer}, ${port})`;
}

function describeDirection(d: DirectionVerdict): string {
  if (d.isolatedBy.length === 0 && d.auditedBy.length > 0) {
    const by = `not isolated; audit-mode ${d.auditedBy.join(', ')} would isolate it`;
    return `${d.direction} of ${d.pod}: ${by} and ${d.wouldDeny ? 'no rule of theirs allows it: WOULD DENY (reported, allowed)' : 'one of their rules allows it'}`;
  }
  if (d.isolatedBy.length === 0) return `${d.direction} of ${d.pod}: not isolated, allowed`;
  const by = `isolated by ${d.isolatedBy.join(', ')}`;
  if (d.allowedBy) return `${d.direction} of ${d.pod}: ${by}; allowed by ${describeMatch(d.allowedBy)}`;
  return `${d.direction} of ${d.pod}: ${by}; no rule allows it, denied`;
}

/** A human explanation, one line per fact, as `tollgate explain` and failing scenarios print it. */
export function explainVerdict(flow: Flow, verdict: Verdict): string {
  const what = ['TCP', 'UDP', 'SCTP'].includes(flow.protocol)
    ? `${flow.protocol} port ${flow.port}`
    : flow.protocol;
  const lines = [
    `${verdict.allowed ? (verdict.wouldDeny ? 'ALLOW (WOULD-DENY)' : 'ALLOW') : 'DENY'} ${describeEndpoint(flow.from)} -> ${describeEndpoint(flow.to)} ${what}`,
  ];
  if (verdict.reason === 'same-pod') lines.push('  a pod talking to itself is always allowed');
  else if (verdict.reason === 'own-node')
    lines.push('  traffic between a pod and its own node is always allowed');
  else {
    if (verdict.egress) lines.push(`  ${describeDirection(verdict.egress)}`);
    else lines.push('  egress: the source is not a pod, no egress policy applies');
    if (verdict.ingress) lines.push(`  ${describeDirection(verdict.ingress)}`);
    else lines.push('  ingress: the destination is not a pod, no ingress policy applies');
  }
  return lines.join('\n');
}
