// Plan -> desired nftables state of one node: the chains, rules, sets and verdict maps of `inet tollgate`
// as plain data (elements as nft's typed range groups, rules as specs), so that diffs are set operations.
// Pure: no kernel, no I/O; makes no nft text.
//
// Layout (one table, static base chain, data in sets and maps):
//   forward (hook forward, priority filter, policy accept)
//     ct state established,related accept        -- replies always pass (point 11)
//     ct state invalid drop
//     meta nfproto ipv6 meta l4proto icmpv6 icmpv6 type 135-136 accept
//                                                 -- neighbour solicitation/advertisement: IPv6's ARP, which
//                                                    bridged pods need to reach each other at all (ARP never
//                                                    meets an inet hook; ND would, and isolation dropped it)
//     ip saddr <pod CIDR> ip saddr != @local4 drop  -- unknown local addresses are isolated (point 17)
//     ip daddr <pod CIDR> ip daddr != @local4 drop
//     ip saddr vmap @egress4                      -- isolated local pods: jump eg-<hash>; others: miss
//     ip daddr vmap @ingress4                     -- jump in-<hash>
//     (the same for ip6)
//   eg-<hash> / in-<hash>: one chain per distinct direction plan, shared by every pod with that plan.
//     Its sets are `<base>-a4`, `-p`, `-c4`, ...: the base is the chain's own name, or, for a chain
//     rebuilt because its pods' plan changed, the base of the chain they used before (DesiredCache.lineage:
//     the sets are patched, not written again under new names).
//     Whatever a pod allows is merged into at most three lookups per family, so the per-packet cost does
//     not grow with the number of policies or rules (any-port peers, proto.port for any peer, and
//     peer.proto.port), then `counter drop`. Egress chains `return` on a match so that the destination's
//     ingress is still checked (point 10); ingress chains `accept`.
//   Peer.proto.port has two forms, chosen per chain by size:
//     fused: one `addr . proto . port` set (-c4/-c6): one lookup, but peers x ports elements;
//     classes (when the fused set exceeds DesiredCache's fuseUpTo, 512 elements by default, and twice
//       the ranges of the chain's address lists, and the classes weigh less): the address line is cut
//       into atoms by which address lists cover them, and atoms allowed the same ports share a class:
//       `ip saddr vmap @<chain>-m4` (atom -> goto the class chain in-k<hash> / eg-k<hash>, named by its
//       direction and ports alone, so chains with the same ports share it and a chain rebuilt for a new
//       plan keeps it), whose `meta l4proto . th dport @in-k<hash>-p` accepts (egress: returns) and
//       otherwise drops. Two lookups instead of one. Elements: atoms (at most twice the address ranges
//       of the chain's lists) plus, per class, its merged ports: peers + ports for one rule, and for
//       rules whose peer lists are equal or disjoint; lists that overlap with different ports can still
//       multiply (n nested lists with n different ports: n atoms, n(n+1)/2 class ports), which is why
//       the size decides. Verdict maps keep meta mark and ct mark untouched (kube-proxy and CNIs own
//       those bits).
// Per packet, a new connection meets at most: 2 base lookups (local set, then the dispatch map) per
// direction, and in each pod chain an any-port lookup, a proto.port lookup and the peer lookup (fused: 1,
// classes: 2): at most 4 + 2 x 4 = 12 lookups, whatever the number of policies, rules and pods.
// Traffic between a pod and its own node never crosses the forward hook (it is input/output), which is
// exactly point 12; other nodes and outside hosts are forwarded and judged like any address.
import { createHash } from 'node:crypto';
import { formatPrefix } from '../nflog/report.ts';
import type { MapVerdict, RangeGroup } from '../nft/index.ts';
import { type AddressRange, addressRange, formatAddress, mergeRanges } from '../policy/address.ts';
import {
  type DirectionPlan,
  mergePorts,
  type NodePlan,
  type PlanSet,
  type PortRange,
} from '../policy/plan.ts';
import type { Direction, Namespace } from '../policy/types.ts';
import { InternalError } from '../util/errors.ts';
import {
  buildRunElements,
  type ElementDelta,
  GroupElements,
  piecesTexts,
  type RunElements,
  type RunSpec,
  type SetElements,
  UnionMemo,
} from './runs.ts';
import { TierChains } from './tiers.ts';

export const TABLE = 'tollgate';
export const BASE_CHAIN = 'forward';

export type KeyType = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service';

export interface DesiredSet {
  readonly name: string;
  readonly key: readonly KeyType[];
  /** verdict maps carry `data: 'verdict'` */
  readonly map: boolean;
  readonly interval: boolean;
  /** The elements as range groups (maps: each with its verdict); for sets built from runs a RunElements. */
  readonly elements: SetElements;
  readonly comment: string;
  /** Set when `elements` was derived from an earlier collection: the diff uses it instead of comparing. */
  readonly delta?: ElementDelta;
  /** A dispatch map of isolated pods: more keys allow less (every other set and map allows more). */
  readonly isolates?: boolean;
}

/** A rule as the structured pieces the nft layer turns into expressions (see ruleset.ts). */
export type RuleSpec =
  | { kind: 'ct'; states: string; verdict: 'accept' | 'drop'; counter: boolean }
  | { kind: 'neighbour-discovery' }
  | { kind: 'unknown-local'; family: 4 | 6; field: 'saddr' | 'daddr'; cidr: string; knownSet: string }
  /** `ip saddr <cidr> ct state new meta l4proto tcp tcp flags & (fin|syn|rst|ack) != syn counter drop` */
  | { kind: 'syn-only'; family: 4 | 6; field: 'saddr' | 'daddr'; cidr: string }
  | { kind: 'dispatch'; family: 4 | 6; field: 'saddr' | 'daddr'; map: string }
  | {
      kind: 'lookup';
      family: 4 | 6 | undefined;
      /** The peer's address field: saddr for ingress, daddr for egress. */
      field: 'saddr' | 'daddr';
      fields: LookupField[];
      set: string;
      verdict: 'accept' | 'return';
    }
  | { kind: 'final'; verdict: 'accept' | 'return' | 'drop'; counter: boolean; comment: string | undefined }
  /** `ct state new jump <chain>`: a denied new connection asks the node's report limit (REPORT_CHAIN). */
  | { kind: 'report-gate'; chain: string }
  /** `ct state new log prefix "<prefix>" group <group>`: reached only below the limit (see ReportOptions). */
  | { kind: 'report'; group: number; prefix: string }
  /** An audit chain's gate: `ct state new limit name "<limit>" goto <chain>` (see ReportOptions). */
  | { kind: 'report-audit-gate'; limit: string; chain: string }
  /**
   * A ClusterNetworkPolicy rule's match (tiers.ts): up to two lookups (the peer's addresses, or its
   * address.proto.port set; the protocol.port set), then `verdict` (accept, return, goto CHAIN).
   */
  | {
      kind: 'tier';
      family: 4 | 6 | undefined;
      field: 'saddr' | 'daddr';
      addresses: string | undefined;
      addressPorts: string | undefined;
      ports: string | undefined;
      verdict: string;
    }
  /** REPORT_CHAIN's one rule: `limit name "<limit>" counter drop` (the node's limit object, over the rate). */
  | { kind: 'report-limit'; limit: string };

