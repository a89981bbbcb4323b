// How the kernel gets from what it holds to a desired state: the list of batches to commit, in order. Each
// batch is atomic; the reconciler commits them one after another. Builds transactions, never runs them.
// Two starting points: our own last complete program (trusted: a diff), or what the kernel lists right now
// (after a failed commit, a restart, tampering: the only record that cannot be stale).
//
// Batches are capped (the socket's send buffer: see netlink/batch.ts defaultBatchLimit). A program that
// fits one batch under the cap is today's single batch. A larger one is staged so that every state
// between two batches allows nothing that neither the old nor the new table allows:
//
// - A full replace (from the kernel's listing, whose content we do not trust) fills a complete copy of the
//   new table under names the kernel does not use (`<name>.s<k>`, k chosen against the listing), with its
//   own base chain left unhooked; one small batch hooks that base chain and deletes every old base chain
//   (old -> new, atomically); later batches delete the old objects, fill the new table again under its
//   own names, switch back in a second small batch (new -> new) and delete the copy. Nothing the kernel
//   listed is changed while it enforces, so its content (ours, a crashed agent's half program, someone
//   else's edits) does not matter, and the end state is exactly a fresh full program. It costs writing
//   the table twice, which only large first programs and repairs pay. A crash at any point leaves either
//   the old table or one complete copy enforcing, and the next program from the listing starts over.
//   No table (or one with no base chain, which enforces nothing): filled in place, hooked last.
// - A diff (from our own record, trusted) keeps the names: new sets and chains are filled while nothing
//   jumps to them; then the changes that can only take away (elements leaving sets, which only ever
//   allow more with more elements; pods entering a dispatch map); then one batch with what is neither
//   (rewritten chains, pods moving between chains, and an interval set's whole change while they fit,
//   so that a range re-added narrower or merged never leaves a gap); then what only gives (elements
//   joining sets, pods leaving dispatch maps); then the removal of what nobody uses. Up to the switch
//   every state allows at most what the old table allows, after it at most what the new one does. What
//   does not fit the switch batch is split safely at the price of a short extra denial: an interval
//   set's removals before its additions (keys in both are denied in between), a pod moving between
//   chains through `drop` (its traffic is denied in between).
//
// Weighed and not chosen: raising the send buffer with SO_SNDBUFFORCE (needs CAP_NET_ADMIN, which the
// agent has, but also a native binding: the `netlink` package only sets SO_SNDBUF; and a batch of any
// size is then one huge allocation in the kernel and in the agent), or a higher net.core.wmem_max (a
// global sysctl for one agent). Staging needs neither privilege nor sysctl and works under any cap.

import { defaultBatchLimit } from '../netlink/batch.ts';
import type {
  Chain,
  LimitObject,
  MapVerdict,
  NamedSet,
  RangeAt,
  Ruleset,
  Transaction as Tx,
} from '../nft/index.ts';
import {
  elementsBytesBound,
  PackedElements,
  rangeCount,
  rangeItems,
  rangeKey,
  regroup,
  sliceElements,
  Transaction,
} from '../nft/index.ts';
import { TollgateError } from '../util/errors.ts';
import type { DesiredChain, DesiredLimit, DesiredSet, DesiredState, RuleSpec } from './desired.ts';
import { allElements, type DiffCounts, diffParts, diffTransaction, fullTransaction } from './diff.ts';
import { chainObject, limitObject, limitObjects, ruleObjects, setObject, tableObject } from './ruleset.ts';
import { GroupElements } from './runs.ts';

/** Where programming starts from. */
export type ProgramFrom =
  /** What our last complete, successful program left in the kernel. */
  | { programmed: DesiredState }
  /** What the kernel lists now (undefined: no table). Nothing we remember is trusted. */
  | { kernel: Ruleset | undefined };

export interface ProgramOptions {
  /** The largest batch the socket can send, in bytes (default: defaultBatchLimit(), the socket's own). */
  maxBatchBytes?: number;
}

