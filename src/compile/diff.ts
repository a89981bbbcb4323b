// The smallest transaction from one desired state to the next: element adds/deletes for membership
// changes, rewrites only for chains whose rules changed, creation/removal of chains and sets no pod uses
// any more. Ordered so that every reference exists when the kernel checks it. Pure: builds, never runs.

import {
  type NamedSet,
  PackedElements,
  type RangeAt,
  type RangeGroup,
  rangeCount,
  regroup,
  Transaction,
} from '../nft/index.ts';
import { InternalError } from '../util/errors.ts';
import type { DesiredChain, DesiredLimit, DesiredSet, DesiredState } from './desired.ts';
import {
  chainObject,
  chainRulesText,
  limitObject,
  limitObjects,
  ruleObjects,
  setObject,
  tableObject,
} from './ruleset.ts';
import type { SetElements } from './runs.ts';

/** All elements of a set, packed for adding to `set` (its nft object). */
export const allElements = (set: NamedSet, s: DesiredSet): PackedElements =>
  PackedElements.ofRanges(set, s.elements.groups());

/** The elements of `a` that `b` does not hold, as range groups (compared by value: nft rangeIds). */
function minus(a: SetElements, b: SetElements): RangeGroup[] {
  const has = b.index().has;
  const ids = a.index().ids;
  const out: RangeAt[] = [];
  let i = 0;
  for (const group of a.groups())
    for (let at = 0; at < group.bounds.length; at += 2) if (!has.has(ids[i++]!)) out.push({ group, at });
  return regroup(out);
}

function sameDefinition(a: DesiredSet, b: DesiredSet): boolean {
  return a.map === b.map && a.interval === b.interval && a.key.join('.') === b.key.join('.');
}

const sorted = <T extends { name: string }>(items: Iterable<T>): T[] =>
  [...items].sort((a, b) => (a.name < b.name ? -1 : 1));

/**
 * Everything from scratch. With `replace`, the batch first deletes any existing table (created empty first
 * so that the delete cannot fail): the old rules keep enforcing until this one batch commits.
 */
export function fullTransaction(state: DesiredState, options: { replace: boolean }): Transaction {
  const tx = new Transaction();
  tx.add(tableObject());
  if (options.replace) {
    tx.delete(tableObject());
    tx.add(tableObject());
  }
  for (const s of sorted(state.sets.values())) {
    const set = setObject(s);
    tx.add(set);
    if (s.elements.size > 0 && !s.map) tx.addElements(set, allElements(set, s));
  }
  for (const o of limitObjects(state.objects)) tx.add(o);
  const chains = sorted(state.chains.values());
  for (const c of chains) tx.add(chainObject(c));
  // Verdict maps reference chains: their elements go in after the chains exist.
  for (const s of sorted(state.sets.values()))
    if (s.map && s.elements.size > 0) {
      const set = setObject(s);
      tx.addElements(set, allElements(set, s));
    }
  for (const c of chains) for (const r of ruleObjects(c)) tx.add(r);
  return tx;
}

export interface DiffCounts {
  setsAdded: number;
  setsDeleted: number;
  chainsAdded: number;
  chainsRewritten: number;
  chainsDeleted: number;
  elementsAdded: number;
  elementsDeleted: number;
}

/** What differs between two desired states, by object: the parts a diff is made of. */
export interface DiffParts {
  newSets: DesiredSet[];
  goneSets: DesiredSet[];
  newChains: DesiredChain[];
  goneChains: DesiredChain[];
  /** Surviving chains whose rules changed: flushed and refilled. */
  changedChains: DesiredChain[];
  /** Element changes of surviving sets and maps (sorted by set name; only sets that changed). */
  elements: SetChange[];
  /** Limit objects to create before any rule names them, and to delete once none does (names fix their
   *  parameters: a changed limit is one of each). */
  newObjects: DesiredLimit[];
  goneObjects: DesiredLimit[];
  counts: DiffCounts;
}

export interface SetChange {
  /** The set as `next` defines it (its definition is the same in both states). */
  set: DesiredSet;
  removed: readonly RangeGroup[];
  added: readonly RangeGroup[];
}

/**
 * The objects and elements that differ from `prev` (what is programmed) to `next`. Set names fix their
 * definitions (per-chain sets embed the chain's structural hash and their key type in the suffix), so a
 * set is only ever added, deleted or changed in its elements.
 */
