// The per-node plan: for every live pod on one node, its ingress/egress isolation and what it allows, as
// (peer address set x protocol/port ranges). The input of the nftables compiler, so peer sets are shared:
// one set per distinct peer meaning, referenced by every rule, policy and pod that uses it. Pure: no I/O.
import { createHash } from 'node:crypto';
import type { Address, AddressRange } from './address.ts';
import { mergeAddresses, mergeRanges, sortedV4Ranges } from './address.ts';
import type { ClusterPolicy } from './cluster-types.ts';
import { ClusterIndex, podPeerKey } from './index.ts';
import type { Memo } from './memo.ts';
import { planTiers, type TierDirectionPlan, TierOrder, type TierSets } from './plan-tiers.ts';
import { matchesSelector, selectorKey } from './selector.ts';
import type {
  ClusterState,
  Direction,
  LabelSelector,
  Peer,
  Pod,
  Policy,
  Protocol,
  Rule,
  ValidationIssue,
} from './types.ts';

export interface PortRange {
  protocol: Protocol;
  /** Inclusive; a protocol without port (point 8) is 0..65535. */
  first: number;
  last: number;
}

export interface AddressPort {
  address: Address;
  protocol: Protocol;
  port: number;
}

/** Shared between plans and compiled by identity (see PlanCache): never changed once made. */
export type PlanSet =
  | {
      readonly id: string;
      readonly kind: 'addresses';
      /** What the set means, e.g. `pods [role=db] in namespace prod` or `ipBlock 10.0.0.0/8 except [...]`. */
      readonly description: string;
      /** Merged, sorted, both families. */
      readonly ranges: readonly AddressRange[];
    }
  | {
      readonly id: string;
      readonly kind: 'address-ports';
      /** Egress named ports (point 9): each peer pod's address with the port the name resolves to on it. */
      readonly description: string;
      readonly entries: readonly AddressPort[];
    };

export interface RuleRef {
  policy: string;
  direction: Direction;
  rule: number;
}

export type PlanAllow =
  | {
      kind: 'peers';
      /** An `addresses` set id; undefined: any address (a rule without from/to). */
      set: string | undefined;
      /** Merged per protocol; undefined: every protocol and port, ICMP too (point 15). */
      ports: PortRange[] | undefined;
      rules: RuleRef[];
    }
  | {
      kind: 'address-ports';
      /** An `address-ports` set id. */
      set: string;
      rules: RuleRef[];
    };

export interface DirectionPlan {
  isolatedBy: string[];
  /** Made of audit-mode policies only (point 25): enforces nothing; what it would deny is reported. */
  audit?: true;
  /** Some rule allows any peer on any port: the direction is isolated in name only. */
  allowAll: boolean;
  /** Deduplicated: one entry per set (and one for "any address"), ports merged. Order is stable. */
  allows: PlanAllow[];
}

export interface PodPlan {
  key: string;
  addresses: readonly Address[];
  /** undefined: not isolated for the direction (point 3). */
  ingress: DirectionPlan | undefined;
  egress: DirectionPlan | undefined;
  /**
   * Only for a direction no enforced policy isolates (then only these can produce a would-deny): what the
   * audit-mode policies selecting the pod would make of it (point 25). Enforces nothing.
   */
  auditIngress?: DirectionPlan;
  auditEgress?: DirectionPlan;
  /**
   * The ClusterNetworkPolicy rules around the NetworkPolicy stage (plan-tiers.ts, which states the
   * per-packet cost). Only present when such a rule selects the pod: without, a pod's plan is exactly
   * what it was before ClusterNetworkPolicies existed.
   */
  ingressTiers?: TierDirectionPlan;
  egressTiers?: TierDirectionPlan;
}