export interface Program {
  /** 'full' replaces the whole table, 'diff' changes what differs, 'none' has nothing to commit. */
  kind: 'full' | 'diff' | 'none';
  /** Committed in order; every state between two batches enforces nothing less than old or new allows. */
  batches: Transaction[];
  counts: DiffCounts | undefined;
  /** More than one batch: the program was staged (see the top of this file). */
  staged?: boolean;
}

/** The smallest cap accepted: a base chain with its rules, or one rewritten chain, must fit one batch. */
export const MIN_BATCH_BYTES = 4096;

/** code E_PROGRAM_BATCH: a change that must be atomic does not fit one batch under the cap. */
export class ProgramError extends TollgateError<'E_PROGRAM_BATCH'> {
  constructor(message: string) {
    super('E_PROGRAM_BATCH', message);
  }
}

export function programBatches(from: ProgramFrom, next: DesiredState, options: ProgramOptions = {}): Program {
  const cap = options.maxBatchBytes ?? defaultBatchLimit();
  if (!Number.isSafeInteger(cap) || cap < MIN_BATCH_BYTES)
    throw new ProgramError(`maxBatchBytes ${cap}: need an integer of at least ${MIN_BATCH_BYTES}`);
  if ('programmed' in from) {
    const { tx, counts } = diffTransaction(from.programmed, next);
    if (tx.size === 0) return { kind: 'none', batches: [], counts };
    if (fits(tx, counts.elementsAdded + counts.elementsDeleted, cap))
      return { kind: 'diff', batches: [tx], counts };
    return { kind: 'diff', batches: stagedDiff(from.programmed, next, cap), counts, staged: true };
  }
  let elements = 0;
  for (const s of next.sets.values()) elements += s.elements.size;
  const tx = fullTransaction(next, { replace: true });
  if (fits(tx, elements, cap)) return { kind: 'full', batches: [tx], counts: undefined };
  return { kind: 'full', batches: stagedReplace(from.kernel, next, cap), counts: undefined, staged: true };
}

/** Whether a transaction fits one batch; it is only encoded (once: the commit reuses it) when it may. */
function fits(tx: Transaction, elements: number, cap: number): boolean {
  // Every element takes at least 20 bytes on the wire: a certain miss needs no encoding.
  if (elements * 20 > cap) return false;
  return tx.encode().buf.length <= cap;
}

const EMPTY_BATCH = new Transaction().encode().buf.length;
/** A rule whose set is created in the same batch names it by id as well (NFTA_*_SET_ID, 8 bytes). */
const SLACK = 16;

function opBytes(fill: (tx: Tx) => void): number {
  const tx = new Transaction();
  fill(tx);
  return tx.encode().buf.length - EMPTY_BATCH + SLACK;
}

/**
 * Cuts a sequence of operations into batches under the cap, in order. Operations passed together stay in
 * one batch; element lists are split wherever the batch is full.
 */
class Packer {
  readonly batches: Transaction[] = [];
  private tx = new Transaction();
  private used = EMPTY_BATCH;
  private readonly cap: number;
  constructor(cap: number) {
    this.cap = cap;
  }

  /** Operations that must commit in one batch (measured one by one). */
  together(what: string, fills: ((tx: Tx) => void)[]): void {
    this.block(
      fills.reduce((n, f) => n + opBytes(f), 0),
      fills,
      what,
    );
  }

  /** Operations that must commit in one batch, `bytes` at most. */
  block(bytes: number, fills: ((tx: Tx) => void)[], what: string): void {
    this.reserve(bytes, what);
    for (const f of fills) f(this.tx);
    this.used += bytes;
  }

  op(what: string, fill: (tx: Tx) => void): void {
    this.together(what, [fill]);
  }

