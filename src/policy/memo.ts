// The memos of normalizing, indexing, planning and compiling, owned by one object that a long-lived
// caller (the agent: one per process) or one offline compile creates and passes down. No module keeps one.
//
// Lifetime and bound: every entry is a pure function of its key (two memos never disagree, a fresh memo
// only costs time), so a memo may live as long as its owner. Keyed by object: WeakMaps, bounded by the
// objects alive (normalized objects are never mutated, so identity stands for content). Keyed by text:
// Maps cleared when they reach their bound, so texts that come and go do not pile up.
import type { LabelSelector, Labels } from './types.ts';

/** Texts memoized by text, cleared past `bound` entries: a memo, not a registry. */
export class BoundedMemo<V> {
  private readonly map = new Map<string, V>();
  readonly bound: number;
  constructor(bound: number) {
    this.bound = bound;
  }
  get size(): number {
    return this.map.size;
  }
  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v === undefined) {
      v = make();
      if (this.map.size >= this.bound) this.map.clear();
      this.map.set(key, v);
    }
    return v;
  }
}

export class Memo {
  /** Label sets by content: the replicas of a workload share one (never mutated) labels object. */
  readonly labels = new BoundedMemo<Labels>(16_384);
  /** selectorKey by selector object. */
  readonly selectorKeys = new WeakMap<LabelSelector, string>();
  /** Plan set ids by prefix and meaning (a sha256 each: worth keeping across syncs). */
  readonly setIds = new BoundedMemo<string>(100_000);
}