export interface NodePlan {
  node: string;
  /** The node's own addresses: traffic between them and local pods always passes (point 12). */
  nodeAddresses: readonly Address[];
  podCIDRs: readonly AddressRange[];
  /** Every live pod on the node, isolated or not, sorted by key. */
  pods: PodPlan[];
  /** The sets the pods' allows reference, sorted by id. */
  sets: PlanSet[];
  /** Validation issues of all policies (each once), then every address two or more live pods claim. */
  issues: ValidationIssue[];
}

const ALL_PORTS = { first: 0, last: 65535 };

/**
 * A short, stable set id derived from what the set means (not its members), so it survives updates.
 * Memoized in `memo` when given (a sha256 per set and sync adds up at 5,000 policies).
 */
export function setId(prefix: string, meaning: string, memo?: Memo): string {
  const make = () => `${prefix}${createHash('sha256').update(meaning).digest('hex').slice(0, 12)}`;
  return memo ? memo.setIds.get(prefix + meaning, make) : make();
}

/** Sorts port ranges and merges overlapping or adjacent ones of the same protocol. */
export function mergePorts(ranges: PortRange[]): PortRange[] {
  const sorted = [...ranges].sort(
    (a, b) => a.protocol.localeCompare(b.protocol) || a.first - b.first || a.last - b.last,
  );
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last.protocol === r.protocol && r.first <= last.last + 1)
      last.last = Math.max(last.last, r.last);
    else out.push({ ...r });
  }
  return out;
}

/** Where a plan set's content comes from; resolved once per plan, after every pod is planned. */
type SetSource =
  /** ipBlocks and ClusterNetworkPolicy networks: the meaning alone fixes the content. */
  | { kind: 'ipBlock'; meaning: string; ranges: readonly AddressRange[] }
  /** ClusterNetworkPolicy node peers: the addresses of the nodes whose labels match. */
  | { kind: 'nodes'; meaning: string; selector: LabelSelector }
  | { kind: 'pods'; meaning: string; peer: Peer & { kind: 'pods' }; namespace: string; peerKey: string }
  | {
      kind: 'named';
      meaning: string;
      /** undefined: any pod ("any peer" with a named port). */
      peer: (Peer & { kind: 'pods' }) | undefined;
      /** podPeerKey of the peer, when there is one. */
      peerKey: string | undefined;
      namespace: string;
      name: string;
      /** undefined: every protocol the name has on a pod (ClusterNetworkPolicy destinationNamedPort). */
      protocol: Protocol | undefined;
    };

/** Never changed once made (a hit with equal policies is a new entry): diffs compare plans by identity. */
interface CachedPodPlan {
  readonly pod: Pod;
  readonly policies: readonly Policy[];
  readonly clusterPolicies: readonly ClusterPolicy[];
  readonly plan: PodPlan;
  readonly sources: readonly (readonly [string, SetSource])[];
}

/** A cached plan set and the members it was built from; replaced, never changed. */
interface CachedSet {
  readonly members: readonly Pod[] | undefined;
  /** reuseWhile's version object, instead of members. */
  readonly version?: object;
  readonly set: PlanSet;
}

/** Whether an address set has these ranges (the same values, in order). */
function sameRanges(old: PlanSet, set: PlanSet & { kind: 'addresses' }): boolean {
  if (old.kind !== 'addresses' || old.ranges.length !== set.ranges.length) return false;
  for (let i = 0; i < old.ranges.length; i++) {
    const a = old.ranges[i]!;
    const b = set.ranges[i]!;
    if (a !== b && (a.family !== b.family || a.first !== b.first || a.last !== b.last)) return false;
  }
  return true;
}

