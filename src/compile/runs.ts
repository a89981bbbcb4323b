// The elements of a set as the compiler hands them to nft (range groups, nft's one element value), and
// the elements of a chain's address sets kept as "runs" so that a change of members costs what changed.
// A run is one slice of a set: every element of a run has the same key tail (for peer.proto.port sets
// the protocol and port range; for address-only sets nothing), named by its suffix (` . tcp . 80-90`: the
// run's id, and its text for people and tests), and its addresses are the union of some address lists
// (plan sets' ranges). Runs of one set never share an element, so a set is the disjoint union of its
// runs. When a set is rebuilt, a run whose address lists are the very same objects as before is carried
// over untouched; a changed run is compared range by range with its previous content; the result
// records its delta against the previous element collection, which the diff then uses instead of
// comparing the whole sets. Pure: no I/O; the kernel path makes no element text.
import { type FieldSpan, type RangeGroup, rangeIds } from '../nft/index.ts';
import {
  type AddressRange,
  type Bounds,
  boundsOf,
  boundsRanges,
  formatRange,
  mergeRanges,
  patchBounds,
  type Scratch,
  unionAll,
  V4_BOUNDS,
  V6_BOUNDS,
} from '../policy/address.ts';

export interface RunSpec {
  /** Appended to each address text; unique per run within a set. */
  suffix: string;
  /** The key fields after the address the suffix stands for (protocol, port range), as numbers. */
  tail?: readonly FieldSpan[];
  /** Address lists (each sorted) whose union is the run's addresses. */
  parts: readonly (readonly AddressRange[])[];
}

/**
 * A set's elements as the compiler hands them to nft: range groups (nft's RangeGroup, the one element
 * value of every set and map; text only when rendered). Never changed once built: the diff skips a
 * collection it has programmed by identity.
 */
export interface SetElements {
  readonly size: number;
  /** Every element, in the order it is programmed. */
  groups(): readonly RangeGroup[];
  /** Every element with its identity (nft rangeIds), made once per collection: what a diff compares. */
  index(): ElementIndex;
}

/** Every element's identity in the order of groups() (nft rangeIds), and the set of them. */
export interface ElementIndex {
  readonly ids: readonly string[];
  readonly has: ReadonlySet<string>;
}

