// Runs --established=cut's passes off the sync loop: a sync that changed the table asks for a pass and
// never waits for one. Decides nothing itself (cut.ts does) and never touches the table.
//
// Requests coalesce: while a pass runs, any number of requests make exactly one more pass after it, which
// reads the index as it is then (the newest). A failed pass (a dump or a delete) is retried with backoff,
// so a conntrack table that cannot be read costs one attempt per backoff step, not one per sync.

import type { Logger } from 'pino';
import type { ClusterIndex } from '../policy/index.ts';
import type { ConnectionCutter } from './cut.ts';
import type { Metrics } from './metrics.ts';

const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 60_000;
const RETRY = 'retry';

export class CutWorker {
  private readonly cutter: ConnectionCutter;
  private readonly index: () => ClusterIndex | undefined;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private running = false;
  private wanted = false;
  private cause = '';
  /** Changing syncs that asked for a pass; a pass started after the n-th covers the first n. */
  private requested = 0;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    cutter: ConnectionCutter,
    index: () => ClusterIndex | undefined,
    metrics: Metrics,
    log: Logger,
  ) {
    this.cutter = cutter;
    this.index = index;
    this.metrics = metrics;
    this.log = log;
  }

  /** Asks for a pass (returns at once); one already running finishes first, then one more runs. */
  request(cause: string): void {
    if (this.stopped) return;
    this.wanted = true;
    this.cause = cause;
    if (cause !== RETRY) this.requested++;
    if (this.running) this.metrics.cutPassWaiting.set(1);
    else void this.loop();
  }

  /** Resolves when no pass runs or waits (a retry timer may still be set). Tests. */
  idle(): Promise<void> {
    return this.running ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.wanted && !this.stopped) {
        this.wanted = false;
        this.metrics.cutPassWaiting.set(0);
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        const cause = this.cause;
        const syncs = this.requested;
        const started = performance.now();
        this.metrics.cutPassStarted.set(Date.now() / 1000);
        // The cutter reads the index after its dump: the decision is made with the newest one.
        const result = await this.cutter.cut(this.index, cause, syncs);
        const ok = result !== undefined && result.failed === 0;
        this.metrics.cutPassStarted.set(0);
        this.metrics.cutPassDuration.observe((performance.now() - started) / 1000);
        this.metrics.cutPasses.inc({ result: ok ? 'ok' : 'error' });
        if (ok) this.failures = 0;
        else if (!this.stopped) this.scheduleRetry();
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private scheduleRetry(): void {
    this.failures++;
    const ms = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(this.failures - 1, 10));
    this.log.warn({ retryInMs: ms, failures: this.failures }, 'cut pass failed; retrying');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.request(RETRY), ms);
    this.retryTimer.unref();
  }
}