export type ReportRateUnit = 'second' | 'minute' | 'hour' | 'day';

/**
 * Drop reports (semantics 16, ../shared/scenarios/README.md "Denied connections in the log"): before the
 * `counter drop` of every isolation chain, `ct state new jump reports` then `ct state new log group G
 * prefix "tg:<i|e>:d:<chain>"`. The node's one token bucket is a named limit object (DesiredLimit, `rate
 * over R/per burst B packets`): REPORT_CHAIN's rule names it, and over the limit drops the packet itself (the
 * verdict it was about to get anyway, counted there: the suppressed reports); below it returns and the log
 * rule sends the packet to the agent. A limit in the log rule itself would be one bucket per chain, and a
 * limit in the drop rule would let packets over it fall through to accept.
 *
 * An audit chain (point 25) accepts (ingress) or returns (egress) what it would deny, so the dropping gate
 * cannot serve it: its gate names the same object, `ct state new limit name "<limit>" goto
 * reports-accept|reports-return`, chains whose one rule is `counter accept` / `counter return`. Over the
 * limit the would-deny is counted there and leaves as the audit chain would have left it (a goto's return
 * goes back to the audit chain's caller, as the audit chain's own return does), unlogged; below, the
 * packet falls through to the log rule. So deny and would-deny reports share one bucket per node (at most
 * rate + burst reports together), and every suppressed one is in one of the three counters of REPORT_CHAINS.
 */
export interface ReportOptions {
  /** nflog group the log rules send to (the agent's listener binds it). */
  readonly group: number;
  readonly rate: number;
  readonly per: ReportRateUnit;
  readonly burst: number;
  /** Namespaces whose pods' chains get no report rules (annotation tollgate.dev/drop-reports: "off"). */
  readonly quietNamespaces?: ReadonlySet<string>;
}

/** The namespaces annotated tollgate.dev/drop-reports: "off" (ReportOptions.quietNamespaces). */
export function quietNamespaces(namespaces: Iterable<Namespace>): Set<string> {
  const out = new Set<string>();
  for (const ns of namespaces) if (ns.dropReportsOff) out.add(ns.name);
  return out;
}

/** The comment of an audit chain's last rule (point 25): what reaches it would have been denied. */
export const WOULD_DENY = 'audit: would deny';

/** The chain of the node's report limit (see ReportOptions). */
export const REPORT_CHAIN = 'reports';
/** Where an audit chain's over-the-limit would-denies go, by the audit chain's last verdict. */
export const AUDIT_REPORT_CHAINS = { accept: 'reports-accept', return: 'reports-return' } as const;
/** The chains whose counters are the suppressed reports (deny, would-deny in, would-deny out). */
export const REPORT_CHAINS = [REPORT_CHAIN, AUDIT_REPORT_CHAINS.accept, AUDIT_REPORT_CHAINS.return] as const;

/** A named limit object (always `rate over`: the rules naming it match what exceeds the rate). */
export interface DesiredLimit {
  /** The parameters are in the name (reportLimitName): the kernel cannot update a limit object, so a
   *  changed limit is a new object that the rules switch to, and the old one goes once unused. */
  readonly name: string;
  readonly rate: number;
  readonly per: ReportRateUnit;
  readonly burst: number;
}

/** The node's report limit object: `reports-20-second-5` for 20/second burst 5. */
export const reportLimitName = (r: { rate: number; per: ReportRateUnit; burst: number }): string =>
  `${REPORT_CHAIN}-${r.rate}-${r.per}-${r.burst}`;
/** What a pod chain of an opted-out namespace is named: its structure's name plus this suffix. */
export const QUIET_SUFFIX = '-q';

export type LookupField = 'addr' | 'l4proto' | 'dport';

export interface DesiredChain {
  readonly name: string;
  readonly base: boolean;
  readonly rules: readonly RuleSpec[];
  readonly comment: string;
}

export interface DesiredState {
  readonly chains: Map<string, DesiredChain>;
  readonly sets: Map<string, DesiredSet>;
  /** Which local pods use which chain, for explanations and logs: pod key -> chain names. */
  readonly podChains: Map<string, { ingress: string | undefined; egress: string | undefined }>;
  /** ClusterNetworkPolicy deny chains (tiers.ts) -> `cnp/NAME`, what their reports are attributed to. */
  tierDenies?: Map<string, string>;
  /** Named limit objects by name (the drop report limit; absent: none). */
  objects?: Map<string, DesiredLimit>;
}

const families = [4, 6] as const;
const PROTO_NAMES: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };
/** The same protocols' numbers, for the key bytes of run elements (see RunSpec.tail). */
const PROTO_NUMBERS = { TCP: 6, UDP: 17, SCTP: 132 } as const;