/** The index of a collection, made when a diff first needs it and kept with the collection. */
abstract class Indexed implements SetElements {
  abstract readonly size: number;
  #index: ElementIndex | undefined;
  abstract groups(): readonly RangeGroup[];
  index(): ElementIndex {
    if (this.#index !== undefined) return this.#index;
    const ids = rangeIds(this.groups());
    this.#index = { ids, has: new Set(ids) };
    return this.#index;
  }
}

/** Elements given as range groups (sets of pod addresses, port sets, verdict maps). */
export class GroupElements extends Indexed {
  readonly size: number;
  readonly #groups: readonly RangeGroup[];
  constructor(groups: readonly RangeGroup[]) {
    super();
    this.#groups = groups;
    let size = 0;
    for (const g of groups) size += g.bounds.length >>> 1;
    this.size = size;
  }
  groups(): readonly RangeGroup[] {
    return this.#groups;
  }
}

/**
 * Elements in range form, in segments of one suffix and one family each: the addresses as bounds
 * (numbers for IPv4, bigints for IPv6; see Bound), the rest of the key as `tail`. This is what
 * nft's PackedElements.ofRanges packs; an element's text is its range and the suffix.
 */
export type Segment = RangeGroup & { suffix: string } & (
    | { family: 4; bounds: Bounds<number> }
    | { family: 6; bounds: Bounds<bigint> }
  );
export type Pieces = readonly Segment[];

/** Every element of `pieces` as a range object (for texts and tests; the transaction packs bounds). */
export function piecesRanges(pieces: Pieces): { range: AddressRange; suffix: string }[] {
  const out: { range: AddressRange; suffix: string }[] = [];
  for (const s of pieces) {
    const ranges = s.family === 4 ? boundsRanges(V4_BOUNDS, s.bounds) : boundsRanges(V6_BOUNDS, s.bounds);
    for (const range of ranges) out.push({ range, suffix: s.suffix });
  }
  return out;
}

export const piecesTexts = (pieces: Pieces): string[] =>
  piecesRanges(pieces).map((p) => formatRange(p.range) + p.suffix);

/** What changed from `base` (the previous collection) to the collection that carries this delta. */
export interface ElementDelta {
  base: SetElements;
  added: Pieces;
  removed: Pieces;
}

/** A run's union, one sorted and disjoint bounds list per family (IPv4 first, as the elements sort). */
interface Union {
  readonly v4: Bounds<number>;
  readonly v6: Bounds<bigint>;
}

/** A run's elements: its union as patched against the previous elements (see patchBounds). */
interface Run extends Union {
  readonly tail: readonly FieldSpan[];
}

/** The address lists each run (by suffix) was built from: what the next build compares by identity. */
type Lists = ReadonlyMap<string, readonly (readonly AddressRange[])[]>;

const NO_V4: Bounds<number> = new Float64Array(0);
const NO_V6: Bounds<bigint> = Object.freeze([]);
const NO_TAIL: readonly FieldSpan[] = [];
const EMPTY_RUN: Run = { tail: NO_TAIL, v4: NO_V4, v6: NO_V6 };

const runSize = (r: Union): number => (r.v4.length + r.v6.length) / 2;

/**
 * The elements of a set built from runs, kept as the runs themselves: the diff takes them in range form
 * (see Pieces) and nft packs them straight into key bytes, so a fresh set of thousands of elements
 * makes no object per element.
 */
export class RunElements extends Indexed {
  /** The runs by suffix. */
  readonly runs: ReadonlyMap<string, Run>;
  readonly size: number;
  /** Not part of the elements: only what the next build compares (see relist). */
  #lists: Lists;
  constructor(runs: ReadonlyMap<string, Run>, lists: Lists) {
    super();
    this.runs = runs;
    this.#lists = lists;
    let size = 0;
    for (const run of runs.values()) size += runSize(run);
    this.size = size;
  }
  /** The address lists the run of `suffix` was last built from. */
  listsOf(suffix: string): readonly (readonly AddressRange[])[] | undefined {
    return this.#lists.get(suffix);
  }
  /**
   * Records that new lists give the very same elements: the elements stay as they are (so the
   * collection keeps its identity for the diff); only the next build's comparison changes.
   */
  relist(lists: Lists): void {
    this.#lists = lists;
  }
  /** Every element in range form, run by run. */
  pieces(): Pieces {
    const out: Segment[] = [];
    for (const [suffix, run] of this.runs) pushSegments(out, suffix, run.tail, run);
    return out;
  }
  groups(): Pieces {
    return this.pieces();
  }
}

function pushSegments(out: Segment[], suffix: string, tail: readonly FieldSpan[], u: Union): void {
  if (u.v4.length > 0) out.push({ suffix, tail, family: 4, bounds: u.v4 });
  if (u.v6.length > 0) out.push({ suffix, tail, family: 6, bounds: u.v6 });
}

/** The canonical union of a run's address lists, as range objects. */
export function rangesOf(spec: RunSpec): readonly AddressRange[] {
  const u = new UnionMemo().of(spec);
  return [...boundsRanges(V4_BOUNDS, u.v4), ...boundsRanges(V6_BOUNDS, u.v6)];
}

/** A list's bounds per family and its number for union keys. */
interface Listed extends Union {
  id: number;
}

/**
 * The unions of runs' address lists, owned by the desired-state cache and kept for one build and the
 * next: the chains of a node's pods share the cluster-wide peer lists, and when one of those lists
 * changes, every chain that merges it would otherwise merge the same lists again (and allocate as
 * much). Each list's bounds are taken once while the list lives (lists are never mutated). The unions
 * are shared between runs and never written to.
 */
export class UnionMemo {
  private lists = new WeakMap<readonly AddressRange[], Listed>();
  private nextId = 0;
  private previous = new Map<string, Union>();
  private current = new Map<string, Union>();
  /** patchBounds' output buffers, one per family. */
  readonly scratch4: Scratch<number> = { buf: undefined };
  readonly scratch6: Scratch<bigint> = { buf: undefined };

  private listed(list: readonly AddressRange[]): Listed {
    let l = this.lists.get(list);
    if (l === undefined) {
      l = { id: this.nextId++, ...splitFamilies(list) };
      this.lists.set(list, l);
    }
    return l;
  }