export function diffParts(prev: DesiredState, next: DesiredState): DiffParts {
  const counts: DiffCounts = {
    setsAdded: 0,
    setsDeleted: 0,
    chainsAdded: 0,
    chainsRewritten: 0,
    chainsDeleted: 0,
    elementsAdded: 0,
    elementsDeleted: 0,
  };
  for (const s of next.sets.values()) {
    const old = prev.sets.get(s.name);
    if (old && !sameDefinition(old, s))
      throw new InternalError(`set ${s.name} changed its definition; set names must fix definitions`);
  }
  const newSets = sorted([...next.sets.values()].filter((s) => !prev.sets.has(s.name)));
  const goneSets = sorted([...prev.sets.values()].filter((s) => !next.sets.has(s.name)));
  const newChains = sorted([...next.chains.values()].filter((c) => !prev.chains.has(c.name)));
  const goneChains = sorted([...prev.chains.values()].filter((c) => !next.chains.has(c.name)));
  const changedChains = sorted(
    [...next.chains.values()].filter((c) => {
      const old = prev.chains.get(c.name);
      return old !== undefined && old !== c && chainRulesText(old) !== chainRulesText(c);
    }),
  );
  counts.setsAdded = newSets.length;
  counts.setsDeleted = goneSets.length;
  counts.chainsAdded = newChains.length;
  counts.chainsDeleted = goneChains.length;
  counts.chainsRewritten = changedChains.length;
  for (const s of newSets) counts.elementsAdded += s.elements.size;
  const elements: SetChange[] = [];
  for (const s of sorted(next.sets.values())) {
    const old = prev.sets.get(s.name);
    // The same element collection (reused through DesiredCache) cannot differ: skip without comparing.
    if (!old || old.elements === s.elements) continue;
    // A collection derived from exactly what is programmed carries its delta (in range form): no
    // comparison needed, and nothing to format or parse.
    const delta = s.delta !== undefined && s.delta.base === old.elements;
    const removed = delta ? s.delta!.removed : minus(old.elements, s.elements);
    const added = delta ? s.delta!.added : minus(s.elements, old.elements);
    const nOut = rangeCount(removed);
    const nIn = rangeCount(added);
    counts.elementsDeleted += nOut;
    counts.elementsAdded += nIn;
    if (nOut > 0 || nIn > 0) elements.push({ set: s, removed, added });
  }
  const objects = (a: DesiredState, b: DesiredState) =>
    sorted([...(a.objects?.values() ?? [])].filter((o) => !b.objects?.has(o.name)));
  return {
    newSets,
    goneSets,
    newChains,
    goneChains,
    changedChains,
    elements,
    newObjects: objects(next, prev),
    goneObjects: objects(prev, next),
    counts,
  };
}

/**
 * The incremental transaction from `prev` (what is programmed) to `next` in one batch; empty when
 * nothing changed. Ordered so that every reference exists when the kernel checks it.
 */
export function diffTransaction(
  prev: DesiredState,
  next: DesiredState,
): { tx: Transaction; counts: DiffCounts } {
  const tx = new Transaction();
  const parts = diffParts(prev, next);
  const { newSets, goneSets, newChains, goneChains, changedChains, elements, counts } = parts;
  // 1. New sets with their elements, limit objects and new (empty) chains: everything a later rule or map
  //    may name.
  for (const s of newSets) {
    const set = setObject(s);
    tx.add(set);
    if (!s.map && s.elements.size > 0) tx.addElements(set, allElements(set, s));
  }
  for (const o of parts.newObjects) tx.add(limitObject(o));
  for (const c of newChains) tx.add(chainObject(c));
  // 2. Element changes of surviving sets and maps: deletes first, then adds (maps may jump to new chains).
  for (const { set: s, removed, added } of elements) {
    const set = setObject(s);
    if (rangeCount(removed) > 0) tx.deleteElements(set, PackedElements.ofRanges(set, removed));
    if (rangeCount(added) > 0) tx.addElements(set, PackedElements.ofRanges(set, added));
  }
  for (const s of newSets) {
    if (!s.map || s.elements.size === 0) continue;
    const set = setObject(s);
    tx.addElements(set, allElements(set, s));
  }
  // 3. Rules: new chains get theirs; changed chains are flushed and refilled in the same batch.
  for (const c of changedChains) tx.flush(chainObject(c));
  for (const c of [...newChains, ...changedChains]) for (const r of ruleObjects(c)) tx.add(r);
  // 4. Chains nobody jumps to any more (their map elements are gone): flush all before deleting any,
  //    since one may still jump to another; then the sets only they used.
  //    Maps that jump to them (a chain's address classes) go before the chains.
  for (const c of goneChains) tx.flush(chainObject(c));
  for (const s of goneSets) if (s.map) tx.delete(setObject(s));
  for (const c of goneChains) tx.delete(chainObject(c));
  for (const s of goneSets) if (!s.map) tx.delete(setObject(s));
  // 5. Limit objects no rule names any more (their rules were rewritten in 3 or flushed in 4).
  for (const o of parts.goneObjects) tx.delete(limitObject(o));
  return { tx, counts };
}
