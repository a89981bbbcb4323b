// How the kernel gets from what it holds to a desired state: the list of batches to commit, in order. Each
// batch is atomic; the reconciler commits them one after another. Pure: builds transactions, never runs them.
// Two starting points: our own last complete program (trusted: a diff), or what the kernel lists right now
// (after a failed commit, a restart, tampering: the only record that cannot be stale).
import type { Ruleset, Transaction } from '../nft/index.ts';
import type { DesiredState } from './desired.ts';
import { type DiffCounts, diffTransaction, fullTransaction } from './diff.ts';

/** Where programming starts from. */
export type ProgramFrom =
  /** What our last complete, successful program left in the kernel. */
  | { programmed: DesiredState }
  /** What the kernel lists now (undefined: no table). Nothing we remember is trusted. */
  | { kernel: Ruleset | undefined };

export interface ProgramOptions {
  /** The largest batch the socket can send, in bytes (undefined: no limit is applied here). */
  maxBatchBytes?: number;
}

export interface Program {
  /** 'full' replaces the whole table, 'diff' changes what differs, 'none' has nothing to commit. */
  kind: 'full' | 'diff' | 'none';
  /** Committed in order; every state between two batches enforces nothing less than old or new allows. */
  batches: Transaction[];
  counts: DiffCounts | undefined;
}

export function programBatches(
  from: ProgramFrom,
  next: DesiredState,
  _options: ProgramOptions = {},
): Program {
  if ('programmed' in from) {
    const { tx, counts } = diffTransaction(from.programmed, next);
    return tx.size === 0 ? { kind: 'none', batches: [], counts } : { kind: 'diff', batches: [tx], counts };
  }
  return { kind: 'full', batches: [fullTransaction(next, { replace: true })], counts: undefined };
}
