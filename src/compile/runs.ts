// The elements of a chain's address sets, kept as "runs" so that a change of members costs what changed.
// A run is one slice of a set: every element of a run ends with the same suffix (for peer.proto.port sets
// the protocol and port range, e.g. ` . tcp . 80-90`; for address-only sets nothing) and its addresses
// are the union of some address lists (plan sets' ranges). Runs of one set never share an element text,
// so a set is the disjoint union of its runs. When a set is rebuilt, a run whose address lists are the
// very same objects as before is carried over untouched; a changed run is compared range by range with
// its previous content; the result records its delta against the previous element collection, which the
// diff then uses instead of comparing the whole sets. Pure: no I/O.
import { type AddressRange, formatRange, mergeRanges } from '../policy/address.ts';

export interface RunSpec {
  /** Appended to each address text; unique per run within a set. */
  suffix: string;
  /** Address lists (each sorted) whose union is the run's addresses. */
  parts: readonly (readonly AddressRange[])[];
}

/** What changed from `base` (the previous collection) to the collection that carries this delta. */
export interface ElementDelta {
  base: ReadonlySet<string>;
  added: string[];
  removed: string[];
}

interface Run {
  parts: readonly (readonly AddressRange[])[];
  ranges: readonly AddressRange[];
}

/** The runs each element collection was built from (collections are never mutated after building). */
const runsOf = new WeakMap<ReadonlySet<string>, Map<string, Run>>();

/** The canonical union of a run's address lists. */
function rangesOf(spec: RunSpec): readonly AddressRange[] {
  return spec.parts.length === 1 ? mergeRanges(spec.parts[0]!) : mergeRanges(spec.parts.flat());
}

function sameParts(a: readonly (readonly AddressRange[])[], b: readonly (readonly AddressRange[])[]) {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/**
 * A new element list for `union` that keeps every old element still inside it: an old range contained
 * in the union stays as it is, one that is not goes, and what no kept range covers is added as the
 * fewest ranges. So a neighbour joining adds one element instead of replacing a merged range (deletes
 * cost far more than adds in the kernel's concatenated sets), and a fresh build is still fully merged.
 * Both inputs are sorted and disjoint; so is the result.
 */
function patchRanges(
  old: readonly AddressRange[],
  union: readonly AddressRange[],
  gone: (r: AddressRange) => void,
  come: (r: AddressRange) => void,
): AddressRange[] {
  const out: AddressRange[] = [];
  let i = 0;
  for (const u of union) {
    let cursor = u.first;
    for (; i < old.length; i++) {
      const o = old[i]!;
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
  for (; i < old.length; i++) gone(old[i]!);
  return out;
}

/**
 * The elements of a set made of `specs`. With `previous` (the collection this set had before, built by
 * this function), unchanged runs are carried over and the result is `previous` itself when nothing
 * changed, or a new collection with its delta against `previous`.
 */
export function buildRunElements(
  previous: ReadonlySet<string> | undefined,
  specs: readonly RunSpec[],
): { elements: ReadonlySet<string>; delta: ElementDelta | undefined } {
  const before = previous && runsOf.get(previous);
  const runs = new Map<string, Run>();
  if (previous === undefined || before === undefined) {
    const elements = new Set<string>();
    for (const spec of specs) {
      const ranges = rangesOf(spec);
      runs.set(spec.suffix, { parts: spec.parts, ranges });
      for (const r of ranges) elements.add(formatRange(r) + spec.suffix);
    }
    runsOf.set(elements, runs);
    return { elements, delta: undefined };
  }
  const added: string[] = [];
  const removed: string[] = [];
  for (const spec of specs) {
    const old = before.get(spec.suffix);
    if (old && sameParts(old.parts, spec.parts)) {
      runs.set(spec.suffix, old);
      continue;
    }
    const ranges = patchRanges(
      old?.ranges ?? [],
      rangesOf(spec),
      (r) => removed.push(formatRange(r) + spec.suffix),
      (r) => added.push(formatRange(r) + spec.suffix),
    );
    runs.set(spec.suffix, { parts: spec.parts, ranges });
  }
  for (const [suffix, old] of before)
    if (!runs.has(suffix)) for (const r of old.ranges) removed.push(formatRange(r) + suffix);
  if (added.length === 0 && removed.length === 0) {
    runsOf.set(previous, runs);
    return { elements: previous, delta: undefined };
  }
  const elements = new Set(previous);
  for (const e of removed) elements.delete(e);
  for (const e of added) elements.add(e);
  runsOf.set(elements, runs);
  return { elements, delta: { base: previous, added, removed } };
}
