// The idle deadline of ctnetlink requests (src/conntrack/deadline.ts), with a clock moved by hand.

import t from 'tap';
import { IdleDeadline, type Timers } from '../../src/conntrack/deadline.ts';

/** A hand-moved clock: timers fire only inside advance(). */
function manualClock(): Timers & { advance(ms: number): void } {
  let now = 0;
  let next = 1;
  const due = new Map<number, { at: number; fn: () => void }>();
  return {
    set(fn, ms) {
      const id = next++;
      due.set(id, { at: now + ms, fn });
      return id;
    },
    clear(h) {
      due.delete(h as number);
    },
    advance(ms) {
      now += ms;
      for (const [id, d] of [...due]) {
        if (d.at > now) continue;
        due.delete(id);
        d.fn();
      }
    },
  };
}

t.test('a dump that keeps arriving outlives the limit in total; a silence ends it', async (t) => {
  const clock = manualClock();
  let expired = 0;
  const d = new IdleDeadline(10_000, () => expired++, clock);
  // 60 s of dump, a chunk every 5 s: a fixed 10 s total would have failed it after two chunks.
  for (let i = 0; i < 12; i++) {
    clock.advance(5_000);
    d.touch();
  }
  t.equal(expired, 0, 'never silent for 10 s');
  clock.advance(9_999);
  t.equal(expired, 0);
  clock.advance(1);
  t.equal(expired, 1, 'expires after 10 s without a message');
  d.touch();
  clock.advance(20_000);
  t.equal(expired, 1, 'expires once; a late message does not rearm it');
});

t.test('a finished request never expires', async (t) => {
  const clock = manualClock();
  let expired = 0;
  const d = new IdleDeadline(10_000, () => expired++, clock);
  clock.advance(3_000);
  d.stop();
  d.touch();
  clock.advance(60_000);
  t.equal(expired, 0);
});
