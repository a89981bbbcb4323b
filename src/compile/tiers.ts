// The ClusterNetworkPolicy tiers of a node's table (semantics 20-24): per pod direction with a tier plan,
// a chain of its Admin rules, the NetworkPolicy stage, its Baseline rules, then allow. Pure, like
// desired.ts; it must not change anything for a pod without tier plans (NetworkPolicy-only clusters).
//
// Layout: the dispatch map sends such a pod to `ti-<hash>` / `te-<hash>` instead of its NetworkPolicy
// chain. Each Admin rule is one rule per match and family: the peer's address set (`ts-<hash>-4/6`, one
// per plan set, shared by every tier chain) or address.proto.port set, and the rule's protocol.port set
// (`tp-<hash>`), then Accept: accept (egress: return, so the destination's ingress is still checked),
// Deny: goto `in-x<hash>` / `eg-x<hash>` (one per CNP rule: `counter drop`, with the drop report rules
// when reports are on, attributed to `cnp/NAME` through DesiredState.tierDenies), Pass: goto the
// NetworkPolicy stage. That stage is `goto` the pod's NetworkPolicy chain, unchanged, when NetworkPolicies
// isolate it; else the Baseline rules (`<tier chain>-b`, Pass reads allow there), then allow.
// Per packet, a new connection of such a pod meets at most 2 lookups per match of each CNP rule selecting
// it (address or address.proto.port set, protocol.port set), plus the NetworkPolicy chain's as before:
// the cost grows with the CNP rules selecting the pod, never with pods, nodes or NetworkPolicies.
import { addressRange } from '../policy/address.ts';
import type { PlanSet, PodPlan, PortRange } from '../policy/plan.ts';
import type { TierDirectionPlan, TierMatchPlan, TierRulePlan } from '../policy/plan-tiers.ts';
import type { Direction } from '../policy/types.ts';
import { InternalError } from '../util/errors.ts';
import {
  type DesiredState,
  hash,
  portElements,
  QUIET_SUFFIX,
  type RuleSpec,
  tupleElements,
} from './desired.ts';
import { buildRunElements, GroupElements } from './runs.ts';