  /** The union of the spec's lists. */
  of(spec: RunSpec): Union {
    const lists: Listed[] = [];
    for (const p of spec.parts) if (p.length > 0) lists.push(this.listed(p));
    if (lists.length === 1) return unionOf(lists);
    const key = lists
      .map((l) => l.id)
      .sort((a, b) => a - b)
      .join(',');
    let u = this.current.get(key) ?? this.previous.get(key);
    u ??= unionOf(lists);
    this.current.set(key, u);
    return u;
  }

  /** Ends a build: unions it did not use are dropped after the next one. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

/** Both families' unions; a family no list has costs nothing (most clusters are single-stack). */
const unionOf = (lists: readonly Union[]): Union => ({
  v4: lists.some((l) => l.v4.length > 0)
    ? unionAll(
        V4_BOUNDS,
        lists.map((l) => l.v4),
      )
    : NO_V4,
  v6: lists.some((l) => l.v6.length > 0)
    ? unionAll(
        V6_BOUNDS,
        lists.map((l) => l.v6),
      )
    : NO_V6,
});

/** A list's bounds per family; a list that is not canonical (sorted, disjoint) is merged first. */
function splitFamilies(list: readonly AddressRange[]): Union {
  if (list[list.length - 1]!.family === 4) {
    const v4 = boundsOf(V4_BOUNDS, list);
    if (v4 !== undefined) return { v4, v6: NO_V6 };
  } else if (list[0]!.family === 6) {
    const v6 = boundsOf(V6_BOUNDS, list);
    if (v6 !== undefined) return { v4: NO_V4, v6 };
  }
  const merged = mergeRanges(list);
  const at = merged.findIndex((r) => r.family === 6);
  const cut = at < 0 ? merged.length : at;
  return {
    v4: boundsOf(V4_BOUNDS, merged.slice(0, cut)) ?? NO_V4,
    v6: boundsOf(V6_BOUNDS, merged.slice(cut)) ?? NO_V6,
  };
}

function sameParts(a: readonly (readonly AddressRange[])[], b: readonly (readonly AddressRange[])[]) {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/**
 * The elements of a set made of `specs`. With `previous` (the collection this set had before, built by
 * this function), unchanged runs are carried over and the result is `previous` itself when nothing
 * changed, or a new collection with its delta against `previous`.
 */
export function buildRunElements(
  previous: SetElements | undefined,
  specs: readonly RunSpec[],
  memo: UnionMemo = new UnionMemo(),
): { elements: RunElements; delta: ElementDelta | undefined } {
  const runs = new Map<string, Run>();
  const lists = new Map<string, readonly (readonly AddressRange[])[]>();
  for (const spec of specs) lists.set(spec.suffix, spec.parts);
  if (!(previous instanceof RunElements)) {
    for (const spec of specs) runs.set(spec.suffix, { tail: spec.tail ?? NO_TAIL, ...memo.of(spec) });
    return { elements: new RunElements(runs, lists), delta: undefined };
  }
  const before = previous.runs;
  const added: Segment[] = [];
  const removed: Segment[] = [];
  for (const spec of specs) {
    const old = before.get(spec.suffix);
    const oldParts = previous.listsOf(spec.suffix);
    if (old && oldParts && sameParts(oldParts, spec.parts)) {
      runs.set(spec.suffix, old);
      continue;
    }
    const base = old ?? EMPTY_RUN;
    const union = memo.of(spec);
    const gone = { v4: [] as number[], v6: [] as bigint[] };
    const come = { v4: [] as number[], v6: [] as bigint[] };
    const tail = spec.tail ?? NO_TAIL;
    runs.set(spec.suffix, {
      tail,
      v4: patchBounds(V4_BOUNDS, base.v4, union.v4, gone.v4, come.v4, memo.scratch4),
      v6: patchBounds(V6_BOUNDS, base.v6, union.v6, gone.v6, come.v6, memo.scratch6),
    });
    pushSegments(removed, spec.suffix, tail, gone);
    pushSegments(added, spec.suffix, tail, come);
  }
  for (const [suffix, old] of before)
    if (!runs.has(suffix) && runSize(old) > 0) pushSegments(removed, suffix, old.tail, old);
  if (added.length === 0 && removed.length === 0) {
    // Same elements from new lists: keep the collection, remember the lists for the next comparison.
    previous.relist(lists);
    return { elements: previous, delta: undefined };
  }
  return { elements: new RunElements(runs, lists), delta: { base: previous, added, removed } };
}