function portText(p: PortRange): string {
  return p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`;
}

/** A peer address range with a protocol and port range: one element of a peer.proto.port set. */
interface Tuple {
  range: AddressRange;
  port: PortRange;
}

/**
 * Rewrites overlapping (address range x port range) tuples of one family into disjoint elements with the
 * same union: the kernel's concatenated interval sets reject overlapping elements. Per protocol, ports are
 * cut at every range boundary; each elementary port range gets the addresses of the tuples that cover it;
 * neighbouring port ranges covered by the same tuples are joined again.
 */
export function disjointTuples(tuples: Tuple[]): string[] {
  return piecesTexts(tupleElements(tuples).pieces());
}

/** The disjoint elements of `tuples` (see disjointTuples) in range form, as a set's elements. */
export function tupleElements(tuples: Tuple[]): RunElements {
  const groups = new Map<string, PortGroup>();
  for (const t of tuples) {
    const key = `${t.port.protocol} ${t.port.first} ${t.port.last}`;
    let g = groups.get(key);
    if (!g) {
      g = { port: t.port, parts: [] };
      groups.set(key, g);
    }
    g.parts.push([t.range]);
  }
  return buildRunElements(undefined, portRuns([...groups.values()])).elements;
}

/** Address lists sharing one protocol and port range. */
interface PortGroup {
  port: PortRange;
  parts: (readonly AddressRange[])[];
}

/**
 * The runs of a peer.proto.port set: per protocol, the port line is cut at every group boundary, and
 * neighbouring pieces covered by the same groups form one run (its suffix is the protocol and port
 * range). Which runs exist follows from the ports alone, never from members.
 */
function portRuns(groups: PortGroup[]): RunSpec[] {
  const out: RunSpec[] = [];
  for (const protocol of ['TCP', 'UDP', 'SCTP'] as const) {
    const mine = groups.filter((g) => g.port.protocol === protocol);
    if (mine.length === 0) continue;
    const cuts = [...new Set(mine.flatMap((g) => [g.port.first, g.port.last + 1]))].sort((a, b) => a - b);
    let pending: { first: number; last: number; cover: number[]; key: string } | undefined;
    const flush = () => {
      if (!pending) return;
      const ports = pending.first === pending.last ? `${pending.first}` : `${pending.first}-${pending.last}`;
      out.push({
        suffix: ` . ${PROTO_NAMES[protocol]} . ${ports}`,
        tail: [
          [PROTO_NUMBERS[protocol], PROTO_NUMBERS[protocol]],
          [pending.first, pending.last],
        ],
        parts: pending.cover.flatMap((j) => mine[j]!.parts),
      });
      pending = undefined;
    };
    for (let i = 0; i + 1 < cuts.length; i++) {
      const first = cuts[i]!;
      const last = cuts[i + 1]! - 1;
      const cover: number[] = [];
      for (let j = 0; j < mine.length; j++)
        if (mine[j]!.port.first <= first && last <= mine[j]!.port.last) cover.push(j);
      const key = cover.join(',');
      if (pending && pending.key === key && pending.last + 1 === first) {
        pending.last = last;
        continue;
      }
      flush();
      if (cover.length > 0) pending = { first, last, cover, key };
    }
    flush();
  }
  return out;
}

const EMPTY: readonly AddressRange[] = [];
/** One family's part of an address list, memoized so that an unchanged list gives the same object. */
function familyPart(
  cache: DesiredCache,
  part: readonly AddressRange[],
  family: 4 | 6,
): readonly AddressRange[] {
  let split = cache.splits.get(part);
  if (split === undefined) {
    const v4 = part.filter((r) => r.family === 4);
    split =
      v4.length === part.length
        ? [part, EMPTY]
        : v4.length === 0
          ? [EMPTY, part]
          : [v4, part.filter((r) => r.family === 6)];
    cache.splits.set(part, split);
  }
  return split[family === 4 ? 0 : 1];
}

/** An address-ports plan set as one address list per protocol and port (memoized per plan set). */
function groupsOfAddressPorts(cache: DesiredCache, set: PlanSet & { kind: 'address-ports' }): PortGroup[] {
  let groups = cache.addressPortGroups.get(set);
  if (groups === undefined) {
    const byPort = new Map<string, { port: PortRange; ranges: AddressRange[] }>();
    for (const e of set.entries) {
      const key = `${e.protocol} ${e.port}`;
      let g = byPort.get(key);
      if (!g) {
        g = { port: { protocol: e.protocol, first: e.port, last: e.port }, ranges: [] };
        byPort.set(key, g);
      }
      g.ranges.push(addressRange(e.address));
    }
    groups = [...byPort.values()].map((g) => ({ port: g.port, parts: [mergeRanges(g.ranges)] }));
    cache.addressPortGroups.set(set, groups);
  }
  return groups;
}

export function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** The chain of a direction plan, memoized by plan object (the planner reuses unchanged pod plans). */
function chainName(cache: DesiredCache, direction: Direction, plan: DirectionPlan): string {
  let name = cache.chainNames.get(plan);
  if (name === undefined) {
    name = `${direction === 'ingress' ? 'in' : 'eg'}-${hash(chainKey(cache, direction, plan))}`;
    cache.chainNames.set(plan, name);
  }
  return name;
}

/** A ports list as text, once per list: the peers of one rule share their list (700 peers, one text). */
function portsText(cache: DesiredCache, ports: readonly PortRange[]): string {
  let text = cache.portsTexts.get(ports);
  if (text === undefined) {
    text = ports.map((p) => `${p.protocol}:${portText(p)}`).join(',');
    cache.portsTexts.set(ports, text);
  }
  return text;
}

/** The structure of a direction plan, without set members: equal structures share one chain. */
function chainKey(cache: DesiredCache, direction: Direction, plan: DirectionPlan): string {
  const allows = plan.allows.map((a) =>
    a.kind === 'peers' ? `p ${a.set ?? '*'} ${a.ports ? portsText(cache, a.ports) : '*'}` : `n ${a.set}`,
  );
  return `${plan.audit ? 'audit ' : ''}${direction} ${plan.allowAll ? 'all' : allows.sort().join(';')}`;
}

function addSet(state: DesiredState, set: Omit<DesiredSet, 'elements'>, groups: readonly RangeGroup[]): void {
  state.sets.set(set.name, { ...set, elements: new GroupElements(groups) });
}

/** Port ranges as the elements of a `inet_proto . inet_service` set, in order. */
export const portElements = (ports: readonly PortRange[]): RangeGroup[] =>
  ports.map((p) => ({
    bounds: [PROTO_NUMBERS[p.protocol], PROTO_NUMBERS[p.protocol]],
    tail: [[p.first, p.last]],
  }));

/** Address ranges of one family as the first field of elements (IPv4 as numbers, IPv6 as bigints). */
function familyBounds(
  family: 4 | 6,
  ranges: readonly { first: bigint; last: bigint }[],
): number[] | bigint[] {
  if (family === 6) {
    const out: bigint[] = [];
    for (const r of ranges) out.push(r.first, r.last);
    return out;
  }
  const out: number[] = [];
  for (const r of ranges) out.push(Number(r.first), Number(r.last));
  return out;
}

/** A set made of runs, derived from the same set of the chain's previous build when there was one. */
type SetDefinition = Omit<DesiredSet, 'elements' | 'delta'>;

function addRunSet(
  state: DesiredState,
  set: SetDefinition,
  previous: DesiredSet | undefined,
  specs: RunSpec[],
  unions: UnionMemo,
): void {
  putRunSet(state, set, buildRunElements(previous?.elements, specs, unions));
}

/** A set built from runs, with its delta when it has one (see buildRunElements). */
function putRunSet(state: DesiredState, set: SetDefinition, built: ReturnType<typeof buildRunElements>) {
  const { elements, delta } = built;
  state.sets.set(set.name, delta ? { ...set, elements, delta } : { ...set, elements });
}

/** A set of protocols with port ranges. */
const portSet = (name: string, comment: string): SetDefinition => ({
  name,
  key: ['inet_proto', 'inet_service'],
  map: false,
  interval: true,
  comment,
});

const addressKey = (family: 4 | 6): KeyType => (family === 4 ? 'ipv4_addr' : 'ipv6_addr');

/** A pod chain's interval set (or map) keyed by a peer address of one family, then `rest`. */
const peerSet = (
  name: string,
  family: 4 | 6,
  comment: string,
  rest: readonly KeyType[] = [],
  map = false,
): SetDefinition => ({ name, key: [addressKey(family), ...rest], map, interval: true, comment });

/**
 * Builds the chain of one distinct direction plan and its merged sets, named `name`, its sets named
 * after `line.base` (see DesiredCache.lineage). Sets: `<base>-a4/-a6` peers allowed on any port;
 * `<base>-p` protocol.port allowed from/to any address; `<base>-c4/-c6` peer.protocol.port.
 */
function buildDirectionChain(
  state: DesiredState,
  direction: Direction,
  plan: DirectionPlan,
  sets: Map<string, PlanSet>,
  cache: DesiredCache,
  name: string,
  line: Lineage,
): void {
  if (state.chains.has(name)) return;
  const inputs = plan.allows.map((a) => (a.set === undefined ? undefined : sets.get(a.set)));
  if (cache.restore(state, name, line.base, inputs)) return;
  const previous = cache.previousSets(line.from);
  const classes = buildChainContent(state, direction, plan, sets, name, line.base, previous, cache);
  cache.record(state, name, line.base, inputs, classes);
}

/** A pod's chain names, by direction. */
type ChainNames = { readonly ingress: string | undefined; readonly egress: string | undefined };
interface PodChainNames {
  readonly keys: readonly string[];
  readonly chains: readonly ChainNames[];
}

/** Where a pod chain's sets get their names, and the chain of the previous build they continue. */
interface Lineage {
  /** The sets are `<base>-a4` etc.: the chain's own name, or its predecessor's base. */
  readonly base: string;
  /** The chain of the previous build whose sets (named after the same base) this build patches. */
  readonly from: string | undefined;
}

/**
 * Keeps each pod chain's output (the chain and its sets) from one desired state to the next: when the
 * plan sets it was built from are the very same objects (see PlanCache), the output objects are reused,
 * and the diff skips them by identity. Owned by a long-lived caller (the reconciler).
 */
export class DesiredCache {
  private previous = new Map<string, CachedChain>();
  private current = new Map<string, CachedChain>();
  /** The pod chains of the last build (keys and chains, as lineage got them) and of the one in progress. */
  private podChains: PodChainNames = { keys: [], chains: [] };
  private nextPodChains: PodChainNames = { keys: [], chains: [] };
  /** The largest fused peer.proto.port set a chain keeps before address classes are weighed. */
  readonly fuseUpTo: number;
  /** Unions of address lists shared by the chains of this build (and kept for the next). */
  readonly unions: UnionMemo;
  // Memos by object (plan pieces are never mutated; the planner keeps unchanged ones), bounded by the
  // objects alive. Owned here, not by the module, so that a fresh cache is a fresh computation.
  /** Each address list's IPv4 and IPv6 parts. */
  readonly splits = new WeakMap<
    readonly AddressRange[],
    readonly [readonly AddressRange[], readonly AddressRange[]]
  >();
  /** An address-ports plan set's address lists per protocol and port. */
  readonly addressPortGroups = new WeakMap<PlanSet, PortGroup[]>();
  readonly chainNames = new WeakMap<DirectionPlan, string>();
  /** Each built chain with its report rules, per report configuration (see withReports). */
  readonly reportChains = new WeakMap<DesiredChain, { key: string; chain: DesiredChain }>();
  /** REPORT_CHAIN of the last build, with the limit it was made for. */
  reportLimit: { key: string; chain: DesiredChain } | undefined;
  readonly portsTexts = new WeakMap<readonly PortRange[], string>();
  constructor(options: { fuseUpTo?: number } = {}) {
    this.fuseUpTo = options.fuseUpTo ?? 512;
    this.unions = new UnionMemo();
  }

  restore(state: DesiredState, name: string, base: string, inputs: unknown[]): boolean {
    const old = this.previous.get(name);
    if (
      !old ||
      old.base !== base ||
      old.inputs.length !== inputs.length ||
      !old.inputs.every((x, i) => x === inputs[i])
    )
      return false;
    state.chains.set(name, old.chain);
    for (const s of old.sets) state.sets.set(s.name, s);
    for (const c of old.classes) state.chains.set(c.name, c);
    this.current.set(name, old);
    return true;
  }

  /** The sets of a chain's previous build (its content before the members changed), by name. */
  previousSets(name: string | undefined): Map<string, DesiredSet> {
    const old = name === undefined ? undefined : this.previous.get(name);
    return new Map((old?.sets ?? []).map((s) => [s.name, s]));
  }

  record(state: DesiredState, name: string, base: string, inputs: unknown[], classes: DesiredChain[]): void {
    const sets = [
      ...CHAIN_SET_SUFFIXES.map((x) => state.sets.get(`${base}${x}`)),
      ...classes.map((c) => state.sets.get(`${c.name}-p`)),
    ].filter((x): x is DesiredSet => x !== undefined);
    this.current.set(name, { base, inputs, chain: state.chains.get(name)!, sets, classes });
  }

  /**
   * The set names of this build's pod chains. A chain is named by its structure, so a policy that
   * changes what a group of pods allows renames their chain; its sets would then be new sets, written
   * whole (thousands of elements for one added port). Instead a new chain takes over the sets of the
   * chain its pods used before, when that chain is gone now: same names, and the diff patches only the
   * elements that differ (the staged rules of program.ts hold for it as for any change of elements: a
   * set only shrinks before the switch and only grows after it). A chain that existed keeps its base; a
   * chain without a predecessor is its own base (`<name>-<k>` while a live chain holds that name).
   * So the names depend on history: a fresh build names every set after its own chain, which
   * compareTable and canonicalLines see through (see verify.ts).
   */
  lineage(keys: readonly string[], chains: readonly ChainNames[], fresh = false): Map<string, Lineage> {
    const out = new Map<string, Lineage>();
    const used = new Set<string>();
    for (const c of chains) {
      if (c.ingress) used.add(c.ingress);
      if (c.egress) used.add(c.egress);
    }
    const claimed = new Set<string>();
    for (const name of fresh ? [] : used) {
      const base = this.previous.get(name)?.base;
      if (base === undefined) continue;
      out.set(name, { base, from: name });
      claimed.add(base);
    }
    this.nextPodChains = { keys, chains };
    // The common change (a pod added, a label changed) renames no chain: every chain in use existed.
    if (out.size === used.size) return out;
    const before = new Map<string, ChainNames>();
    if (!fresh) {
      const last = this.podChains;
      for (let i = 0; i < last.keys.length; i++) before.set(last.keys[i]!, last.chains[i]!);
    }
    for (let i = 0; i < keys.length; i++) {
      const was = before.get(keys[i]!);
      if (was === undefined) continue;
      for (const d of ['ingress', 'egress'] as const) {
        const name = chains[i]![d];
        const from = was[d];
        if (name === undefined || out.has(name) || from === undefined || used.has(from)) continue;
        const base = this.previous.get(from)?.base;
        if (base === undefined || claimed.has(base)) continue;
        out.set(name, { base, from });
        claimed.add(base);
      }
    }
    for (const name of [...used].sort()) {
      if (out.has(name)) continue;
      let base = name;
      for (let k = 2; claimed.has(base); k++) base = `${name}-${k}`;
      out.set(name, { base, from: undefined });
      claimed.add(base);
    }
    return out;
  }

  /** Ends a build: chains it did not use are dropped. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
    this.podChains = this.nextPodChains;
    this.nextPodChains = { keys: [], chains: [] };
    this.unions.rotate();
  }
}

interface CachedChain {
  /** What the chain's sets are named after (see DesiredCache.lineage). */
  readonly base: string;
  readonly inputs: readonly unknown[];
  readonly chain: DesiredChain;
  readonly sets: readonly DesiredSet[];
  /** The chain's address-class chains (their port sets are in `sets`). */
  readonly classes: readonly DesiredChain[];
}

const CHAIN_SET_SUFFIXES = ['-a4', '-a6', '-p', '-c4', '-c6', '-m4', '-m6'];

function buildChainContent(
  state: DesiredState,
  direction: Direction,
  plan: DirectionPlan,
  sets: Map<string, PlanSet>,
  name: string,
  base: string,
  previous: Map<string, DesiredSet>,
  cache: DesiredCache,
): DesiredChain[] {
  const { unions } = cache;
  const verdict = direction === 'ingress' ? 'accept' : 'return';
  const rules: RuleSpec[] = [];
  const comment = `${direction} isolated by ${[...new Set(plan.isolatedBy)].join(', ')}`;
  if (plan.allowAll) {
    rules.push({ kind: 'final', verdict, counter: false, comment: 'a rule allows every peer and port' });
    state.chains.set(name, { name, base: false, rules, comment });
    return [];
  }
  const anyPort: (readonly AddressRange[])[] = [];
  const protoPorts: PortRange[] = [];
  // peer.proto.port: whole address lists with the ports they are allowed, never one tuple per address,
  // and never one entry per list and port (a rule of 700 peers and 700 ports is 700 pairs, not 490,000).
  const pairs: AddressPorts[] = [];
  for (const allow of plan.allows) {
    if (allow.kind === 'address-ports') {
      const s = sets.get(allow.set);
      if (s?.kind !== 'address-ports') throw new InternalError(`plan set ${allow.set} missing`);
      for (const g of groupsOfAddressPorts(cache, s))
        for (const part of g.parts) pairs.push({ list: part, ports: [g.port] });
      continue;
    }
    const s = allow.set === undefined ? undefined : sets.get(allow.set);
    if (allow.set !== undefined && s?.kind !== 'addresses')
      throw new InternalError(`plan set ${allow.set} missing`);
    const ranges = s?.kind === 'addresses' ? s.ranges : undefined;
    if (allow.ports === undefined) {
      // allowAll covers set === undefined with any port; here a set is present.
      if (ranges) anyPort.push(ranges);
      continue;
    }
    if (!ranges) protoPorts.push(...allow.ports);
    else pairs.push({ list: ranges, ports: allow.ports });
  }
  const field = direction === 'ingress' ? 'saddr' : 'daddr';
  // Which lookups exist follows from the plan's shape only, never from set members: a pod joining or
  // leaving a selector (or a set becoming empty) changes elements, not rules.
  const hasAnyPort = plan.allows.some(
    (a) => a.kind === 'peers' && a.set !== undefined && a.ports === undefined,
  );
  const hasProtoPorts = plan.allows.some(
    (a) => a.kind === 'peers' && a.set === undefined && a.ports !== undefined,
  );
  const hasConcat = plan.allows.some(
    (a) => a.kind === 'address-ports' || (a.set !== undefined && a.ports !== undefined),
  );
  if (hasAnyPort) {
    for (const family of families) {
      addRunSet(
        state,
        peerSet(`${base}-a${family}`, family, `${comment}: peers on any port`),
        previous.get(`${base}-a${family}`),
        [{ suffix: '', parts: anyPort.map((p) => familyPart(cache, p, family)) }],
        unions,
      );
      rules.push({ kind: 'lookup', family, field, fields: ['addr'], set: `${base}-a${family}`, verdict });
    }
  }
  if (hasProtoPorts) {
    addSet(
      state,
      portSet(`${base}-p`, `${comment}: ports open to any peer`),
      portElements(mergePorts(protoPorts)),
    );
    rules.push({
      kind: 'lookup',
      family: undefined,
      field,
      fields: ['l4proto', 'dport'],
      set: `${base}-p`,
      verdict,
    });
  }
  let classes: DesiredChain[] = [];
  if (hasConcat) {
    // Audit chains keep fused sets: class chains are shared by enforced chains and end in drop.
    const split = plan.audit ? undefined : addressClasses(pairs, name, cache);
    const fused = split
      ? undefined
      : (() => {
          const runs = portRuns(portGroups(pairs));
          return families.map((family) =>
            buildRunElements(
              previous.get(`${base}-c${family}`)?.elements,
              runs.map((r) => ({ ...r, parts: r.parts.map((p) => familyPart(cache, p, family)) })),
              unions,
            ),
          );
        })();
    if (split !== undefined) {
      classes = addClasses(state, split, field, verdict, comment);
      for (const family of families) {
        addSet(
          state,
          peerSet(`${base}-m${family}`, family, `${comment}: peers by the ports they are allowed`, [], true),
          split.atoms[family],
        );
        rules.push({ kind: 'dispatch', family, field, map: `${base}-m${family}` });
      }
    } else {
      families.forEach((family, i) => {
        const set = peerSet(`${base}-c${family}`, family, `${comment}: peer, protocol and port`, [
          'inet_proto',
          'inet_service',
        ]);
        putRunSet(state, set, fused![i]!);
        rules.push({
          kind: 'lookup',
          family,
          field,
          fields: ['addr', 'l4proto', 'dport'],
          set: `${base}-c${family}`,
          verdict,
        });
      });
    }
  }
  // Point 25: an audit chain enforces nothing; what reaches its end would have been denied.
  rules.push(
    plan.audit
      ? { kind: 'final', verdict, counter: true, comment: WOULD_DENY }
      : { kind: 'final', verdict: 'drop', counter: true, comment: undefined },
  );
  state.chains.set(name, { name, base: false, rules, comment });
  return classes;
}

interface AddressClasses {
  /** Per family, the map elements: atom ranges, each group going to its class chain. */
  atoms: Record<4 | 6, RangeGroup[]>;
  /** Class chain name -> its merged ports. */
  classes: Map<string, PortRange[]>;
}

/** An address list and the ports it is allowed (one allow of a plan, or one named port's addresses). */
interface AddressPorts {
  list: readonly AddressRange[];
  ports: readonly PortRange[];
}

/** The pairs as address lists grouped by protocol and port range: what the fused sets' runs are cut from. */
function portGroups(pairs: AddressPorts[]): PortGroup[] {
  const concat = new Map<string, PortGroup>();
  for (const { list, ports } of pairs)
    for (const port of ports) {
      const key = `${port.protocol} ${port.first} ${port.last}`;
      let g = concat.get(key);
      if (!g) {
        g = { port, parts: [] };
        concat.set(key, g);
      }
      g.parts.push(list);
    }
  return [...concat.values()];
}

/**
 * The address classes of a chain's peer.proto.port pairs, when they weigh less than the fused sets: the
 * address line of each family is cut at every boundary of every address list, each piece gets the union
 * of the ports of the lists that cover it, and pieces (and then neighbouring atoms) with equal ports
 * share a class, named by its direction and a hash of its ports (the same class for every chain). Each distinct list is swept once, however many ports name
 * it. An atom weighs two (a verdict map element is about twice the bytes of a fused one) and a class four
 * more (its chain, set and rules). Undefined: keep the fused sets.
 */
function addressClasses(
  pairs: AddressPorts[],
  chain: string,
  cache: DesiredCache,
): AddressClasses | undefined {
  const { fuseUpTo } = cache;
  // What the fused sets hold at most (every list times its ports, before merging); a fused set within
  // fuseUpTo, or within twice the lists' ranges (then it is linear in what the policies list already),
  // is kept without a sweep: the case of many overlapping lists with few ports each.
  let estimate = 0;
  for (const { list, ports } of pairs) estimate += list.length * ports.length;
  if (estimate <= fuseUpTo) return undefined;
  const lists = new Map<readonly AddressRange[], (readonly PortRange[])[]>();
  for (const { list, ports } of pairs) {
    const all = lists.get(list);
    if (all) all.push(ports);
    else lists.set(list, [ports]);
  }
  const entries = [...lists.entries()];
  let ranges = 0;
  for (const [list] of entries) ranges += list.length;
  if (2 * ranges >= estimate) return undefined;
  // Moderate sets are weighed exactly; beyond, the estimate stands in (merging the lists of one run can
  // only make the fused set smaller than the estimate).
  let fused = estimate;
  if (estimate <= 20_000) {
    const runs = portRuns(portGroups(pairs));
    fused = 0;
    for (const family of families)
      fused += buildRunElements(
        undefined,
        runs.map((r) => ({ ...r, parts: r.parts.map((p) => familyPart(cache, p, family)) })),
        cache.unions,
      ).elements.size;
  }
  const classes = new Map<string, PortRange[]>();
  // A piece's class follows from the port lists of the lists covering it: keyed by those lists' identity
  // (the planner shares one merged array per rule), so 700 peers of one rule name one class, merged once.
  const portIds = new Map<readonly PortRange[], number>();
  const idsOf = entries.map(([, all]) =>
    all.map((ports) => {
      const known = portIds.get(ports);
      if (known !== undefined) return known;
      portIds.set(ports, portIds.size);
      return portIds.size - 1;
    }),
  );
  const bySignature = new Map<string, string>();
  const byPorts = new Map<string, string>();
  const classOf = (active: number[]): string => {
    const ids = [...new Set(active.flatMap((j) => idsOf[j]!))].sort((a, b) => a - b);
    const signature = ids.join(',');
    let name = bySignature.get(signature);
    if (name === undefined) {
      const seen = new Set(ids);
      const ports = mergePorts([...portIds].filter(([, id]) => seen.has(id)).flatMap(([p]) => p));
      const text = portsText(cache, ports);
      name = byPorts.get(text);
      if (name === undefined) {
        name = `${chain.slice(0, 2)}-k${hash(text)}`;
        classes.set(name, ports);
        byPorts.set(text, name);
      }
      bySignature.set(signature, name);
    }
    return name;
  };
  const atoms: Record<4 | 6, RangeGroup[]> = { 4: [], 6: [] };
  let size = 0;
  for (const family of families) {
    const events: [bigint, number, number][] = [];
    entries.forEach(([list], j) => {
      for (const r of familyPart(cache, list, family)) events.push([r.first, j, 1], [r.last + 1n, j, -1]);
    });
    events.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const count = new Map<number, number>();
    let open: { first: bigint; name: string } | undefined;
    const close = (end: bigint) => {
      if (!open) return;
      atoms[family].push({
        bounds: familyBounds(family, [{ first: open.first, last: end - 1n }]),
        tail: [],
        verdict: { kind: 'goto', chain: open.name },
      });
      open = undefined;
    };
    for (let i = 0; i < events.length; ) {
      const at = events[i]![0];
      for (; i < events.length && events[i]![0] === at; i++) {
        const [, j, d] = events[i]!;
        const n = (count.get(j) ?? 0) + d;
        if (n === 0) count.delete(j);
        else count.set(j, n);
      }
      const name = count.size === 0 ? undefined : classOf([...count.keys()].sort((a, b) => a - b));
      if (open && open.name === name) continue;
      close(at);
      if (name !== undefined) open = { first: at, name };
    }
    size += 2 * atoms[family].length;
    if (size >= fused) return undefined;
  }
  for (const ports of classes.values()) size += ports.length + 4;
  return size < fused ? { atoms, classes } : undefined;
}

/** The class chains of an address split, each with its port set; returns the chains. */
function addClasses(
  state: DesiredState,
  split: AddressClasses,
  field: 'saddr' | 'daddr',
  verdict: 'accept' | 'return',
  comment: string,
): DesiredChain[] {
  const out: DesiredChain[] = [];
  for (const [name, ports] of split.classes) {
    addSet(state, portSet(`${name}-p`, `${comment}: the ports of one address class`), portElements(ports));
    const chain: DesiredChain = {
      name,
      base: false,
      rules: [
        { kind: 'lookup', family: undefined, field, fields: ['l4proto', 'dport'], set: `${name}-p`, verdict },
        { kind: 'final', verdict: 'drop', counter: true, comment: undefined },
      ],
      comment: `${comment}: one address class`,
    };
    state.chains.set(name, chain);
    out.push(chain);
  }
  return out;
}

const ND_RULE: RuleSpec = { kind: 'neighbour-discovery' };

/**
 * The whole desired state of a node's table. `fresh`: every set is named after its own chain, as without
 * a history (for a program that writes the whole table anyway: it then equals a fresh full program).
 */
export function desiredState(
  plan: NodePlan,
  cache: DesiredCache = new DesiredCache(),
  options: { fresh?: boolean; reports?: ReportOptions; requireSyn?: boolean } = {},
): DesiredState {
  const { reports } = options;
  const state: DesiredState = { chains: new Map(), sets: new Map(), podChains: new Map() };
  const tiers = new TierChains(state);
  const planSets = new Map(plan.sets.map((s) => [s.id, s]));
  const local: Record<4 | 6, { first: bigint; last: bigint }[]> = { 4: [], 6: [] };
  const dispatch: Record<Direction, Record<4 | 6, RangeGroup[]>> = {
    ingress: { 4: [], 6: [] },
    egress: { 4: [], 6: [] },
  };
  // Names first: which chains survive decides which new chain continues which old one's sets.
  // Pods of an opted-out namespace get chains of their own (the same structure, no report rules): chains
  // are shared by structure across namespaces.
  const quiet = new Set<string>();
  const quietNamespaces = reports?.quietNamespaces;
  const quietPods =
    quietNamespaces === undefined || quietNamespaces.size === 0
      ? undefined
      : plan.pods.map((pod) => quietNamespaces.has(pod.key.slice(0, pod.key.indexOf('/'))));
  const names = plan.pods.map((pod, i): ChainNames => {
    const suffix = quietPods?.[i] === true ? QUIET_SUFFIX : '';
    const name = (d: Direction, p: DirectionPlan | undefined): string | undefined => {
      if (p === undefined) return undefined;
      if (suffix === '') return chainName(cache, d, p);
      const n = `${chainName(cache, d, p)}${suffix}`;
      quiet.add(n);
      return n;
    };
    return {
      ingress: name('ingress', pod.ingress ?? pod.auditIngress),
      egress: name('egress', pod.egress ?? pod.auditEgress),
    };
  });
  const lines = cache.lineage(
    plan.pods.map((p) => p.key),
    names,
    options.fresh === true,
  );
  for (let i = 0; i < plan.pods.length; i++) {
    const pod = plan.pods[i]!;
    const chains = names[i]!;
    for (const d of DIRECTIONS) {
      const name = chains[d];
      const p = d === 'ingress' ? (pod.ingress ?? pod.auditIngress) : (pod.egress ?? pod.auditEgress);
      if (name !== undefined) buildDirectionChain(state, d, p!, planSets, cache, name, lines.get(name)!);
    }
    const podJumps = tiers.podChains(pod, chains, planSets, quiet, quietPods?.[i] === true);
    state.podChains.set(pod.key, podJumps);
    const ingressJump = podJumps.ingress && jumpTo(podJumps.ingress);
    const egressJump = podJumps.egress && jumpTo(podJumps.egress);
    for (const a of pod.addresses) {
      local[a.family].push({ first: a.value, last: a.value });
      const bounds = a.family === 4 ? [Number(a.value), Number(a.value)] : [a.value, a.value];
      if (ingressJump) dispatch.ingress[a.family].push({ bounds, tail: NO_TAIL, verdict: ingressJump });
      if (egressJump) dispatch.egress[a.family].push({ bounds, tail: NO_TAIL, verdict: egressJump });
    }
  }
  const base: RuleSpec[] = [
    { kind: 'ct', states: 'established,related', verdict: 'accept', counter: false },
    { kind: 'ct', states: 'invalid', verdict: 'drop', counter: true },
    ND_RULE,
  ];
  // requireSyn (--established=cut): a cut deletes the connection's conntrack entry (src/agent/cut.ts), and
  // the kernel's loose pickup (nf_conntrack_tcp_loose) makes any later mid-stream segment `ct state new`:
  // if the far end sends first in a direction the policies allow for new connections, the entry comes
  // back reversed and its replies (the side the cut was for) pass as point 11 replies. So for pod traffic
  // a new TCP connection must begin with a plain SYN; anything else without an entry is dropped here,
  // before any policy, with its own counter (it is no policy denial: no report). Why this keeps the
  // contract: point 11, real replies have an entry and were accepted above; point 10, both directions'
  // chains still judge every SYN that gets through; point 12, own-node traffic never crosses forward; point
  // 19, a pod to itself (also via a Service) is loopback or hairpin on the pod's own interface and never
  // reaches forward either, and a hairpinned SYN is still a SYN; point 16, only connections whose entry is
  // gone (cut, or lost in a conntrack flush or agent restart) are affected: a flush in keep mode would be
  // picked up again, which is why the rule exists only in cut mode, where dropping such flows is the point.
  for (const family of families) {
    const key = addressKey(family);
    addSet(
      state,
      {
        name: `local${family}`,
        key: [key],
        map: false,
        interval: false,
        comment: 'live pods of this node',
      },
      local[family].length === 0 ? [] : [{ bounds: familyBounds(family, local[family]), tail: [] }],
    );
    for (const cidr of plan.podCIDRs.filter((c) => c.family === family)) {
      const text = cidrText(cidr);
      if (options.requireSyn === true) {
        for (const field of ['saddr', 'daddr'] as const)
          base.splice(base.indexOf(ND_RULE), 0, { kind: 'syn-only', family, field, cidr: text });
      }
      base.push({ kind: 'unknown-local', family, field: 'saddr', cidr: text, knownSet: `local${family}` });
      base.push({ kind: 'unknown-local', family, field: 'daddr', cidr: text, knownSet: `local${family}` });
    }
    addSet(
      state,
      {
        name: `egress${family}`,
        key: [key],
        map: true,
        interval: false,
        comment: 'egress-isolated local pods',
        isolates: true,
      },
      dispatch.egress[family],
    );
    addSet(
      state,
      {
        name: `ingress${family}`,
        key: [key],
        map: true,
        interval: false,
        comment: 'ingress-isolated local pods',
        isolates: true,
      },
      dispatch.ingress[family],
    );
    base.push({ kind: 'dispatch', family, field: 'saddr', map: `egress${family}` });
  }
  for (const family of families)
    base.push({ kind: 'dispatch', family, field: 'daddr', map: `ingress${family}` });
  state.chains.set(BASE_CHAIN, {
    name: BASE_CHAIN,
    base: true,
    rules: base,
    comment: 'tollgate: NetworkPolicy for pod traffic',
  });
  if (reports !== undefined) addReports(state, cache, reports, quiet);
  cache.rotate();
  return state;
}

/**
 * The report rules before every isolation drop (see ReportOptions), and REPORT_CHAIN. Applied to the built
 * chains (pod chains and their address classes alike: a class chain's drop is its pods' isolation drop),
 * never to the chains of `quiet`; memoized per chain object, so that an unchanged chain stays the same
 * object and the diff skips it.
 */
function addReports(
  state: DesiredState,
  cache: DesiredCache,
  reports: ReportOptions,
  quiet: ReadonlySet<string>,
): void {
  const key = `${reports.group} ${reports.rate}/${reports.per} ${reports.burst}`;
  const limitName = reportLimitName(reports);
  for (const chain of [...state.chains.values()]) {
    if (chain.base || quiet.has(chain.name)) continue;
    const last = chain.rules[chain.rules.length - 1];
    if (last?.kind !== 'final') continue;
    const audit = last.comment === WOULD_DENY;
    if (last.verdict !== 'drop' && !audit) continue;
    let hit = cache.reportChains.get(chain);
    if (hit === undefined || hit.key !== key) {
      const direction = chain.name.startsWith('in-') ? 'ingress' : 'egress';
      const prefix = formatPrefix({ direction, kind: audit ? 'would-deny' : 'deny', id: chain.name });
      const { group } = reports;
      const rules: RuleSpec[] = [
        ...chain.rules.slice(0, -1),
        // A would-deny packet is accepted: the dropping gate cannot serve it (see ReportOptions).
        ...(audit
          ? [
              {
                kind: 'report-audit-gate',
                limit: limitName,
                chain: AUDIT_REPORT_CHAINS[last.verdict === 'accept' ? 'accept' : 'return'],
              } as const,
              { kind: 'report', group, prefix } as const,
            ]
          : [
              { kind: 'report-gate', chain: REPORT_CHAIN } as const,
              { kind: 'report', group, prefix } as const,
            ]),
        last,
      ];
      hit = { key, chain: { ...chain, rules } };
      cache.reportChains.set(chain, hit);
    }
    state.chains.set(chain.name, hit.chain);
  }
  if (cache.reportLimit?.key !== limitName)
    cache.reportLimit = {
      key: limitName,
      chain: {
        name: REPORT_CHAIN,
        base: false,
        rules: [{ kind: 'report-limit', limit: limitName }],
        comment: "the node's drop report limit: over it, the denied packet is dropped unreported",
      },
    };
  state.chains.set(REPORT_CHAIN, cache.reportLimit.chain);
  for (const verdict of ['accept', 'return'] as const) {
    const name = AUDIT_REPORT_CHAINS[verdict];
    state.chains.set(name, AUDIT_OVER_LIMIT[verdict]);
  }
  const { rate, per, burst } = reports;
  state.objects ??= new Map();
  state.objects.set(limitName, { name: limitName, rate, per, burst });
}

/** The chains an audit chain's over-the-limit would-denies go to (see ReportOptions): fixed objects, so
 *  the diff never rewrites them. */
const AUDIT_OVER_LIMIT = {
  accept: {
    name: AUDIT_REPORT_CHAINS.accept,
    base: false,
    rules: [{ kind: 'final', verdict: 'accept', counter: true, comment: undefined }],
    comment: 'ingress would-denies over the report limit: counted, accepted unreported',
  },
  return: {
    name: AUDIT_REPORT_CHAINS.return,
    base: false,
    rules: [{ kind: 'final', verdict: 'return', counter: true, comment: undefined }],
    comment: 'egress would-denies over the report limit: counted, returned unreported',
  },
} as const satisfies Record<string, DesiredChain>;
const jumpTo = (chain: string): MapVerdict => ({ kind: 'jump', chain });
const NO_TAIL: readonly [] = [];
const DIRECTIONS = ['ingress', 'egress'] as const;

/** A pod CIDR range back to prefix notation (pod CIDRs are always prefixes). */
function cidrText(r: AddressRange): string {
  const bits = r.family === 4 ? 32 : 128;
  const size = r.last - r.first + 1n;
  const prefix = bits - (size.toString(2).length - 1);
  return `${formatAddress({ family: r.family, value: r.first })}/${prefix}`;
}
