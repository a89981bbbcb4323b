// Plan -> desired nftables state of one node: the chains, rules, sets and verdict maps of `inet tollgate`
// as plain data (element and rule texts), so that diffs are set operations. Pure: no kernel, no I/O.
//
// Layout (one table, static base chain, data in sets and maps):
//   forward (hook forward, priority filter, policy accept)
//     ct state established,related accept        -- replies always pass (point 11)
//     ct state invalid drop
//     ip saddr <pod CIDR> ip saddr != @local4 drop  -- unknown local addresses are isolated (point 17)
//     ip daddr <pod CIDR> ip daddr != @local4 drop
//     ip saddr vmap @egress4                      -- isolated local pods: jump eg-<hash>; others: miss
//     ip daddr vmap @ingress4                     -- jump in-<hash>
//     (the same for ip6)
//   eg-<hash> / in-<hash>: one chain per distinct direction plan, shared by every pod with that plan.
//     Whatever a pod allows is merged into at most three lookups per family, so the per-packet cost does
//     not grow with the number of policies or rules (any-port peers, proto.port for any peer, and
//     peer.proto.port), then `counter drop`. Egress chains `return` on a match so that the destination's
//     ingress is still checked (point 10); ingress chains `accept`.
// Traffic between a pod and its own node never crosses the forward hook (it is input/output), which is
// exactly point 12; other nodes and outside hosts are forwarded and judged like any address.
import { createHash } from 'node:crypto';
import { type AddressRange, addressRange, formatAddress, mergeRanges } from '../policy/address.ts';
import {
  type DirectionPlan,
  mergePorts,
  type NodePlan,
  type PlanSet,
  type PortRange,
} from '../policy/plan.ts';
import type { Direction } from '../policy/types.ts';
import { buildRunElements, type ElementDelta, type ElementTexts, type RunSpec } from './runs.ts';

export const TABLE = 'tollgate';
export const BASE_CHAIN = 'forward';

export type KeyType = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service';

export interface DesiredSet {
  name: string;
  key: KeyType[];
  /** verdict maps carry `data: 'verdict'` */
  map: boolean;
  interval: boolean;
  /**
   * The canonical element texts (for maps `key : verdict`): a plain set, or for sets built from runs a
   * RunElements, which the diff takes in range form without making the texts.
   */
  elements: ElementTexts;
  comment: string;
  /** Set when `elements` was derived from an earlier collection: the diff uses it instead of comparing. */
  delta?: ElementDelta;
}

/** A rule as the structured pieces the nft layer turns into expressions (see ruleset.ts). */
export type RuleSpec =
  | { kind: 'ct'; states: string; verdict: 'accept' | 'drop'; counter: boolean }
  | { kind: 'unknown-local'; family: 4 | 6; field: 'saddr' | 'daddr'; cidr: string; knownSet: string }
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
  | { kind: 'final'; verdict: 'accept' | 'return' | 'drop'; counter: boolean; comment: string | undefined };

export type LookupField = 'addr' | 'l4proto' | 'dport';

export interface DesiredChain {
  name: string;
  base: boolean;
  rules: RuleSpec[];
  comment: string;
}

export interface DesiredState {
  chains: Map<string, DesiredChain>;
  sets: Map<string, DesiredSet>;
  /** Which local pods use which chain, for explanations and logs: pod key -> chain names. */
  podChains: Map<string, { ingress: string | undefined; egress: string | undefined }>;
}

const families = [4, 6] as const;
const PROTO_NAMES: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

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
  return [...buildRunElements(undefined, portRuns([...groups.values()])).elements];
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
const splits = new WeakMap<readonly AddressRange[], [readonly AddressRange[], readonly AddressRange[]]>();
/** One family's part of an address list, memoized so that an unchanged list gives the same object. */
function familyPart(part: readonly AddressRange[], family: 4 | 6): readonly AddressRange[] {
  let split = splits.get(part);
  if (split === undefined) {
    const v4 = part.filter((r) => r.family === 4);
    split =
      v4.length === part.length
        ? [part, EMPTY]
        : v4.length === 0
          ? [EMPTY, part]
          : [v4, part.filter((r) => r.family === 6)];
    splits.set(part, split);
  }
  return split[family === 4 ? 0 : 1];
}

const addressPortGroups = new WeakMap<PlanSet, PortGroup[]>();
/** An address-ports plan set as one address list per protocol and port (memoized per plan set). */
function groupsOfAddressPorts(set: PlanSet & { kind: 'address-ports' }): PortGroup[] {
  let groups = addressPortGroups.get(set);
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
    addressPortGroups.set(set, groups);
  }
  return groups;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

const chainNames = new WeakMap<DirectionPlan, string>();
/** The chain of a direction plan, memoized by plan object (the planner reuses unchanged pod plans). */
function chainName(direction: Direction, plan: DirectionPlan): string {
  let name = chainNames.get(plan);
  if (name === undefined) {
    name = `${direction === 'ingress' ? 'in' : 'eg'}-${hash(chainKey(direction, plan))}`;
    chainNames.set(plan, name);
  }
  return name;
}

