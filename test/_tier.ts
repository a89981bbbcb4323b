// What differs between the fast tier (`npm run test:unit`, which sets TOLLGATE_TEST_TIER=unit) and
// `npm test`: how many cases a property test runs, and whether CLI processes a test starts carry tap's
// coverage hook. The properties, seeds and assertions stay the same; nothing here may skip a check.

/** True under `npm run test:unit` (scripts/test-unit.ts sets TOLLGATE_TEST_TIER=unit). */
export const UNIT_TIER = process.env.TOLLGATE_TEST_TIER === 'unit';

/** The unit tier runs this share of each property's cases. */
const UNIT_SHARE = 0.1;

/**
 * `full` cases in `npm test`; a tenth of them (at least `min`) in the unit tier. Thresholds a test asserts
 * over its runs (how many were staged, how many flows compared) scale with `scale(count, full)`.
 */
export function runs(full: number, min = 20): number {
  return UNIT_TIER ? Math.min(full, Math.max(min, Math.ceil(full * UNIT_SHARE))) : full;
}

/** A count that `full` runs reach, scaled to the runs this tier makes (`runs(full, min)`), rounded down. */
export function scale(count: number, full: number, min = 20): number {
  return Math.floor((count * runs(full, min)) / full);
}

/**
 * The environment for a node process a test starts. tap puts its process-info hook (coverage of child
 * processes) into NODE_OPTIONS, which costs each child about 0.3 s of CPU, more than a tollgate command
 * itself; the unit tier collects no coverage, so there it is left out. In `npm test`: `env` unchanged.
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!UNIT_TIER || env.NODE_OPTIONS === undefined) return env;
  const options = env.NODE_OPTIONS.split(/\s+/)
    // tap quotes the option ("--import=file:///…/@tapjs/processinfo/…"): match it with or without quotes.
    .filter((o) => o !== '' && !/^"?--import=\S*@tapjs\/processinfo\//.test(o))
    .join(' ');
  return { ...env, NODE_OPTIONS: options };
}

/**
 * A fixed seed in the unit tier for a property whose asserted counts (how many cases were staged) are
 * random: a tenth of the cases is too few for the count to hold on every seed, and a fast tier must not
 * fail by chance. `npm test` keeps its random (or the test's own) seed.
 */
export function unitSeed(seed = 16): { seed?: number } {
  return UNIT_TIER ? { seed } : {};
}