  /** Adds or deletes elements, split over as many batches as they need. */
  elements(set: NamedSet, verb: 'add' | 'delete', elements: PackedElements, perElement: number): void {
    const total = elements.count;
    let at = 0;
    while (at < total) {
      let n = Math.min(total - at, this.room(set, perElement));
      if (n < 1) {
        if (this.used === EMPTY_BATCH)
          throw new ProgramError(
            `one element of ${set.describe()} does not fit a batch of ${this.cap} bytes`,
          );
        this.cut();
        n = Math.min(total - at, this.room(set, perElement));
      }
      const chunk = sliceElements(elements, at, at + n);
      if (verb === 'add') this.tx.addElements(set, chunk);
      else this.tx.deleteElements(set, chunk);
      this.used += elementsBytesBound(set, n, perElement);
      at += n;
    }
  }

  /**
   * Deletes `removed[i]` and adds `added[i]` in the same batch for every i (one key's old and new
   * element, which must never be apart), as many pairs per batch as fit.
   */
  pairs(set: NamedSet, removed: PackedElements, added: PackedElements, perElement: number): void {
    let at = 0;
    while (at < removed.count) {
      const fit = (n: number) => 2 * elementsBytesBound(set, n, perElement) <= this.cap - this.used;
      let n = Math.min(removed.count - at, Math.floor(this.room(set, perElement) / 2));
      while (n > 0 && !fit(n)) n--;
      if (n < 1) {
        if (this.used === EMPTY_BATCH)
          throw new ProgramError(
            `one element of ${set.describe()} does not fit a batch of ${this.cap} bytes`,
          );
        this.cut();
        continue;
      }
      this.tx.deleteElements(set, sliceElements(removed, at, at + n));
      this.tx.addElements(set, sliceElements(added, at, at + n));
      this.used += 2 * elementsBytesBound(set, n, perElement);
      at += n;
    }
  }

  /** How many elements still fit the current batch. */
  private room(set: NamedSet, perElement: number): number {
    const room = this.cap - this.used;
    let n = Math.floor(room / perElement);
    while (n > 0 && elementsBytesBound(set, n, perElement) > room) n = Math.min(n - 1, Math.floor(n * 0.98));
    return n;
  }

  private reserve(bytes: number, what: string): void {
    if (this.used + bytes <= this.cap) return;
    this.cut();
    if (EMPTY_BATCH + bytes > this.cap)
      throw new ProgramError(
        `${what} must be one batch but needs ${EMPTY_BATCH + bytes} bytes, more than the cap of ${this.cap}`,
      );
  }

  /** Ends the current batch. */
  cut(): void {
    if (this.tx.size > 0) this.batches.push(this.tx);
    this.tx = new Transaction();
    this.used = EMPTY_BATCH;
  }

  finish(): Transaction[] {
    this.cut();
    return this.batches;
  }
}

const sorted = <T extends { name: string }>(items: Iterable<T>): T[] =>
  [...items].sort((a, b) => (a.name < b.name ? -1 : 1));

function longestChainName(...states: DesiredState[]): number {
  let n = 0;
  for (const s of states) for (const name of s.chains.keys()) n = Math.max(n, name.length);
  return n;
}

const perElement = (set: NamedSet, s: DesiredSet, chainName: number) =>
  set.elementBytesBound(s.map ? chainName : 0);

/** Every set with its elements, limit object and chain with its rules, except the base chain. Order: what
 *  a later object names exists before it (sets, objects, chains, the maps that jump to them, rules). */
function fillObjects(p: Packer, state: DesiredState): void {
  const chainName = longestChainName(state);
  for (const o of limitObjects(state.objects)) p.op(o.describe(), (tx) => tx.add(o));
  const sets = sorted(state.sets.values());
  for (const s of sets) {
    const set = setObject(s);
    p.op(set.describe(), (tx) => tx.add(set));
    if (!s.map && s.elements.size > 0)
      p.elements(set, 'add', allElements(set, s), perElement(set, s, chainName));
  }
  const chains = sorted(state.chains.values()).filter((c) => !c.base);
  for (const c of chains) p.op(`chain ${c.name}`, (tx) => tx.add(chainObject(c)));
  for (const s of sets) {
    if (!s.map || s.elements.size === 0) continue;
    const set = setObject(s);
    p.elements(set, 'add', allElements(set, s), perElement(set, s, chainName));
  }
  for (const c of chains) for (const r of ruleObjects(c)) p.op(r.describe(), (tx) => tx.add(r));
}

