// The elements of a chain's address sets, kept as "runs" so that a change of members costs what changed.
// A run is one slice of a set: every element of a run ends with the same suffix (for peer.proto.port sets
// the protocol and port range, e.g. ` . tcp . 80-90`; for address-only sets nothing) and its addresses
// are the union of some address lists (plan sets' ranges). Runs of one set never share an element text,
// so a set is the disjoint union of its runs. When a set is rebuilt, a run whose address lists are the
// very same objects as before is carried over untouched; a changed run is compared range by range with
// its previous content; the result records its delta against the previous element collection, which the
// diff then uses instead of comparing the whole sets. Pure: no I/O.
import {
  type AddressRange,
  formatRange,
  formatV4Range,
  type KeyedRanges,
  type KeyMemo,
  mergeRanges,
  v4Keyed,
} from '../policy/address.ts';

export interface RunSpec {
  /** Appended to each address text; unique per run within a set. */
  suffix: string;
  /** Address lists (each sorted) whose union is the run's addresses. */
  parts: readonly (readonly AddressRange[])[];
}

/** What a set's element collection must offer the diff and the checks: its texts, by iteration or lookup. */
export interface ElementTexts extends Iterable<string> {
  readonly size: number;
  has(text: string): boolean;
}

/**
 * Elements in range form, in segments of one suffix each: IPv4 addresses as numbers (`v4` holds first and
 * last of each range in turn), anything else as ranges. An element's text is its range and the suffix.
 */
export interface Segment {
  suffix: string;
  v4: ArrayLike<number>;
  ranges: readonly AddressRange[];
}
export type Pieces = readonly Segment[];

/** Every element of `pieces` as a range object (for texts and tests; the transaction packs numbers). */
export function piecesRanges(pieces: Pieces): { range: AddressRange; suffix: string }[] {
  const out: { range: AddressRange; suffix: string }[] = [];
  for (const s of pieces) {
    for (const range of v4Ranges(s.v4)) out.push({ range, suffix: s.suffix });
    for (const range of s.ranges) out.push({ range, suffix: s.suffix });
  }
  return out;
}

export const piecesTexts = (pieces: Pieces): string[] =>
  piecesRanges(pieces).map((p) => formatRange(p.range) + p.suffix);

export const piecesCount = (pieces: Pieces): number =>
  pieces.reduce((n, s) => n + s.v4.length / 2 + s.ranges.length, 0);

/** What changed from `base` (the previous collection) to the collection that carries this delta. */
export interface ElementDelta {
  base: ElementTexts;
  added: Pieces;
  removed: Pieces;
}

/**
 * A run's elements, sorted and disjoint. An all-IPv4 run keeps them as numbers only (`v4`: first and last
 * of each range in turn, `ranges` empty): no objects to allocate, trace or copy when it changes, and the
 * transaction packs the numbers straight into key bytes. Anything else keeps range objects.
 */
interface Run {
  parts: readonly (readonly AddressRange[])[];
  v4: Float64Array | undefined;
  ranges: readonly AddressRange[];
}

const NO_RANGES: readonly AddressRange[] = [];
const EMPTY_KEYS = new Float64Array(0);
const EMPTY_RUN: Run = { parts: [], v4: new Float64Array(0), ranges: NO_RANGES };

const runSize = (r: Run): number => (r.v4 ? r.v4.length / 2 : r.ranges.length);

/** IPv4 ranges from their numbers (first and last in turn). */
function v4Ranges(v4: ArrayLike<number>): AddressRange[] {
  const out: AddressRange[] = [];
  for (let i = 0; i < v4.length; i += 2)
    out.push({ family: 4, first: BigInt(v4[i]!), last: BigInt(v4[i + 1]!) });
  return out;
}

/**
 * The elements of a set built from runs, kept as the runs themselves: the diff takes them in range form
 * (see Pieces) and the transaction packs them straight into key bytes, so a fresh set of thousands of
 * elements formats no text at all. Texts are made only when something reads them (the periodic
 * verification, a diff without a delta); lookups build a text index once.
 */
