// The elements of a chain's address sets, kept as "runs" so that a change of members costs what changed.
// A run is one slice of a set: every element of a run ends with the same suffix (for peer.proto.port sets
// the protocol and port range, e.g. ` . tcp . 80-90`; for address-only sets nothing) and its addresses
// are the union of some address lists (plan sets' ranges). Runs of one set never share an element text,
// so a set is the disjoint union of its runs. When a set is rebuilt, a run whose address lists are the
// very same objects as before is carried over untouched; a changed run is compared range by range with
// its previous content; the result records its delta against the previous element collection, which the
// diff then uses instead of comparing the whole sets. Pure: no I/O.
import { type AddressRange, formatRange, type KeyedRanges, mergeRanges, v4Keyed } from '../policy/address.ts';

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

/** Elements in range form: `ranges[i]` followed by `suffixes[i]` (the text is formatRange + suffix). */
export interface Pieces {
  readonly ranges: readonly AddressRange[];
  readonly suffixes: readonly string[];
}

export const piecesTexts = (p: Pieces): string[] => p.ranges.map((r, i) => formatRange(r) + p.suffixes[i]);

/** What changed from `base` (the previous collection) to the collection that carries this delta. */
export interface ElementDelta {
  base: ElementTexts;
  added: Pieces;
  removed: Pieces;
}

interface Run {
  parts: readonly (readonly AddressRange[])[];
  ranges: readonly AddressRange[];
  /** The ranges' numeric keys when they are all IPv4 (see v4Keyed). */
  keys: Float64Array | undefined;
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
    for (const run of runs.values()) size += run.ranges.length;
    this.size = size;
  }
  has(text: string): boolean {
    this.index ??= new Set(this);
    return this.index.has(text);
  }
  *[Symbol.iterator](): Iterator<string> {
    for (const [suffix, run] of this.runs) for (const r of run.ranges) yield formatRange(r) + suffix;
  }
  /** Every element in range form, run by run. */
  pieces(): Pieces {
    const ranges: AddressRange[] = [];
    const suffixes: string[] = [];
    for (const [suffix, run] of this.runs)
      for (const r of run.ranges) {
        ranges.push(r);
        suffixes.push(suffix);
      }
    return { ranges, suffixes };
  }
}

/** A run's union, with its numeric keys when it is all IPv4 (see v4Keyed). */
interface Union {
  ranges: readonly AddressRange[];
  keys: Float64Array | undefined;
}

/**
 * The canonical union of a run's address lists. The lists are each sorted and disjoint (plan sets are
 * merged): IPv4 lists are merged in one pass over their heads on float64 keys (memoized per list),
 * without sorting and without bigint arithmetic, which made up a third of the agent's CPU time under a
 * stream of changes. Anything else (IPv6, or a list that is not sorted) goes through mergeRanges.
 */
export function rangesOf(spec: RunSpec): readonly AddressRange[] {
  return unionOf(spec).ranges;
}

function unionOf(spec: RunSpec): Union {
  const parts = spec.parts.filter((p) => p.length > 0);
  if (parts.length === 0) return { ranges: [], keys: new Float64Array(0) };
  const keyed: KeyedRanges[] = [];
  for (const p of parts) {
    const k = v4Keyed(p);
    if (k === undefined)
      return { ranges: mergeRanges(parts.length === 1 ? parts[0]! : parts.flat()), keys: undefined };
    keyed.push(k);
  }
  return mergeKeyed(keyed);
}

/**
 * The merged union of keyed lists: each step takes the lowest head (a linear scan: runs have few lists).
 * A range that joins no other is kept as the same object; a joined group becomes a new range made of the
 * bigints of its first and last members (no arithmetic).
 */
function mergeKeyed(lists: KeyedRanges[]): Union {
  const at = new Array<number>(lists.length).fill(0);
  let total = 0;
  for (const l of lists) total += l.ranges.length;
  const out: AddressRange[] = [];
  const keys = new Float64Array(2 * total);
  let open: AddressRange | undefined; // the range that opened the current group
  let end: AddressRange | undefined; // the member with the highest last address so far
  let openKey = 0;
  let endKey = 0;
  let grown = false;
  const close = () => {
    keys[2 * out.length] = openKey;
    keys[2 * out.length + 1] = endKey;
    out.push(grown ? { family: 4, first: open!.first, last: end!.last } : open!);
  };
  for (;;) {
    let pick = -1;
    let first = 0;
    for (let l = 0; l < lists.length; l++) {
      const i = at[l]!;
      if (i >= lists[l]!.ranges.length) continue;
      const f = lists[l]!.keys[2 * i]!;
      if (pick < 0 || f < first) {
        pick = l;
        first = f;
      }
    }
    if (pick < 0) break;
    const i = at[pick]!++;
    const r = lists[pick]!.ranges[i]!;
    const last = lists[pick]!.keys[2 * i + 1]!;
    if (open !== undefined && first <= endKey + 1) {
      if (last > endKey) {
        end = r;
        endKey = last;
        grown = true;
      }
      continue;
    }
    if (open !== undefined) close();
    open = r;
    end = r;
    openKey = first;
    endKey = last;
    grown = false;
  }
  if (open !== undefined) close();
  return { ranges: out, keys: keys.subarray(0, 2 * out.length) };
}