/** The structure of a direction plan, without set members: equal structures share one chain. */
function chainKey(direction: Direction, plan: DirectionPlan): string {
  const allows = plan.allows.map((a) =>
    a.kind === 'peers'
      ? `p ${a.set ?? '*'} ${a.ports ? a.ports.map((p) => `${p.protocol}:${portText(p)}`).join(',') : '*'}`
      : `n ${a.set}`,
  );
  return `${direction} ${plan.allowAll ? 'all' : allows.sort().join(';')}`;
}

function addSet(state: DesiredState, set: Omit<DesiredSet, 'elements'>, elements: Iterable<string>): void {
  state.sets.set(set.name, { ...set, elements: new Set(elements) });
}

/** A set made of runs, derived from the same set of the chain's previous build when there was one. */
function addRunSet(
  state: DesiredState,
  set: Omit<DesiredSet, 'elements' | 'delta'>,
  previous: DesiredSet | undefined,
  specs: RunSpec[],
): void {
  const { elements, delta } = buildRunElements(previous?.elements, specs);
  state.sets.set(set.name, delta ? { ...set, elements, delta } : { ...set, elements });
}

/**
 * Builds the chain of one distinct direction plan and its merged sets. Returns the chain name.
 * Sets: `<chain>-a4/-a6` peers allowed on any port; `<chain>-p` protocol.port allowed from/to any
 * address; `<chain>-c4/-c6` peer.protocol.port.
 */
function buildDirectionChain(
  state: DesiredState,
  direction: Direction,
  plan: DirectionPlan,
  sets: Map<string, PlanSet>,
  cache: DesiredCache,
): string {
  const name = chainName(direction, plan);
  if (state.chains.has(name)) return name;
  const inputs = plan.allows.map((a) => (a.set === undefined ? undefined : sets.get(a.set)));
  if (cache.restore(state, name, inputs)) return name;
  buildChainContent(state, direction, plan, sets, name, cache.previousSets(name));
  cache.record(state, name, inputs);
  return name;
}

/**
 * Keeps each pod chain's output (the chain and its sets) from one desired state to the next: when the
 * plan sets it was built from are the very same objects (see PlanCache), the output objects are reused,
 * and the diff skips them by identity. Owned by a long-lived caller (the reconciler).
 */
export class DesiredCache {
  private previous = new Map<string, { inputs: unknown[]; chain: DesiredChain; sets: DesiredSet[] }>();
  private current = new Map<string, { inputs: unknown[]; chain: DesiredChain; sets: DesiredSet[] }>();

  restore(state: DesiredState, name: string, inputs: unknown[]): boolean {
    const old = this.previous.get(name);
    if (!old || old.inputs.length !== inputs.length || !old.inputs.every((x, i) => x === inputs[i]))
      return false;
    state.chains.set(name, old.chain);
    for (const s of old.sets) state.sets.set(s.name, s);
    this.current.set(name, old);
    return true;
  }

  /** The sets of a chain's previous build (its content before the members changed), by name. */
  previousSets(name: string): Map<string, DesiredSet> {
    return new Map((this.previous.get(name)?.sets ?? []).map((s) => [s.name, s]));
  }

  record(state: DesiredState, name: string, inputs: unknown[]): void {
    const sets = CHAIN_SET_SUFFIXES.map((x) => state.sets.get(`${name}${x}`)).filter(
      (x): x is DesiredSet => x !== undefined,
    );
    this.current.set(name, { inputs, chain: state.chains.get(name)!, sets });
  }