export class RunElements implements ElementTexts {
  /** The runs by suffix; replaced (same content) when a rebuild finds equal ranges in new lists. */
  runs: ReadonlyMap<string, Run>;
  readonly size: number;
  private index: Set<string> | undefined;
  constructor(runs: ReadonlyMap<string, Run>) {
    this.runs = runs;
    let size = 0;
    for (const run of runs.values()) size += runSize(run);
    this.size = size;
  }
  has(text: string): boolean {
    this.index ??= new Set(this);
    return this.index.has(text);
  }
  *[Symbol.iterator](): Iterator<string> {
    for (const [suffix, run] of this.runs) {
      const v4 = run.v4;
      if (v4) for (let i = 0; i < v4.length; i += 2) yield formatV4Range(v4[i]!, v4[i + 1]!) + suffix;
      else for (const r of run.ranges) yield formatRange(r) + suffix;
    }
  }
  /** Every element in range form, run by run. */
  pieces(): Pieces {
    return [...this.runs].map(([suffix, run]) => ({ suffix, v4: run.v4 ?? [], ranges: run.ranges }));
  }
}

/** A segment being filled (see patchRanges). */
interface Growing extends Segment {
  v4: number[];
  ranges: AddressRange[];
}

/** A run's union: numbers when every list is IPv4 (see v4Keyed), else range objects. */
type Union = Pick<Run, 'v4' | 'ranges'>;

/**
 * The canonical union of a run's address lists. The lists are each sorted and disjoint (plan sets are
 * merged): IPv4 lists are merged in one pass over their heads on float64 keys (memoized per list),
 * without sorting and without bigint arithmetic, which made up a third of the agent's CPU time under a
 * stream of changes. Anything else (IPv6, or a list that is not sorted) goes through mergeRanges.
 */
export function rangesOf(spec: RunSpec): readonly AddressRange[] {
  const u = unionOf(spec);
  return u.v4 ? v4Ranges(u.v4) : u.ranges;
}

function unionOf(spec: RunSpec, memo?: UnionMemo): Union {
  const parts = spec.parts.filter((p) => p.length > 0);
  const keyed: KeyedRanges[] = [];
  for (const p of parts) {
    const k = v4Keyed(p, memo?.keys);
    if (k === undefined)
      return { v4: undefined, ranges: mergeRanges(parts.length === 1 ? parts[0]! : parts.flat()) };
    keyed.push(k);
  }
  return { v4: memo ? memo.union(keyed) : mergeKeyed(keyed), ranges: NO_RANGES };
}

/**
 * IPv4 unions by the identity of their lists, kept for one build and the next (like DesiredCache): the
 * chains of a node's pods share the cluster-wide peer lists, and when one of those lists changes, every
 * chain that merges it would otherwise merge the same lists again (and allocate as much). The unions
 * are shared between runs and never written to.
 */
export class UnionMemo {
  private previous = new Map<string, Float64Array>();
  private current = new Map<string, Float64Array>();
  private readonly keyIds = new WeakMap<Float64Array, number>();
  private nextKeyId = 0;

  /** Where v4Keyed keeps list keys (the agent's Memo.v4Keys, shared with the planner). */
  readonly keys: KeyMemo;
  constructor(keys: KeyMemo = new WeakMap()) {
    this.keys = keys;
  }

  union(lists: KeyedRanges[]): Float64Array {
    if (lists.length < 2) return mergeKeyed(lists);
    const ids: number[] = [];
    for (const l of lists) {
      let id = this.keyIds.get(l.keys);
      if (id === undefined) {
        id = this.nextKeyId++;
        this.keyIds.set(l.keys, id);
      }
      ids.push(id);
    }
    const key = ids.sort((a, b) => a - b).join(',');
    let u = this.current.get(key) ?? this.previous.get(key);
    u ??= mergeKeyed(lists);
    this.current.set(key, u);
    return u;
  }