const families = [4, 6] as const;
const PROTO: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };
const portText = (p: PortRange) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`);

type Chains = { ingress: string | undefined; egress: string | undefined };

/** Builds the tier chains and their sets into one desired state, each distinct chain once. */
export class TierChains {
  private readonly state: DesiredState;
  /** (tier plan, NetworkPolicy chain, quiet) -> the tier chain's name. */
  private readonly built = new Map<TierDirectionPlan, Map<string, string>>();

  constructor(state: DesiredState) {
    this.state = state;
  }

  /** The chains the dispatch maps send the pod to: its tier chains where it has tier plans. */
  podChains(
    pod: PodPlan,
    np: Chains,
    sets: Map<string, PlanSet>,
    quiet: Set<string>,
    quietPod: boolean,
  ): Chains {
    if (pod.ingressTiers === undefined && pod.egressTiers === undefined) return np;
    // A pod of an opted-out namespace gets tier and deny chains of its own, without report rules.
    const suffix = quietPod ? QUIET_SUFFIX : '';
    const one = (d: Direction, t: TierDirectionPlan | undefined, chain: string | undefined) =>
      t === undefined ? chain : this.chain(d, t, chain, sets, suffix, quiet);
    // An audit chain (point 25) enforces nothing: for the tiers such a pod is not isolated, so Baseline
    // decides (its would-deny reports are then not made for that direction).
    return {
      ingress: one('ingress', pod.ingressTiers, pod.ingress ? np.ingress : undefined) ?? np.ingress,
      egress: one('egress', pod.egressTiers, pod.egress ? np.egress : undefined) ?? np.egress,
    };
  }

  private chain(
    direction: Direction,
    plan: TierDirectionPlan,
    np: string | undefined,
    sets: Map<string, PlanSet>,
    suffix: string,
    quiet: Set<string>,
  ): string {
    const memoKey = `${np ?? ''} ${suffix}`;
    let byNp = this.built.get(plan);
    const known = byNp?.get(memoKey);
    if (known !== undefined) return known;
    const d = direction === 'ingress' ? 'i' : 'e';
    const name = `t${d}-${hash(`${direction} ${np ?? '-'} ${planKey(plan)}`)}${suffix}`;
    if (suffix !== '') quiet.add(name);
    const allow = direction === 'ingress' ? 'accept' : 'return';
    const rules: RuleSpec[] = [];
    let stage: string;
    if (np !== undefined) stage = `goto ${np}`;
    else if (plan.baseline.length > 0) {
      const b = `${name}-b`;
      const brules: RuleSpec[] = [];
      for (const r of plan.baseline)
        this.rule(brules, direction, r, r.action === 'Pass' ? allow : undefined, sets, suffix, quiet);
      brules.push({ kind: 'final', verdict: allow, counter: false, comment: 'no tier decided: allow' });
      this.state.chains.set(b, {
        name: b,
        base: false,
        rules: brules,
        comment: `${direction} Baseline tier`,
      });
      stage = `goto ${b}`;
    } else stage = allow;
    for (const r of plan.admin)
      this.rule(rules, direction, r, r.action === 'Pass' ? stage : undefined, sets, suffix, quiet);
    rules.push(
      stage === allow
        ? { kind: 'final', verdict: allow, counter: false, comment: 'no tier decided: allow' }
        : tierRule(undefined, direction, {}, stage),
    );
    this.state.chains.set(name, {
      name,
      base: false,
      rules,
      comment: `${direction} ClusterNetworkPolicy tiers`,
    });
    if (!byNp) {
      byNp = new Map();
      this.built.set(plan, byNp);
    }
    byNp.set(memoKey, name);
    return name;
  }

  /** One CNP rule as one rule per match and family; `pass`: the verdict of a Pass rule. */
  private rule(
    out: RuleSpec[],
    direction: Direction,
    r: TierRulePlan,
    pass: string | undefined,
    sets: Map<string, PlanSet>,
    suffix: string,
    quiet: Set<string>,
  ): void {
    const verdict =
      r.action === 'Accept'
        ? direction === 'ingress'
          ? 'accept'
          : 'return'
        : r.action === 'Pass'
          ? pass!
          : `goto ${this.deny(direction, r, suffix, quiet)}`;
    for (const match of r.matches) {
      if (match.kind === 'address-ports') {
        for (const f of families)
          out.push(tierRule(f, direction, { addressPorts: this.peers(match.set, f, sets) }, verdict));
        continue;
      }
      const ports = match.ports === undefined ? undefined : this.ports(match.ports);
      if (match.set === undefined) out.push(tierRule(undefined, direction, { ports }, verdict));
      else
        for (const f of families)
          out.push(tierRule(f, direction, { addresses: this.peers(match.set, f, sets), ports }, verdict));
    }
  }

  /** The chain a Deny rule goes to: a counted drop, reported as this CNP's (desired.ts addReports). */
  private deny(direction: Direction, r: TierRulePlan, suffix: string, quiet: Set<string>): string {
    const name = `${direction === 'ingress' ? 'in' : 'eg'}-x${hash(`${r.policy} ${r.rule}`)}${suffix}`;
    if (!this.state.chains.has(name)) {
      this.state.chains.set(name, {
        name,
        base: false,
        rules: [{ kind: 'final', verdict: 'drop', counter: true, comment: undefined }],
        comment: `${direction} denied by ClusterNetworkPolicy ${r.policy} rule ${r.rule}`,
      });
      if (suffix !== '') quiet.add(name);
      this.state.tierDenies ??= new Map();
      this.state.tierDenies.set(name, `cnp/${r.policy}`);
    }
    return name;
  }

  /** The set of a plan set's members of one family: addresses, or address.proto.port (named ports). */
  private peers(id: string, family: 4 | 6, sets: Map<string, PlanSet>): string {
    const name = `ts-${hash(id)}-${family}`;
    if (this.state.sets.has(name)) return name;
    const s = sets.get(id);
    if (s === undefined) throw new InternalError(`plan set ${id} missing`);
    const addr = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
    const named = s.kind === 'address-ports';
    const elements = named
      ? tupleElements(
          s.entries
            .filter((e) => e.address.family === family)
            .map((e) => ({
              range: addressRange(e.address),
              port: { protocol: e.protocol, first: e.port, last: e.port },
            })),
        )
      : buildRunElements(undefined, [{ suffix: '', parts: [s.ranges.filter((x) => x.family === family)] }])
          .elements;
    this.state.sets.set(name, {
      name,
      key: named ? [addr, 'inet_proto', 'inet_service'] : [addr],
      map: false,
      interval: true,
      elements,
      comment: named
        ? 'ClusterNetworkPolicy peers by named port'
        : `ClusterNetworkPolicy peers: ${s.description}`,
    });
    return name;
  }

  private ports(ports: readonly PortRange[]): string {
    const text = ports.map((p) => `${PROTO[p.protocol]} . ${portText(p)}`);
    const name = `tp-${hash(text.join(','))}`;
    if (!this.state.sets.has(name))
      this.state.sets.set(name, {
        name,
        key: ['inet_proto', 'inet_service'],
        map: false,
        interval: true,
        elements: new GroupElements(portElements(ports)),
        comment: 'ClusterNetworkPolicy ports',
      });
    return name;
  }
}

function tierRule(
  family: 4 | 6 | undefined,
  direction: Direction,
  s: { addresses?: string; addressPorts?: string; ports?: string | undefined },
  verdict: string,
): RuleSpec {
  return {
    kind: 'tier',
    family,
    field: direction === 'ingress' ? 'saddr' : 'daddr',
    addresses: s.addresses,
    addressPorts: s.addressPorts,
    ports: s.ports,
    verdict,
  };
}

const matchKey = (m: TierMatchPlan): string =>
  m.kind === 'address-ports'
    ? `n ${m.set}`
    : `p ${m.set ?? '*'} ${m.ports?.map((p) => `${p.protocol}:${portText(p)}`).join(',') ?? '*'}`;

const rulesKey = (rules: readonly TierRulePlan[]): string =>
  rules.map((r) => `${r.policy} ${r.rule} ${r.action} [${r.matches.map(matchKey).join(';')}]`).join('|');

/** The structure of a tier plan (its set ids, not their members): equal keys share one chain. */
const planKey = (plan: TierDirectionPlan): string => `A ${rulesKey(plan.admin)} B ${rulesKey(plan.baseline)}`;