  /** Ends a build: chains it did not use are dropped. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

const CHAIN_SET_SUFFIXES = ['-a4', '-a6', '-p', '-c4', '-c6'];

function buildChainContent(
  state: DesiredState,
  direction: Direction,
  plan: DirectionPlan,
  sets: Map<string, PlanSet>,
  name: string,
  previous: Map<string, DesiredSet>,
): void {
  const verdict = direction === 'ingress' ? 'accept' : 'return';
  const rules: RuleSpec[] = [];
  const comment = `${direction} isolated by ${[...new Set(plan.isolatedBy)].join(', ')}`;
  if (plan.allowAll) {
    rules.push({ kind: 'final', verdict, counter: false, comment: 'a rule allows every peer and port' });
    state.chains.set(name, { name, base: false, rules, comment });
    return;
  }
  const anyPort: (readonly AddressRange[])[] = [];
  const protoPorts: PortRange[] = [];
  // peer.proto.port: whole address lists grouped by protocol and port range, never one tuple per address.
  const concat = new Map<string, PortGroup>();
  const group = (port: PortRange): PortGroup => {
    const key = `${port.protocol} ${port.first} ${port.last}`;
    let g = concat.get(key);
    if (!g) {
      g = { port, parts: [] };
      concat.set(key, g);
    }
    return g;
  };
  for (const allow of plan.allows) {
    if (allow.kind === 'address-ports') {
      const s = sets.get(allow.set);
      if (s?.kind !== 'address-ports') throw new Error(`plan set ${allow.set} missing`);
      for (const g of groupsOfAddressPorts(s)) group(g.port).parts.push(...g.parts);
      continue;
    }
    const s = allow.set === undefined ? undefined : sets.get(allow.set);
    if (allow.set !== undefined && s?.kind !== 'addresses') throw new Error(`plan set ${allow.set} missing`);
    const ranges = s?.kind === 'addresses' ? s.ranges : undefined;
    if (allow.ports === undefined) {
      // allowAll covers set === undefined with any port; here a set is present.
      if (ranges) anyPort.push(ranges);
      continue;
    }
    for (const p of allow.ports) {
      if (!ranges) protoPorts.push(p);
      else group(p).parts.push(ranges);
    }
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
        {
          name: `${name}-a${family}`,
          key: [family === 4 ? 'ipv4_addr' : 'ipv6_addr'],
          map: false,
          interval: true,
          comment: `${comment}: peers on any port`,
        },
        previous.get(`${name}-a${family}`),
        [{ suffix: '', parts: anyPort.map((p) => familyPart(p, family)) }],
      );
      rules.push({ kind: 'lookup', family, field, fields: ['addr'], set: `${name}-a${family}`, verdict });
    }
  }
  if (hasProtoPorts) {
    const elements = mergePorts(protoPorts).map((p) => `${PROTO_NAMES[p.protocol]} . ${portText(p)}`);
    addSet(
      state,
      {
        name: `${name}-p`,
        key: ['inet_proto', 'inet_service'],
        map: false,
        interval: true,
        comment: `${comment}: ports open to any peer`,
      },
      elements,
    );
    rules.push({
      kind: 'lookup',
      family: undefined,
      field,
      fields: ['l4proto', 'dport'],
      set: `${name}-p`,
      verdict,
    });
  }
  if (hasConcat) {
    const runs = portRuns([...concat.values()]);
    for (const family of families) {
      addRunSet(
        state,
        {
          name: `${name}-c${family}`,
          key: [family === 4 ? 'ipv4_addr' : 'ipv6_addr', 'inet_proto', 'inet_service'],
          map: false,
          interval: true,
          comment: `${comment}: peer, protocol and port`,
        },
        previous.get(`${name}-c${family}`),
        runs.map((r) => ({ ...r, parts: r.parts.map((p) => familyPart(p, family)) })),
      );
      rules.push({
        kind: 'lookup',
        family,
        field,
        fields: ['addr', 'l4proto', 'dport'],
        set: `${name}-c${family}`,
        verdict,
      });
    }
  }
  rules.push({ kind: 'final', verdict: 'drop', counter: true, comment: undefined });
  state.chains.set(name, { name, base: false, rules, comment });
}

/** The whole desired state of a node's table. */
export function desiredState(plan: NodePlan, cache: DesiredCache = new DesiredCache()): DesiredState {
  const state: DesiredState = { chains: new Map(), sets: new Map(), podChains: new Map() };
  const planSets = new Map(plan.sets.map((s) => [s.id, s]));
  const local: Record<4 | 6, string[]> = { 4: [], 6: [] };
  const dispatch: Record<Direction, Record<4 | 6, string[]>> = {
    ingress: { 4: [], 6: [] },
    egress: { 4: [], 6: [] },
  };
  for (const pod of plan.pods) {
    const chains = {
      ingress: pod.ingress && buildDirectionChain(state, 'ingress', pod.ingress, planSets, cache),
      egress: pod.egress && buildDirectionChain(state, 'egress', pod.egress, planSets, cache),
    };
    state.podChains.set(pod.key, chains);
    for (const a of pod.addresses) {
      const text = formatAddress(a);
      local[a.family].push(text);
      if (chains.ingress) dispatch.ingress[a.family].push(`${text} : jump ${chains.ingress}`);
      if (chains.egress) dispatch.egress[a.family].push(`${text} : jump ${chains.egress}`);
    }
  }
  const base: RuleSpec[] = [
    { kind: 'ct', states: 'established,related', verdict: 'accept', counter: false },
    { kind: 'ct', states: 'invalid', verdict: 'drop', counter: true },
  ];
  for (const family of families) {
    const key: KeyType = family === 4 ? 'ipv4_addr' : 'ipv6_addr';
    addSet(
      state,
      { name: `local${family}`, key: [key], map: false, interval: false, comment: 'live pods of this node' },
      local[family],
    );
    for (const cidr of plan.podCIDRs.filter((c) => c.family === family)) {
      const text = cidrText(cidr);
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
  cache.rotate();
  return state;
}

/** A pod CIDR range back to prefix notation (pod CIDRs are always prefixes). */
function cidrText(r: AddressRange): string {
  const bits = r.family === 4 ? 32 : 128;
  const size = r.last - r.first + 1n;
  const prefix = bits - (size.toString(2).length - 1);
  return `${formatAddress({ family: r.family, value: r.first })}/${prefix}`;
}