/** Two generations of a cache: what a plan did not use is dropped at the next rotation. */
class Generations<V> {
  private previous = new Map<string, V>();
  private current = new Map<string, V>();
  get(key: string): V | undefined {
    const hit = this.current.get(key) ?? this.previous.get(key);
    if (hit !== undefined) this.current.set(key, hit);
    return hit;
  }
  set(key: string, value: V): void {
    this.current.set(key, value);
  }
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

/**
 * Keeps a plan's pieces from one plan to the next, for a long-lived caller (the reconciler) that plans
 * the same node again and again from an index it keeps up to date:
 * - a pod whose object and selecting policies are the very same as before keeps its PodPlan;
 * - a set whose members are the very same (normalized) Pod objects as before is returned as the same
 *   PlanSet object, so the compiler can skip it by identity.
 * What the latest plan did not use is forgotten.
 */
export class PlanCache {
  private readonly sets = new Generations<CachedSet>();
  private readonly pods = new Generations<CachedPodPlan>();

  /**
   * `members` undefined: the set's meaning alone fixes its content (ipBlocks); else it is kept while
   * they are the very same objects, in the same order.
   */
  reuse(
    id: string,
    members: readonly Pod[] | undefined,
    build: (previous: PlanSet | undefined) => PlanSet,
  ): PlanSet {
    const old = this.sets.get(id);
    const kept =
      old !== undefined &&
      old.version === undefined &&
      (members === undefined
        ? old.members === undefined
        : old.members !== undefined &&
          (old.members === members ||
            (old.members.length === members.length && old.members.every((m, i) => m === members[i]))));
    if (old && kept) {
      // The newest members are the ones the next comparison starts from (usually the same array).
      if (old.members !== members) this.sets.set(id, { members, set: old.set });
      return old.set;
    }
    const set = build(old?.set);
    this.sets.set(id, { members, set });
    return set;
  }

  /**
   * An address set whose content changes only when `version` (compared by identity) does; built again
   * otherwise, and the old set kept when the content came out the same (another index over the same
   * pods, a member replaced by one with the same address).
   */
  reuseWhile(
    id: string,
    version: object,
    build: (previous: PlanSet | undefined) => PlanSet & { kind: 'addresses' },
  ): PlanSet {
    const old = this.sets.get(id);
    if (old !== undefined && old.version === version) return old.set;
    return this.keepSame(id, old?.set, build(old?.set), version);
  }

  /** `built`, or `old` when it has the same ranges, stored as the set of `id`. */
  private keepSame(
    id: string,
    old: PlanSet | undefined,
    built: PlanSet & { kind: 'addresses' },
    version: object | undefined,
  ): PlanSet {
    const set = old !== undefined && sameRanges(old, built) ? old : built;
    this.sets.set(id, { members: undefined, version, set });
    return set;
  }

  podPlan(
    pod: Pod,
    policies: readonly Policy[],
    clusterPolicies: readonly ClusterPolicy[],
  ): CachedPodPlan | undefined {
    const hit = this.pods.get(pod.key);
    if (!hit || hit.pod !== pod) return undefined;
    const c = hit.clusterPolicies;
    if (c.length !== clusterPolicies.length || !c.every((p, i) => p === clusterPolicies[i])) return undefined;
    if (hit.policies === policies) return hit;
    // The index matches a pod again when a policy of its namespace changes: equal content still counts.
    if (hit.policies.length !== policies.length || !hit.policies.every((p, i) => p === policies[i]))
      return undefined;
    return { ...hit, policies };
  }

  /** A set built afresh each plan (few members, e.g. nodes): the previous object when equal in content. */
  reuseContent(set: PlanSet & { kind: 'addresses' }): PlanSet {
    return this.keepSame(set.id, this.sets.get(set.id)?.set, set, undefined);
  }

  keepPodPlan(entry: CachedPodPlan): void {
    this.pods.set(entry.pod.key, entry);
  }