const baseOf = (state: DesiredState): DesiredChain => {
  for (const c of state.chains.values()) if (c.base) return c;
  throw new ProgramError('the desired state has no base chain');
};

/** The base chain with its rules, created (hooked) in one step. */
const hook = (c: DesiredChain): ((tx: Tx) => void)[] => [
  (tx) => tx.add(chainObject(c)),
  ...ruleObjects(c).map((r) => (tx: Tx) => tx.add(r)),
];

/** `state` with every chain and set renamed (and every reference to them): the staging copy. */
function renamed(state: DesiredState, alias: (name: string) => string): DesiredState {
  const retarget = (v: MapVerdict): MapVerdict =>
    v.kind === 'jump' || v.kind === 'goto' ? { kind: v.kind, chain: alias(v.chain) } : v;
  const rule = (r: RuleSpec): RuleSpec => {
    switch (r.kind) {
      case 'unknown-local':
        return { ...r, knownSet: alias(r.knownSet) };
      case 'dispatch':
        return { ...r, map: alias(r.map) };
      case 'lookup':
        return { ...r, set: alias(r.set) };
      case 'report-gate':
        return { ...r, chain: alias(r.chain) };
      case 'report-limit':
        return { ...r, limit: alias(r.limit) };
      case 'report-audit-gate':
        return { ...r, limit: alias(r.limit), chain: alias(r.chain) };
      default:
        return r;
    }
  };
  const chains = new Map<string, DesiredChain>();
  for (const c of state.chains.values())
    chains.set(alias(c.name), { ...c, name: alias(c.name), rules: c.rules.map(rule) });
  const sets = new Map<string, DesiredSet>();
  for (const s of state.sets.values()) {
    const elements = s.map
      ? new GroupElements(
          s.elements
            .groups()
            .map((g) => (g.verdict === undefined ? g : { ...g, verdict: retarget(g.verdict) })),
        )
      : s.elements;
    const { delta: _delta, ...rest } = s;
    sets.set(alias(s.name), { ...rest, name: alias(s.name), elements });
  }
  const objects = new Map<string, DesiredLimit>();
  for (const o of state.objects?.values() ?? []) objects.set(alias(o.name), { ...o, name: alias(o.name) });
  return { chains, sets, podChains: state.podChains, objects };
}

