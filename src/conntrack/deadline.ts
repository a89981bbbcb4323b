// The idle deadline of one ctnetlink request: it expires when the kernel has sent nothing for `idleMs`,
// and restarts with every message. It decides nothing about the request's answer.

/** The timer functions (injectable, so a test can move time by hand). */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Why idle and not total: a dump's length grows with the table (100k entries on a busy node take seconds
 * on a loaded machine), so any fixed total would time out every pass of a large table and nothing would
 * ever be cut. No overall bound either: the kernel sends the next chunk only after we read the last one
 * and a dump walks a table bounded by nf_conntrack_max, so it ends; what can hang is a kernel or socket
 * that stops answering, and that is exactly a silence.
 */
export class IdleDeadline {
  private handle: unknown;
  private stopped = false;
  private readonly idleMs: number;
  private readonly onExpire: () => void;
  private readonly timers: Timers;

  constructor(idleMs: number, onExpire: () => void, timers: Timers = realTimers) {
    this.idleMs = idleMs;
    this.onExpire = onExpire;
    this.timers = timers;
    this.arm();
  }

  /** Something arrived: the silence starts again. */
  touch(): void {
    if (this.stopped) return;
    this.timers.clear(this.handle);
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.timers.clear(this.handle);
  }

  private arm(): void {
    this.handle = this.timers.set(() => {
      if (this.stopped) return;
      this.stopped = true;
      this.onExpire();
    }, this.idleMs);
  }
}