  /** Ends a plan: what it did not use is dropped at the next rotation. */
  rotate(): void {
    this.sets.rotate();
    this.pods.rotate();
  }
}

/** Builds plans; one planner per cluster state (or per update of a long-lived index), for any node. */
export class Planner {
  readonly index: ClusterIndex;
  private readonly cache: PlanCache;
  /** The sets referenced so far, by id: resolved to PlanSets at the end of planNode. */
  private readonly sources = new Map<string, SetSource>();
  private readonly resolved = new Map<string, PlanSet>();
  /** Where the pod being planned records its sets (for the pod plan cache). */
  private recording: (readonly [string, SetSource])[] | undefined;
  private readonly recorded = new Set<string>();
  /** Tier plans by the policies selecting a pod (see planTiersShared); one planner, one state. */
  private readonly sharedTiers = new Map<
    string,
    { plan: TierDirectionPlan | undefined; sources: (readonly [string, SetSource])[] }
  >();
  private readonly tiers: TierOrder;
  private readonly tierSets: TierSets;

  constructor(stateOrIndex: ClusterState | ClusterIndex, cache: PlanCache = new PlanCache()) {
    this.index = stateOrIndex instanceof ClusterIndex ? stateOrIndex : new ClusterIndex(stateOrIndex);
    this.cache = cache;
    this.tiers = new TierOrder(this.index.state.clusterPolicies ?? []);
    // A cluster peer namespace selector is never `own`, so the policy namespace does not matter.
    this.tierSets = {
      pods: (peer) => this.peerSet(peer, ''),
      named: (peer, name) => this.namedPortSet(peer, '', name, undefined),
      nodes: (selector) => {
        const meaning = `nodes [${selectorKey(selector)}]`;
        return this.use(setId('a', meaning, this.index.memo), { kind: 'nodes', meaning, selector });
      },
      networks: (cidrs, ranges) => {
        // One CIDR means what an ipBlock of it means: the same set.
        const meaning = cidrs.length === 1 ? `ipBlock ${cidrs[0]}` : `networks ${cidrs.join(', ')}`;
        return this.use(setId('a', meaning, this.index.memo), { kind: 'ipBlock', meaning, ranges });
      },
    };
  }

  private use(id: string, source: SetSource): string {
    if (!this.sources.has(id)) this.sources.set(id, source);
    if (this.recording !== undefined && !this.recorded.has(id)) {
      // Once per pod: a cache hit replays these, and tier rules name the same sets again and again.
      this.recorded.add(id);
      this.recording.push([id, source]);
    }
    return id;
  }

  private peerSet(peer: Peer, policyNamespace: string): string {
    if (peer.kind === 'ipBlock') {
      const meaning = `ipBlock ${peer.cidr}${peer.except.length ? ` except [${peer.except.join(', ')}]` : ''}`;
      return this.use(setId('a', meaning, this.index.memo), {
        kind: 'ipBlock',
        meaning,
        ranges: peer.ranges,
      });
    }
    const meaning = podPeerKey(peer, policyNamespace, this.index.memo);
    return this.use(setId('a', meaning, this.index.memo), {
      kind: 'pods',
      meaning,
      peer,
      namespace: policyNamespace,
      peerKey: meaning,
    });
  }

  /** Named egress ports through a pod peer (or through "any peer": every live pod). */
  private namedPortSet(
    peer: (Peer & { kind: 'pods' }) | undefined,
    policyNamespace: string,
    name: string,
    protocol: Protocol | undefined,
  ): string {
    const peerKey = peer && podPeerKey(peer, policyNamespace, this.index.memo);
    const port = protocol === undefined ? name : `${name}/${protocol}`;
    const meaning = peerKey ? `${peerKey}, port ${port}` : `all pods, port ${port}`;
    return this.use(setId('n', meaning, this.index.memo), {
      kind: 'named',
      meaning,
      peer,
      peerKey,
      namespace: policyNamespace,
      name,
      protocol,
    });
  }

