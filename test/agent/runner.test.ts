// The bounded-frequency runner: bursts coalesce, runs never overlap, runs start at least the interval apart.
import t from 'tap';
import { BoundedRunner } from '../../src/agent/runner.ts';

/** A runner whose runs take `ms` and record when they start and whether another was in flight. */
function recorded(minIntervalMs: number, ms = 0) {
  const starts: number[] = [];
  let inFlight = 0;
  let overlapped = false;
  const runner = new BoundedRunner(async () => {
    inFlight++;
    if (inFlight > 1) overlapped = true;
    starts.push(performance.now());
    await new Promise((r) => setTimeout(r, ms));
    inFlight--;
  }, minIntervalMs);
  return { runner, starts, overlapped: () => overlapped };
}

t.test('a burst of requests is one run; requests during a run make exactly one more', async (t) => {
  const { runner, starts, overlapped } = recorded(0, 20);
  for (let i = 0; i < 100; i++) runner.request();
  await new Promise((r) => setImmediate(r));
  t.equal(starts.length, 1, 'the burst started one run');
  for (let i = 0; i < 100; i++) runner.request(); // while it runs
  await runner.idle();
  t.equal(starts.length, 2, 'one more run for everything that came in meanwhile');
  t.notOk(overlapped(), 'never two runs at once');
});

t.test('a due run starts in the same turn of the event loop, without a timer', async (t) => {
  const { runner, starts } = recorded(0);
  runner.request();
  await new Promise((r) => setImmediate(r));
  t.equal(starts.length, 1, 'started by the next check phase');
  await runner.idle();
});

t.test('runs start at least the minimum interval apart', async (t) => {
  const { runner, starts, overlapped } = recorded(40);
  runner.request();
  await runner.idle();
  runner.request();
  await new Promise((r) => setImmediate(r));
  t.equal(starts.length, 1, 'the second run waits for the interval');
  await runner.idle();
  t.equal(starts.length, 2);
  // The runner re-measures when its timer fires, so not even a stale event-loop clock starts it early.
  t.ok(starts[1]! - starts[0]! >= 40, `${(starts[1]! - starts[0]!).toFixed(1)} ms apart`);
  t.notOk(overlapped());
});

t.test('stop cancels a pending run and waits for the one in flight', async (t) => {
  const { runner, starts } = recorded(1000, 10);
  runner.request();
  await new Promise((r) => setImmediate(r));
  runner.request(); // pending behind the interval
  await runner.stop();
  t.equal(starts.length, 1, 'the pending run never starts');
  runner.request();
  await new Promise((r) => setTimeout(r, 5));
  t.equal(starts.length, 1, 'a stopped runner ignores requests');

  const due = recorded(0);
  due.runner.request(); // due at once: scheduled with setImmediate
  await due.runner.stop();
  await new Promise((r) => setImmediate(r));
  t.equal(due.starts.length, 0, 'a run due at once is cancelled too');
});