  /** Ends a build: unions it did not use are dropped after the next one. */
  rotate(): void {
    this.previous = this.current;
    this.current = new Map();
  }
}

/**
 * The merged union of keyed lists as numbers: merged in pairs, smallest first, each a two-pointer pass
 * in which overlapping and adjacent ranges join. A scan of every list's head per element cost lists x
 * elements: with cluster-wide peer lists (thousands of ranges each, several per run) that was most of a
 * sync. The canonical union does not depend on the order of merging. The same list twice counts once.
 */
function mergeKeyed(lists: KeyedRanges[]): Float64Array {
  const queue = [...new Set(lists.map((l) => l.keys))].sort((a, b) => a.length - b.length);
  // Even one list is passed through: its ranges are disjoint but may be adjacent.
  if (queue.length < 2) return mergeTwo(queue[0] ?? EMPTY_KEYS, EMPTY_KEYS);
  while (queue.length > 1) {
    const merged = mergeTwo(queue.shift()!, queue.shift()!);
    let at = queue.findIndex((q) => q.length >= merged.length);
    if (at < 0) at = queue.length;
    queue.splice(at, 0, merged);
  }
  return queue[0]!;
}

/** The union of two sorted lists of disjoint ranges (first and last in turn), joined where they touch. */
function mergeTwo(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  let n = 0;
  let i = 0;
  let j = 0;
  let first = 0;
  let last = -2;
  let open = false;
  while (i < a.length || j < b.length) {
    let head: number;
    let end: number;
    if (j >= b.length || (i < a.length && a[i]! <= b[j]!)) {
      head = a[i]!;
      end = a[i + 1]!;
      i += 2;
    } else {
      head = b[j]!;
      end = b[j + 1]!;
      j += 2;
    }
    if (open && head <= last + 1) {
      if (end > last) last = end;
      continue;
    }
    if (open) {
      out[n++] = first;
      out[n++] = last;
    }
    open = true;
    first = head;
    last = end;
  }
  if (open) {
    out[n++] = first;
    out[n++] = last;
  }
  return n === out.length ? out : out.slice(0, n);
}