function stagedReplace(kernel: Ruleset | undefined, next: DesiredState, cap: number): Transaction[] {
  const p = new Packer(cap);
  const base = baseOf(next);
  const hooked = kernel?.chains.filter((c) => c.isBase) ?? [];
  if (kernel === undefined || hooked.length === 0) {
    // Nothing of ours enforces (no table, or one no hook reaches): fill in place, hook last.
    p.op('the table', (tx) => {
      tx.add(tableObject());
      if (kernel !== undefined) tx.delete(tableObject()).add(tableObject());
    });
    fillObjects(p, next);
    p.together('the base chain', hook(base));
    return p.finish();
  }
  const kernelObjects: LimitObject[] = kernel.objects ?? [];
  const taken = new Set([
    ...kernel.chains.map((c) => c.name),
    ...kernel.sets.map((s) => s.name),
    ...kernelObjects.map((o) => o.name),
  ]);
  const names = [...next.chains.keys(), ...next.sets.keys(), ...(next.objects?.keys() ?? [])];
  let k = 1;
  while (names.some((n) => taken.has(`${n}.s${k}`))) k++;
  const staging = renamed(next, (n) => `${n}.s${k}`);
  const stagingBase = baseOf(staging);
  // 1. The copy, unhooked; then old -> new in one batch.
  fillObjects(p, staging);
  p.together('the switch to the staged table', [
    ...hook(stagingBase),
    ...hooked.flatMap((c) => [(tx: Tx) => tx.flush(c), (tx: Tx) => tx.delete(c)]),
  ]);
  // 2. The old objects, unreachable now: rules first (they name sets and chains), then the sets and maps
  //    (maps name chains), then the chains. Anonymous sets go with their rules.
  const oldChains: Chain[] = kernel.chains.filter((c) => !c.isBase);
  for (const c of oldChains) p.op(c.describe(), (tx) => tx.flush(c));
  for (const s of kernel.sets) if (!s.name.startsWith('__')) p.op(s.describe(), (tx) => tx.delete(s));
  for (const c of oldChains) p.op(c.describe(), (tx) => tx.delete(c));
  for (const o of kernelObjects) p.op(o.describe(), (tx) => tx.delete(o));
  // 3. The table under its own names; then the copy -> the table in one batch; then the copy goes.
  fillObjects(p, next);
  const stagingBaseObject = chainObject(stagingBase);
  p.together('the switch back', [
    ...hook(base),
    (tx) => tx.flush(stagingBaseObject),
    (tx) => tx.delete(stagingBaseObject),
  ]);
  removeObjects(p, {
    chains: [...staging.chains.values()],
    sets: [...staging.sets.values()],
    objects: [...(staging.objects?.values() ?? [])],
  });
  return p.finish();
}

/** Deletes chains, sets and limit objects nothing hooked reaches any more: rules, then sets and maps, then
 *  chains, then the objects (no rule names them once the chains are flushed). */
function removeObjects(
  p: Packer,
  gone: { chains: DesiredChain[]; sets: DesiredSet[]; objects: DesiredLimit[] },
): void {
  const chains = sorted(gone.chains).filter((c) => !c.base);
  for (const c of chains) p.op(`chain ${c.name}`, (tx) => tx.flush(chainObject(c)));
  for (const s of sorted(gone.sets)) p.op(`set ${s.name}`, (tx) => tx.delete(setObject(s)));
  for (const c of chains) p.op(`chain ${c.name}`, (tx) => tx.delete(chainObject(c)));
  for (const o of sorted(gone.objects)) p.op(`limit ${o.name}`, (tx) => tx.delete(limitObject(o)));
}

const DROP: MapVerdict = { kind: 'drop' };