function sameParts(a: readonly (readonly AddressRange[])[], b: readonly (readonly AddressRange[])[]) {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/**
 * A new element list for `union` that keeps every old element still inside it: an old range contained
 * in the union stays as it is, one that is not goes, and what no kept range covers is added as the
 * fewest ranges. So a neighbour joining adds one element instead of replacing a merged range (deletes
 * cost far more than adds in the kernel's concatenated sets), and a fresh build is still fully merged.
 * Both inputs are sorted and disjoint; so is the result. All-IPv4 inputs with keys are compared as
 * numbers (patchKeyed); anything else as bigints.
 */
function patchRanges(
  old: Run,
  union: Union,
  gone: (r: AddressRange) => void,
  come: (r: AddressRange) => void,
): { ranges: AddressRange[]; keys: Float64Array | undefined } {
  if (old.keys !== undefined && union.keys !== undefined) return patchKeyed(old, union, gone, come);
  const out: AddressRange[] = [];
  let i = 0;
  const olds = old.ranges;
  for (const u of union.ranges) {
    let cursor = u.first;
    for (; i < olds.length; i++) {
      const o = olds[i]!;
      if (o.family > u.family || (o.family === u.family && o.first > u.last)) break; // belongs to later
      if (o.family === u.family && o.first >= u.first && o.last <= u.last) {
        if (o.first > cursor) {
          const gap = { family: u.family, first: cursor, last: o.first - 1n };
          out.push(gap);
          come(gap);
        }
        out.push(o);
        cursor = o.last + 1n;
      } else gone(o); // before u, or overlapping its edge: not inside the union any more
    }
    if (cursor <= u.last) {
      const gap = cursor === u.first ? u : { family: u.family, first: cursor, last: u.last };
      out.push(gap);
      come(gap);
    }
  }
  for (; i < olds.length; i++) gone(olds[i]!);
  return { ranges: out, keys: undefined };
}

/** patchRanges on numeric keys: bigints are made only for the gaps it adds. */
function patchKeyed(
  old: Run,
  union: Union,
  gone: (r: AddressRange) => void,
  come: (r: AddressRange) => void,
): { ranges: AddressRange[]; keys: Float64Array } {
  const ok = old.keys!;
  const uk = union.keys!;
  const olds = old.ranges;
  const out: AddressRange[] = [];
  const keys: number[] = [];
  const push = (r: AddressRange, first: number, last: number) => {
    out.push(r);
    keys.push(first, last);
  };
  let i = 0;
  for (let u = 0; u < union.ranges.length; u++) {
    const uFirst = uk[2 * u]!;
    const uLast = uk[2 * u + 1]!;
    let cursor = uFirst;
    for (; i < olds.length; i++) {
      const oFirst = ok[2 * i]!;
      const oLast = ok[2 * i + 1]!;
      if (oFirst > uLast) break; // belongs to later
      if (oFirst >= uFirst && oLast <= uLast) {
        if (oFirst > cursor) {
          const gap: AddressRange = { family: 4, first: BigInt(cursor), last: BigInt(oFirst - 1) };
          push(gap, cursor, oFirst - 1);
          come(gap);
        }
        push(olds[i]!, oFirst, oLast);
        cursor = oLast + 1;
      } else gone(olds[i]!); // before u, or overlapping its edge: not inside the union any more
    }
    if (cursor <= uLast) {
      const whole = union.ranges[u]!;
      const gap: AddressRange =
        cursor === uFirst ? whole : { family: 4, first: BigInt(cursor), last: whole.last };
      push(gap, cursor, uLast);
      come(gap);
    }
  }
  for (; i < olds.length; i++) gone(olds[i]!);
  return { ranges: out, keys: Float64Array.from(keys) };
}

/**
 * The elements of a set made of `specs`. With `previous` (the collection this set had before, built by
 * this function), unchanged runs are carried over and the result is `previous` itself when nothing
 * changed, or a new collection with its delta against `previous`.
 */
export function buildRunElements(
  previous: ElementTexts | undefined,
  specs: readonly RunSpec[],
): { elements: RunElements; delta: ElementDelta | undefined } {
  const runs = new Map<string, Run>();
  if (!(previous instanceof RunElements)) {
    for (const spec of specs) runs.set(spec.suffix, { parts: spec.parts, ...unionOf(spec) });
    return { elements: new RunElements(runs), delta: undefined };
  }
  const before = previous.runs;
  const added = { ranges: [] as AddressRange[], suffixes: [] as string[] };
  const removed = { ranges: [] as AddressRange[], suffixes: [] as string[] };
  for (const spec of specs) {
    const old = before.get(spec.suffix);
    if (old && sameParts(old.parts, spec.parts)) {
      runs.set(spec.suffix, old);
      continue;
    }
    const patched = patchRanges(
      old ?? { parts: [], ranges: [], keys: new Float64Array(0) },
      unionOf(spec),
      (r) => {
        removed.ranges.push(r);
        removed.suffixes.push(spec.suffix);
      },
      (r) => {
        added.ranges.push(r);
        added.suffixes.push(spec.suffix);
      },
    );
    runs.set(spec.suffix, { parts: spec.parts, ...patched });
  }
  for (const [suffix, old] of before)
    if (!runs.has(suffix))
      for (const r of old.ranges) {
        removed.ranges.push(r);
        removed.suffixes.push(suffix);
      }
  if (added.ranges.length === 0 && removed.ranges.length === 0) {
    // Same elements from new lists: keep the collection, remember the lists for the next comparison.
    previous.runs = runs;
    return { elements: previous, delta: undefined };
  }
  return { elements: new RunElements(runs), delta: { base: previous, added, removed } };
}