function sameParts(a: readonly (readonly AddressRange[])[], b: readonly (readonly AddressRange[])[]) {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/**
 * A new element list for `union` that keeps every old element still inside it: an old range contained
 * in the union stays as it is, one that is not goes, and what no kept range covers is added as the
 * fewest ranges. So a neighbour joining adds one element instead of replacing a merged range (deletes
 * cost far more than adds in the kernel's concatenated sets), and a fresh build is still fully merged.
 * Both inputs are sorted and disjoint; so is the result. IPv4 runs are patched as numbers (patchV4).
 */
function patchRanges(old: Run, union: Union, removed: Growing, added: Growing): Union {
  if (old.v4 !== undefined && union.v4 !== undefined)
    return { v4: patchV4(old.v4, union.v4, removed.v4, added.v4), ranges: NO_RANGES };
  const gone = removed.ranges;
  const come = added.ranges;
  const olds = old.v4 ? v4Ranges(old.v4) : old.ranges;
  const out: AddressRange[] = [];
  let i = 0;
  for (const u of union.v4 ? v4Ranges(union.v4) : union.ranges) {
    let cursor = u.first;
    for (; i < olds.length; i++) {
      const o = olds[i]!;
      if (o.family > u.family || (o.family === u.family && o.first > u.last)) break; // belongs to later
      if (o.family === u.family && o.first >= u.first && o.last <= u.last) {
        if (o.first > cursor) {
          const gap = { family: u.family, first: cursor, last: o.first - 1n };
          out.push(gap);
          come.push(gap);
        }
        out.push(o);
        cursor = o.last + 1n;
      } else gone.push(o); // before u, or overlapping its edge: not inside the union any more
    }
    if (cursor <= u.last) {
      const gap = cursor === u.first ? u : { family: u.family, first: cursor, last: u.last };
      out.push(gap);
      come.push(gap);
    }
  }
  for (; i < olds.length; i++) gone.push(olds[i]!);
  return { v4: undefined, ranges: out };
}

/** patchRanges on IPv4 numbers: gone and added ranges are appended to `gone`/`come` (first, last). */
function patchV4(old: Float64Array, union: Float64Array, gone: number[], come: number[]): Float64Array {
  // The same ranges (a list was rebuilt with the same members, or a change elsewhere in the union):
  // the old elements stay, nothing is allocated.
  if (old === union || sameKeys(old, union)) return old;
  // At most every old range kept plus a gap before each of them and one at the end of each union range;
  // written to a scratch buffer and copied out at its real size (these are megabytes at 100,000 pods,
  // and allocating the bound at every change made the garbage collector run over the whole heap).
  const bound = 2 * old.length + union.length;
  if (scratch.length < bound) scratch = new Float64Array(Math.max(bound, 2 * scratch.length));
  const out = scratch;
  let n = 0;
  let i = 0;
  for (let u = 0; u < union.length; u += 2) {
    const uFirst = union[u]!;
    const uLast = union[u + 1]!;
    let cursor = uFirst;
    for (; i < old.length; i += 2) {
      const oFirst = old[i]!;
      const oLast = old[i + 1]!;
      if (oFirst > uLast) break; // belongs to later
      if (oFirst >= uFirst && oLast <= uLast) {
        if (oFirst > cursor) {
          out[n++] = cursor;
          out[n++] = oFirst - 1;
          come.push(cursor, oFirst - 1);
        }
        out[n++] = oFirst;
        out[n++] = oLast;
        cursor = oLast + 1;
      } else gone.push(oFirst, oLast); // before u, or overlapping its edge: not inside the union any more
    }
    if (cursor <= uLast) {
      out[n++] = cursor;
      out[n++] = uLast;
      come.push(cursor, uLast);
    }
  }
  for (; i < old.length; i += 2) gone.push(old[i]!, old[i + 1]!);
  return out.slice(0, n);
}

let scratch = new Float64Array(0);

function sameKeys(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The elements of a set made of `specs`. With `previous` (the collection this set had before, built by
 * this function), unchanged runs are carried over and the result is `previous` itself when nothing
 * changed, or a new collection with its delta against `previous`.
 */
export function buildRunElements(
  previous: ElementTexts | undefined,
  specs: readonly RunSpec[],
  memo?: UnionMemo,
): { elements: RunElements; delta: ElementDelta | undefined } {
  const runs = new Map<string, Run>();
  if (!(previous instanceof RunElements)) {
    for (const spec of specs) runs.set(spec.suffix, { parts: spec.parts, ...unionOf(spec, memo) });
    return { elements: new RunElements(runs), delta: undefined };
  }
  const before = previous.runs;
  const added: Segment[] = [];
  const removed: Segment[] = [];
  const segment = (suffix: string): Growing => ({ suffix, v4: [], ranges: [] });
  for (const spec of specs) {
    const old = before.get(spec.suffix);
    if (old && sameParts(old.parts, spec.parts)) {
      runs.set(spec.suffix, old);
      continue;
    }
    const gone = segment(spec.suffix);
    const come = segment(spec.suffix);
    runs.set(spec.suffix, {
      parts: spec.parts,
      ...patchRanges(old ?? EMPTY_RUN, unionOf(spec, memo), gone, come),
    });
    if (gone.v4.length + gone.ranges.length > 0) removed.push(gone);
    if (come.v4.length + come.ranges.length > 0) added.push(come);
  }
  for (const [suffix, old] of before)
    if (!runs.has(suffix) && runSize(old) > 0) removed.push({ suffix, v4: old.v4 ?? [], ranges: old.ranges });
  if (added.length === 0 && removed.length === 0) {
    // Same elements from new lists: keep the collection, remember the lists for the next comparison.
    previous.runs = runs;
    return { elements: previous, delta: undefined };
  }
  return { elements: new RunElements(runs), delta: { base: previous, added, removed } };
}
