// A tiny, test-only interpreter of per-node plans: decides a flow the way the dataplane will (look up the
// source's egress plan and the destination's ingress plan by address, each through the Admin rules, the
// NetworkPolicy stage and the Baseline rules), to check plans against the evaluators.
import { type Address, addressKey, rangeContains } from '../../src/policy/address.ts';
import type { DirectionPlan, NodePlan, PlanSet, PodPlan } from '../../src/policy/plan.ts';
import type { TierDirectionPlan, TierMatchPlan } from '../../src/policy/plan-tiers.ts';

const PORT_PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

export class PlanMatcher {
  private readonly pods = new Map<bigint, { node: NodePlan; pod: PodPlan }>();
  private readonly sets = new Map<string, PlanSet>();

  constructor(plans: NodePlan[]) {
    for (const node of plans) {
      for (const pod of node.pods) for (const a of pod.addresses) this.pods.set(addressKey(a), { node, pod });
      for (const s of node.sets) this.sets.set(s.id, s);
    }
  }

  private allowMatches(allow: TierMatchPlan, peer: Address, protocol: string, port: number): boolean {
    const set = allow.set === undefined ? undefined : this.sets.get(allow.set);
    if (allow.kind === 'address-ports') {
      if (set?.kind !== 'address-ports') throw new Error(`set ${allow.set} missing`);
      return set.entries.some(
        (e) => addressKey(e.address) === addressKey(peer) && e.protocol === protocol && e.port === port,
      );
    }
    if (set && (set.kind !== 'addresses' || !set.ranges.some((r) => rangeContains(r, peer)))) return false;
    if (allow.ports === undefined) return true;
    if (!PORT_PROTOCOLS.includes(protocol)) return false;
    return allow.ports.some((r) => r.protocol === protocol && r.first <= port && port <= r.last);
  }

  private directionAllows(
    plan: DirectionPlan | undefined,
    peer: Address,
    protocol: string,
    port: number,
  ): boolean {
    if (!plan) return true;
    return plan.allows.some((a) => this.allowMatches(a, peer, protocol, port));
  }

  /** The first tier rule whose matches hit, if any. */
  private firstRule(rules: TierDirectionPlan['admin'], peer: Address, protocol: string, port: number) {
    return rules.find((r) => r.matches.some((m) => this.allowMatches(m, peer, protocol, port)));
  }

  /** Semantics 20-21: Admin (Accept/Deny final, Pass on), NetworkPolicy when isolated, Baseline, allow. */
  private decideDirection(
    plan: DirectionPlan | undefined,
    tiers: TierDirectionPlan | undefined,
    peer: Address,
    protocol: string,
    port: number,
  ): boolean {
    const admin = tiers && this.firstRule(tiers.admin, peer, protocol, port);
    if (admin && admin.action !== 'Pass') return admin.action === 'Accept';
    if (plan) return this.directionAllows(plan, peer, protocol, port);
    const baseline = tiers && this.firstRule(tiers.baseline, peer, protocol, port);
    return baseline?.action !== 'Deny';
  }

  decide(src: Address, dst: Address, protocol: string, port: number): boolean {
    const s = this.pods.get(addressKey(src));
    const d = this.pods.get(addressKey(dst));
    if (s && d && s.pod.key === d.pod.key) return true;
    const isNodeOf = (p: { node: NodePlan } | undefined, a: Address) =>
      p?.node.nodeAddresses.some((n) => addressKey(n) === addressKey(a));
    if (isNodeOf(s, dst) || isNodeOf(d, src)) return true;
    return (
      this.decideDirection(s?.pod.egress, s?.pod.egressTiers, dst, protocol, port) &&
      this.decideDirection(d?.pod.ingress, d?.pod.ingressTiers, src, protocol, port)
    );
  }
}