  /** The content of a referenced set, reused through the cache when its members did not change. */
  private resolve(id: string): PlanSet {
    const done = this.resolved.get(id);
    if (done) return done;
    const source = this.sources.get(id)!;
    let set: PlanSet;
    if (source.kind === 'ipBlock') {
      const ranges = source.ranges;
      set = this.cache.reuse(id, undefined, () => ({
        id,
        kind: 'addresses',
        description: source.meaning,
        ranges: mergeRanges(ranges),
      }));
    } else if (source.kind === 'nodes') {
      const addresses: Address[] = [];
      for (const node of this.index.state.nodes)
        if (matchesSelector(source.selector, node.labels)) addresses.push(...node.addresses);
      set = this.cache.reuseContent({
        id,
        kind: 'addresses',
        description: source.meaning,
        ranges: mergeAddresses(addresses),
      });
    } else if (source.kind === 'pods') {
      // Kept while the members' addresses are: a pod relabelled within the peer, or re-read with its
      // addresses unchanged, keeps the set (and every chain built from it) as it was.
      set = this.cache.reuseWhile(
        id,
        this.index.podPeerAddresses(source.peer, source.namespace),
        (previous) => {
          const before = previous?.kind === 'addresses' ? previous.ranges : undefined;
          const v4 = this.index.podPeerV4(source.peer, source.namespace);
          let ranges: AddressRange[];
          if (v4 !== undefined) ranges = sortedV4Ranges(v4, before);
          else {
            const addresses: Address[] = [];
            for (const pod of this.index.podPeerMembers(source.peer, source.namespace))
              for (const ip of pod.ips) addresses.push(ip);
            ranges = mergeAddresses(addresses, before);
          }
          return { id, kind: 'addresses', description: source.meaning, ranges };
        },
      );
    } else {
      const members = source.peer
        ? this.index.podPeerMembers(source.peer, source.namespace)
        : this.index.livePods;
      set = this.cache.reuse(id, members, () => {
        const entries: AddressPort[] = [];
        // Every container port of that name (and protocol, for NetworkPolicies), as the evaluator reads
        // point 9: a pod may declare one name twice (in two containers).
        for (const pod of members)
          for (const cp of pod.ports)
            if (cp.name === source.name && (source.protocol === undefined || cp.protocol === source.protocol))
              for (const address of pod.ips) entries.push({ address, protocol: cp.protocol, port: cp.port });
        return { id, kind: 'address-ports', description: source.meaning, entries };
      });
    }
    this.resolved.set(id, set);
    return set;
  }

  private planDirection(pod: Pod, direction: Direction, audit = false): DirectionPlan | undefined {
    const selecting = audit ? this.index.auditPoliciesSelecting(pod) : this.index.policiesSelecting(pod);
    const isolating = selecting.filter((p) => p[direction] !== undefined);
    if (isolating.length === 0) return undefined;
    const allows = new Map<string, PlanAllow>();
    const add = (key: string, fresh: () => PlanAllow, ports: PortRange[] | undefined, ref: RuleRef) => {
      let allow = allows.get(key);
      if (!allow) {
        allow = fresh();
        allows.set(key, allow);
      } else if (allow.kind === 'peers') {
        allow.ports =
          allow.ports === undefined || ports === undefined
            ? undefined
            : mergePorts([...allow.ports, ...ports]);
      }
      if (
        !allow.rules.some(
          (r) => r.policy === ref.policy && r.direction === ref.direction && r.rule === ref.rule,
        )
      ) {
        allow.rules.push(ref);
      }
    };
    // `ports` arrive merged, one array per rule: every peer of a rule shares it (a rule of 700 peers and
    // 700 ports is 700 ports in memory, not 490,000). Allows never change a ports array, only replace it.
    const allowPeers = (set: string | undefined, ports: PortRange[] | undefined, ref: RuleRef) =>
      add(`p:${set ?? '*'}`, () => ({ kind: 'peers', set, ports, rules: [] }), ports, ref);
    const allowNamed = (set: string, ref: RuleRef) =>
      add(`n:${set}`, () => ({ kind: 'address-ports', set, rules: [] }), undefined, ref);

    for (const policy of isolating) {
      for (const rule of policy[direction]!) {
        if (rule.invalid) continue; // fail closed: an invalid rule allows nothing
        const ref: RuleRef = { policy: policy.key, direction, rule: rule.index };
        const { numeric: listed, named } = this.rulePorts(rule, direction, pod);
        const numeric = mergePorts(listed);
        const anyPort = rule.ports === undefined;
        if (!anyPort && numeric.length === 0 && named.length === 0) continue; // no port resolves on this pod
        const peers = rule.peers ?? [undefined];
        for (const peer of peers) {
          const set = peer === undefined ? undefined : this.peerSet(peer, policy.namespace);
          if (anyPort) allowPeers(set, undefined, ref);
          else if (numeric.length > 0) allowPeers(set, numeric, ref);
          // Egress named ports resolve on the contacted pod, never through an ipBlock (point 9).
          if (peer?.kind === 'ipBlock') continue;
          for (const n of named)
            allowNamed(this.namedPortSet(peer, policy.namespace, n.name, n.protocol), ref);
        }
      }
    }
    const list = [...allows.values()];
    return {
      isolatedBy: isolating.map((p) => p.key),
      ...(audit ? { audit: true as const } : {}),
      allowAll: list.some((a) => a.kind === 'peers' && a.set === undefined && a.ports === undefined),
      allows: list,
    };
  }

