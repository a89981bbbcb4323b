// A bounded-frequency runner: coalesces bursts of requests into runs at least `minIntervalMs` apart and
// never runs two at once (kube-network-policies' pattern). Knows nothing of what it runs.
export class BoundedRunner {
  private readonly fn: () => Promise<void>;
  private readonly minIntervalMs: number;
  private running = false;
  private dirty = false;
  private lastStart = 0;
  private timer: NodeJS.Timeout | undefined;
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
    if (this.running || this.timer || !this.dirty || this.stopped) return;
    const wait = Math.max(0, this.lastStart + this.minIntervalMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
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
    this.timer = undefined;
    return this.running ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }
}
