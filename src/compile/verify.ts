// Compares our table as the kernel lists it with the desired state we believe is programmed: both sides are
// rendered by the same printer into a canonical text, so the comparison is exact but blind to what the
// kernel legitimately changes (rule handles, counter values, element order). Pure: no kernel, no I/O.
import { PackedElements, type Ruleset, canonicalLines as tableLines } from '../nft/index.ts';
import type { DesiredSet, DesiredState } from './desired.ts';
import { chainObject, limitObjects, ruleObjects, setObject, tableObject } from './ruleset.ts';

/** The typed objects (table, chains, sets with their elements, rules) that `state` programs. */
export function expectedRuleset(state: DesiredState): Ruleset {
  const chains = [...state.chains.values()];
  return {
    tables: [tableObject()],
    chains: chains.map(chainObject),
    sets: [...state.sets.values()].map((s) => {
      const set = setObject(s);
      // Not push(...): a spread of a few hundred thousand arguments overflows the stack.
      for (const e of set.unpack(PackedElements.ofRanges(set, s.elements.groups()))) set.elements.push(e);
      return set;
    }),
    objects: limitObjects(state.objects),
    rules: chains.flatMap(ruleObjects),
  };
}

/** A desired set's elements as nft text (`10.0.0.1 : jump eg-…`), in order: for people and tests. */
export function elementTexts(s: DesiredSet): string[] {
  const set = setObject(s);
  return set.unpack(PackedElements.ofRanges(set, s.elements.groups())).map((e) => set.formatElement(e));
}

/** A pod chain's own set: `<base>-a4`, `-a6`, `-p`, `-c4`, `-c6`, `-m4`, `-m6` (see desired.ts). */
const CHAIN_SET = /^(.+)(-[ac][46]|-p|-m[46])$/;

/**
 * The name each pod chain's set would have in a fresh build (`<chain>-c4`), for the sets a chain took
 * over from its predecessor (DesiredCache.lineage): which name a set carries is history, not meaning.
 * Taken from the rules, so it applies to a kernel listing as to a desired state.
 */
export function canonicalSetNames(r: Ruleset): Map<string, string> {
  const out = new Map<string, string>();
  for (const x of r.rules) {
    if (!/^(in|eg)-/.test(x.chain)) continue;
    for (const [, name] of x.statement().matchAll(/@(\S+)/g)) {
      const m = CHAIN_SET.exec(name!);
      if (m && m[1] !== x.chain) out.set(name!, `${x.chain}${m[2]}`);
    }
  }
  return out;
}

/** nft's canonical lines (nft/list.ts) with pod chains' sets under the names a fresh build gives them. */
export function canonicalLines(r: Ruleset): string[] {
  const renames = canonicalSetNames(r);
  return tableLines(r, (name) => renames.get(name) ?? name);
}

export interface TableComparison {
  equal: boolean;
  /** Short human summary of what differs ("table missing", "+2 -1 lines: ..."); undefined when equal. */
  detail: string | undefined;
  missing: string[];
  extra: string[];
}

/**
 * Compares what the kernel holds (`actual`, undefined when the table does not exist) with `expected`.
 * Rules are compared per chain in order, so a reordered or inserted rule counts as a difference.
 */
export function compareTable(expected: DesiredState, actual: Ruleset | undefined): TableComparison {
  const want = canonicalLines(expectedRuleset(expected));
  if (actual === undefined || actual.tables.length === 0)
    return { equal: false, detail: 'table missing', missing: want, extra: [] };
  const got = canonicalLines(actual);
  if (want.length === got.length && want.every((l, i) => l === got[i]))
    return { equal: true, detail: undefined, missing: [], extra: [] };
  // Line multisets first (added or removed objects, elements, rules); if those agree, the order of the
  // rules inside a chain differs.
  const count = (lines: string[]) => {
    const m = new Map<string, number>();
    for (const l of lines) m.set(l, (m.get(l) ?? 0) + 1);
    return m;
  };
  const minus = (a: string[], b: Map<string, number>) => {
    const left = new Map(b);
    return a.filter((l) => {
      const n = left.get(l) ?? 0;
      if (n > 0) left.set(l, n - 1);
      return n === 0;
    });
  };
  const missing = minus(want, count(got));
  const extra = minus(got, count(want));
  const shown = [...missing.map((l) => `- ${l}`), ...extra.map((l) => `+ ${l}`)];
  const head =
    shown.length === 0
      ? 'rules in a different order'
      : `${missing.length} missing, ${extra.length} unexpected: ${shown.slice(0, 5).join('; ')}${shown.length > 5 ? `; … ${shown.length - 5} more` : ''}`;
  return { equal: false, detail: head, missing, extra };
}