  /**
   * A rule's ports as numeric ranges plus named ports left to resolve per peer pod. Ingress named ports
   * resolve here, on the selected pod itself (point 9); a name the pod does not declare matches nothing.
   */
  private rulePorts(rule: Rule, direction: Direction, pod: Pod) {
    const numeric: PortRange[] = [];
    const named: { name: string; protocol: Protocol }[] = [];
    for (const p of rule.ports ?? []) {
      if (p.port === undefined) numeric.push({ protocol: p.protocol, ...ALL_PORTS });
      else if (typeof p.port === 'number')
        numeric.push({ protocol: p.protocol, first: p.port, last: p.endPort ?? p.port });
      else if (direction === 'egress') named.push({ name: p.port, protocol: p.protocol });
      else {
        for (const cp of pod.ports)
          if (cp.name === p.port && cp.protocol === p.protocol)
            numeric.push({ protocol: p.protocol, first: cp.port, last: cp.port });
      }
    }
    return { numeric, named };
  }

  planPod(pod: Pod, clusterPolicies = this.tiers.selecting(this.index, pod)): PodPlan {
    const ingress = this.planDirection(pod, 'ingress');
    const egress = this.planDirection(pod, 'egress');
    const auditIngress = ingress ? undefined : this.planDirection(pod, 'ingress', true);
    const auditEgress = egress ? undefined : this.planDirection(pod, 'egress', true);
    const plan: PodPlan = {
      key: pod.key,
      addresses: pod.ips,
      ingress,
      egress,
      ...(auditIngress ? { auditIngress } : {}),
      ...(auditEgress ? { auditEgress } : {}),
    };
    if (clusterPolicies.length === 0) return plan;
    const ingressTiers = this.planTiersShared(clusterPolicies, 'ingress', pod);
    const egressTiers = this.planTiersShared(clusterPolicies, 'egress', pod);
    if (ingressTiers) plan.ingressTiers = ingressTiers;
    if (egressTiers) plan.egressTiers = egressTiers;
    return plan;
  }

