// A bounded-frequency runner: coalesces bursts of requests into runs at least `minIntervalMs` apart and
// never runs two at once (kube-network-policies' pattern). Knows nothing of what it runs.
export class BoundedRunner {
  private readonly fn: () => Promise<void>;
  private readonly minIntervalMs: number;
  private running = false;
  private dirty = false;
  private lastStart = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  /** When the oldest request not yet served by a started run arrived (for latency metrics). */
  pendingSince: number | undefined;

  constructor(fn: () => Promise<void>, minIntervalMs: number) {
    this.fn = fn;
    this.minIntervalMs = minIntervalMs;
  }

  request(): void {
    if (this.stopped) return;
    this.pendingSince ??= performance.now();
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.running || this.timer || this.immediate || !this.dirty || this.stopped) return;
    const wait = this.lastStart + this.minIntervalMs - performance.now();
    if (wait <= 0) {
      // Due now: after the events already read (they coalesce into this run), without the ~1 ms a
      // zero timeout costs.
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        void this.run();
      });
      return;
    }
    // A timer can fire up to a loop iteration early (it counts from the event loop's cached clock, which a
    // long iteration leaves behind): schedule() again measures the wait, so runs really are the interval apart.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, wait);
  }

  private async run(): Promise<void> {
    if (this.running || !this.dirty) return;
    this.running = true;
    this.dirty = false;
    this.lastStart = performance.now();
    try {
      await this.fn();
    } finally {
      this.running = false;
      if (this.dirty) this.schedule();
      else for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Resolves when no run is in flight and none is pending. */
  idle(): Promise<void> {
    if (!this.running && !this.dirty) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.dirty = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    return this.running ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }
}
