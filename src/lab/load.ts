// How much slower than a quiet machine this one runs now (the 1-minute load per core), for the waiting
// limits and timing allowances of lab tests and `expect: {within}`. Reads /proc only; decides nothing.
import { availableParallelism, loadavg } from 'node:os';

/** 1 on a quiet machine, the load per core on a busy one, at most 5 (beyond that a limit means little). */
export function loadFactor(): number {
  const perCore = loadavg()[0]! / Math.max(1, availableParallelism());
  return Math.min(5, Math.max(1, perCore));
}

/** A waiting limit or allowance scaled by loadFactor(). */
export function scaledMs(ms: number): number {
  return Math.round(ms * loadFactor());
}