function stagedDiff(prev: DesiredState, next: DesiredState, cap: number): Transaction[] {
  const parts = diffParts(prev, next);
  const p = new Packer(cap);
  const chainName = longestChainName(prev, next);
  // 0. New sets, limit objects and chains, complete, while nothing jumps to them.
  for (const o of parts.newObjects) p.op(`limit ${o.name}`, (tx) => tx.add(limitObject(o)));
  for (const s of parts.newSets) {
    const set = setObject(s);
    p.op(set.describe(), (tx) => tx.add(set));
    if (!s.map && s.elements.size > 0)
      p.elements(set, 'add', allElements(set, s), perElement(set, s, chainName));
  }
  for (const c of parts.newChains) p.op(`chain ${c.name}`, (tx) => tx.add(chainObject(c)));
  for (const s of parts.newSets) {
    if (!s.map || s.elements.size === 0) continue;
    const set = setObject(s);
    p.elements(set, 'add', allElements(set, s), perElement(set, s, chainName));
  }
  for (const c of parts.newChains) for (const r of ruleObjects(c)) p.op(r.describe(), (tx) => tx.add(r));

  // What each element change does to what is allowed. Sets only ever allow more with more elements
  // (lookups that accept or return, the known-pod sets of the unknown-local drop, and the address-class
  // maps, whose class chains are fixed by their names); a dispatch map allows less with more keys (an
  // isolated pod), and a key that changes its chain is neither.
  const restrict: ((p: Packer) => void)[] = [];
  const loosen: ((p: Packer) => void)[] = [];
  const switchFills: ((tx: Tx) => void)[] = [];
  let switchBytes = 0;
  const switchRoom = () => cap - EMPTY_BATCH - switchBytes;
  for (const c of parts.changedChains) {
    const chain = chainObject(c);
    const fills = [(tx: Tx) => tx.flush(chain), ...ruleObjects(c).map((r) => (tx: Tx) => tx.add(r))];
    switchFills.push(...fills);
    switchBytes += fills.reduce((n, f) => n + opBytes(f), 0);
  }
  if (switchRoom() < 0)
    throw new ProgramError(`the rewritten chains must be one batch but do not fit the cap of ${cap} bytes`);
  for (const { set: s, removed, added } of parts.elements) {
    const set = setObject(s);
    const per = perElement(set, s, chainName);
    const pack = (items: readonly RangeAt[], verdict?: MapVerdict) =>
      PackedElements.ofRanges(set, regroup(items, verdict));
    if (s.isolates) {
      // A dispatch map's keys are pod addresses: a key in both lists moves its pod to another chain.
      const out = rangeItems(removed);
      const into = rangeItems(added);
      const keyOf = (x: RangeAt) => rangeKey(x.group, x.at);
      const addedKeys = new Map(into.map((x) => [keyOf(x), x]));
      const removedKeys = new Set(out.map(keyOf));
      const entering = pack(into.filter((x) => !removedKeys.has(keyOf(x))));
      const leaving = pack(out.filter((x) => !addedKeys.has(keyOf(x))));
      const movedFrom = out.filter((x) => addedKeys.has(keyOf(x)));
      const movedTo = movedFrom.map((x) => addedKeys.get(keyOf(x))!);
      if (entering.count > 0) restrict.push((q) => q.elements(set, 'add', entering, per));
      if (leaving.count > 0) loosen.push((q) => q.elements(set, 'delete', leaving, per));
      // Moves: in the switch batch while they fit, the rest through `drop`.
      let n = movedFrom.length;
      while (n > 0 && 2 * elementsBytesBound(set, n, per) > switchRoom()) n = Math.floor(n * 0.9);
      if (n > 0) {
        const from = pack(movedFrom.slice(0, n));
        const to = pack(movedTo.slice(0, n));
        switchFills.push((tx) => tx.deleteElements(set, from).addElements(set, to));
        switchBytes += 2 * elementsBytesBound(set, n, per);
      }
      if (n < movedFrom.length) {
        const restFrom = pack(movedFrom.slice(n));
        const restTo = pack(movedTo.slice(n));
        const drops = pack(movedFrom.slice(n), DROP);
        restrict.push((q) => q.pairs(set, restFrom, drops, per));
        loosen.push((q) => q.pairs(set, drops, restTo, per));
      }
      continue;
    }
    const nOut = rangeCount(removed);
    const nIn = rangeCount(added);
    const whole = elementsBytesBound(set, nOut, per) + elementsBytesBound(set, nIn, per);
    if (s.interval && nOut > 0 && nIn > 0 && whole <= switchRoom()) {
      const out = PackedElements.ofRanges(set, removed);
      const into = PackedElements.ofRanges(set, added);
      switchFills.push((tx) => tx.deleteElements(set, out).addElements(set, into));
      switchBytes += whole;
      continue;
    }
    if (nOut > 0) restrict.push((q) => q.elements(set, 'delete', PackedElements.ofRanges(set, removed), per));
    if (nIn > 0) loosen.push((q) => q.elements(set, 'add', PackedElements.ofRanges(set, added), per));
  }
  // 1. What only takes away.
  for (const f of restrict) f(p);
  // 2. What is neither, in one batch (measured above: reserve its bytes as one block).
  if (switchFills.length > 0) p.block(switchBytes, switchFills, 'the switch of a staged change');
  // 3. What only gives.
  for (const f of loosen) f(p);
  // 4. What nobody uses any more.
  removeObjects(p, { chains: parts.goneChains, sets: parts.goneSets, objects: parts.goneObjects });
  return p.finish();
}
