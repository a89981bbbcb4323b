// Compares our table as the kernel lists it with the desired state we believe is programmed: both sides are
// rendered by the same printer into a canonical text, so the comparison is exact but blind to what the
// kernel legitimately changes (rule handles, counter values, element order). Pure: no kernel, no I/O.
import type { Rule, Ruleset } from '../nft/index.ts';
import type { DesiredState } from './desired.ts';
import { chainObject, ruleObjects, setObject, tableObject } from './ruleset.ts';

/** The typed objects (table, chains, sets with their elements, rules) that `state` programs. */
export function expectedRuleset(state: DesiredState): Ruleset {
  const chains = [...state.chains.values()];
  return {
    tables: [tableObject()],
    chains: chains.map(chainObject),
    sets: [...state.sets.values()].map((s) => {
      const set = setObject(s);
      for (const e of set.parseElements([...s.elements])) set.elements.push(e);
      return set;
    }),
    rules: chains.flatMap(ruleObjects),
  };
}

/** A rule's statement with counter values blanked: traffic changes them, not us. */
function ruleText(r: Rule): string {
  return r.statement().replace(/\bcounter packets \d+ bytes \d+/g, 'counter');
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
    for (const [, name] of ruleText(x).matchAll(/@(\S+)/g)) {
      const m = CHAIN_SET.exec(name!);
      if (m && m[1] !== x.chain) out.set(name!, `${x.chain}${m[2]}`);
    }
  }
  return out;
}

/**
 * One canonical line per object: the table, chains and sets sorted by name (a set's elements sorted by
 * their text), then every chain's rules in their order. Handles never appear; counters print bare; pod
 * chains' sets carry the names a fresh build gives them (canonicalSetNames).
 */
export function canonicalLines(r: Ruleset): string[] {
  const renames = canonicalSetNames(r);
  const nameOf = (name: string) => renames.get(name) ?? name;
  const byName = <T extends { name: string }>(xs: readonly T[], key = (x: T) => x.name): T[] =>
    [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const lines: string[] = [];
  for (const t of byName(r.tables)) lines.push(t.toString());
  for (const c of byName(r.chains)) lines.push(c.toString());
  for (const s of byName(r.sets, (x) => nameOf(x.name))) {
    const elements = s.elements.map((e) => s.formatElement(e)).sort();
    const spec = `${s.family} ${s.table} ${nameOf(s.name)}`;
    lines.push(`add ${s.kind} ${spec} ${s.body()}`);
    for (const e of elements) lines.push(`add element ${spec} { ${e} }`);
  }
  const rename = (text: string) =>
    renames.size === 0
      ? text
      : text.replace(/@(\S+)/g, (_all, name: string) => `@${renames.get(name) ?? name}`);
  const chainNames = byName(r.chains).map((c) => c.name);
  for (const name of new Set([...chainNames, ...r.rules.map((x) => x.chain)])) {
    for (const x of r.rules.filter((y) => y.chain === name))
      lines.push(`add rule ${x.family} ${x.table} ${x.chain} ${rename(ruleText(x))}`);
  }
  return lines;
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
