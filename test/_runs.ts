// How many cases a property test runs: the full count in `npm test`, fewer in the fast tier
// (`npm run test:unit` sets TOLLGATE_TEST_TIER=unit). The property and its seed stay the same, so the unit
// tier checks a prefix of what `npm test` checks; never the only place a property runs.

/** True under `npm run test:unit` (scripts/test-unit.ts sets TOLLGATE_TEST_TIER=unit). */
export const UNIT_TIER = process.env.TOLLGATE_TEST_TIER === 'unit';

/** The unit tier runs this share of each property's cases. */
const UNIT_SHARE = 0.1;

/**
 * `full` cases in `npm test`; a tenth of them (at least `min`) in the unit tier. Thresholds a test asserts
 * over its runs (how many were staged, how many flows compared) scale with `scale(full)`.
 */
export function runs(full: number, min = 20): number {
  return UNIT_TIER ? Math.min(full, Math.max(min, Math.ceil(full * UNIT_SHARE))) : full;
}

/** A count that `full` runs reach, scaled to the runs this tier makes (`runs(full)`), rounded down. */
export function scale(count: number, full: number, min = 20): number {
  return Math.floor((count * runs(full, min)) / full);
}
