// The one-line report of a convergence window (`expect: {within}` or an expect after a fault): the timing
// against its allowance, and the sampled deny probes that passed, as stretches per probe.
import t from 'tap';
import type { WindowReport } from '../../src/scenario/probes.ts';
import { formatWindow } from '../../src/scenario/report.ts';

const base: WindowReport = {
  openedAt: 0,
  withinMs: 2000,
  allowedMs: 3000,
  convergedMs: 120,
  late: false,
  samples: [],
  wrong: 0,
};
const sample = (probe: string, atMs: number, allowed: boolean) => ({ probe, atMs, allowed });

t.test('in time, nothing passed', async (t) => {
  t.equal(
    formatWindow({ ...base, samples: [sample('b -> a', 0, false)] }),
    'converged 120 ms after the first change (in time: within 2000 ms, allowed 3000 ms under load); 0 of 1 sampled deny probes passed',
  );
});

t.test('late, with stretches of passed samples per probe', async (t) => {
  const samples = [
    sample('b -> a', 0, true),
    sample('b -> a', 200, true),
    sample('b -> a', 400, false),
    sample('b -> a', 600, true),
    sample('e -> b', 100, true),
  ];
  t.equal(
    formatWindow({ ...base, convergedMs: undefined, late: true, samples, wrong: 4 }),
    'did not converge (LATE: within 2000 ms, allowed 3000 ms under load); 4 of 5 sampled deny probes passed (b -> a at 0-200, 600 ms; e -> b at 100 ms)',
  );
});

t.test('an expect after a fault is sampled, not timed', async (t) => {
  t.equal(
    formatWindow({ ...base, withinMs: undefined, allowedMs: undefined, convergedMs: undefined }),
    'after a fault; no deny probe sampled',
  );
});