  /**
   * planTiers, shared by the pods the same ClusterNetworkPolicies select (and, where an ingress rule
   * names a port, that declare the same ports): one TierDirectionPlan object for all of them, so the
   * rules are planned once per plan and walked once when collecting sets.
   */
  private planTiersShared(
    policies: readonly ClusterPolicy[],
    direction: Direction,
    pod: Pod,
  ): TierDirectionPlan | undefined {
    let key = `${direction}\0${policies.map((p) => p.key).join('\0')}`;
    const named =
      direction === 'ingress' &&
      policies.some((p) => p.ingress.some((r) => r.ports?.some((x) => x.kind === 'named')));
    if (named) key += `\0${pod.ports.map((c) => `${c.name}/${c.protocol}/${c.port}`).join(',')}`;
    let entry = this.sharedTiers.get(key);
    if (entry === undefined) {
      const sources: (readonly [string, SetSource])[] = [];
      const outer = this.recording;
      const outerRecorded = new Set(this.recorded);
      this.recording = sources;
      this.recorded.clear();
      try {
        entry = { plan: planTiers(policies, direction, pod, this.tierSets), sources };
      } finally {
        this.recording = outer;
        this.recorded.clear();
        for (const id of outerRecorded) this.recorded.add(id);
      }
      this.sharedTiers.set(key, entry);
    }
    for (const [id, source] of entry.sources) this.use(id, source);
    return entry.plan;
  }

  /** planPod through the cache: the same pod object selected by the same policies keeps its plan. */
  private planPodCached(pod: Pod): PodPlan {
    const audit = this.index.auditPoliciesSelecting(pod);
    const enforced = this.index.policiesSelecting(pod);
    const policies = audit.length === 0 ? enforced : [...enforced, ...audit];
    const clusterPolicies = this.tiers.selecting(this.index, pod);
    const hit = this.cache.podPlan(pod, policies, clusterPolicies);
    if (hit) {
      for (const [id, source] of hit.sources) this.use(id, source);
      this.cache.keepPodPlan(hit);
      return hit.plan;
    }
    const sources: (readonly [string, SetSource])[] = [];
    this.recording = sources;
    this.recorded.clear();
    try {
      const plan = this.planPod(pod, clusterPolicies);
      this.cache.keepPodPlan({ pod, policies, clusterPolicies, plan, sources });
      return plan;
    } finally {
      this.recording = undefined;
    }
  }

  /** The canonical keys of the pod peers referenced by what was planned (see ClusterIndex.retainPeers). */
  peerKeysUsed(): Set<string> {
    const keys = new Set<string>();
    // The keys were made with the sources, which cached pod plans keep: no string is built per sync.
    for (const s of this.sources.values())
      if ((s.kind === 'pods' || s.kind === 'named') && s.peerKey) keys.add(s.peerKey);
    return keys;
  }

  planNode(nodeName: string): NodePlan {
    const node = this.index.node(nodeName);
    const pods = [...this.index.podsOnNode(nodeName)]
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((p) => this.planPodCached(p));
    const used = new Set<string>();
    const walked = new Set<TierDirectionPlan>();
    for (const p of pods) {
      for (const d of [p.ingress, p.egress, p.auditIngress, p.auditEgress])
        for (const a of d?.allows ?? []) if (a.set) used.add(a.set);
      // Shared between pods: each walked once.
      for (const t of [p.ingressTiers, p.egressTiers])
        if (t !== undefined && !walked.has(t)) {
          walked.add(t);
          tierSetsUsed(t, used);
        }
    }
    const sets = [...used].sort().map((id) => this.resolve(id));
    const issues = [
      ...this.index.state.policies.flatMap((p) => p.issues),
      ...(this.index.state.clusterPolicies ?? []).flatMap((p) => p.issues),
      ...this.index.addressConflicts(),
    ];
    this.cache.rotate();
    return {
      node: nodeName,
      nodeAddresses: node?.addresses ?? [],
      podCIDRs: node?.podCIDRs ?? [],
      pods,
      sets,
      issues,
    };
  }
}

/** Adds the sets a pod's tier rules use (no arrays built: 100 policies x 200 pods is 60,000 rules a plan). */
function tierSetsUsed(plan: TierDirectionPlan, used: Set<string>): void {
  for (const rules of [plan.admin, plan.baseline])
    for (const r of rules) for (const m of r.matches) if (m.set !== undefined) used.add(m.set);
}

/** Convenience: the plan of one node for a cluster state. */
export function planNode(state: ClusterState, nodeName: string): NodePlan {
  return new Planner(state).planNode(nodeName);
}
