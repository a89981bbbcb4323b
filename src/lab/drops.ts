// The lab's side of `drops` steps: the drop reports in lab agents' log lines, kept per agent, and the wait
// until every line of a step matches a report of the right node. Decides nothing about what should be
// reported (that is src/scenario/drops.ts) and starts no process.
import { type DropReport, ReportFormatError, reportOfLogLine } from '../nflog/report.ts';
import {
  agentReportMatches,
  type DropExpectation,
  type DropOutcome,
  reportingNode,
  reportsAbout,
} from '../scenario/drops.ts';
import type { World } from '../scenario/world.ts';

/** Reports kept per agent: enough for any scenario; the kernel rate limit keeps a burst far below it. */
const KEPT = 20_000;
/** How often the wait looks again at what the agents logged. */
const POLL_MS = 100;
/** A report's time is the agent's; this much before a probe's step still counts as that probe's. */
const CLOCK_SLACK_MS = 1000;

/** The reports one agent logged (all its runs), and the report records it logged that did not parse. */
export class ReportLog {
  readonly reports: DropReport[] = [];
  readonly malformed: string[] = [];

  /** One stdout line of the agent; lines that are no report record are ignored. */
  add(line: string): void {
    try {
      const r = reportOfLogLine(line);
      if (r === undefined) return;
      this.reports.push(r);
      if (this.reports.length > KEPT) this.reports.splice(0, this.reports.length - KEPT);
    } catch (error) {
      if (!(error instanceof ReportFormatError)) throw error;
      if (this.malformed.length < 20) this.malformed.push(error.message);
    }
  }
}

export interface DropWaitOptions {
  /** How long to wait for the last line (already scaled for load by the caller). */
  timeoutMs: number;
  /** For tests: the clock and the pause between looks. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Waits until every line matches a report in `logs()`, or the time is up; then one outcome per line. A
 * report matches when it comes from the node that makes it and was made while one of the line's probes
 * ran or at most `timeoutMs` after (the scenario README's 5 s, scaled): a late report fails the line as
 * a missing one does. The failure explanation lists the reports about the same two ends, and any report
 * record that did not parse.
 */
export async function waitForDrops(
  world: World,
  expectations: DropExpectation[],
  logs: () => readonly ReportLog[],
  options: DropWaitOptions,
): Promise<DropOutcome[]> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? realSleep;
  // No report can still count once the last probe's allowance is over: then one look is enough.
  const lastUntil = Math.max(...expectations.flatMap((e) => e.probes.map((p) => p.until)));
  const deadline = Math.min(now() + options.timeoutMs, lastUntil + options.timeoutMs);
  const windows = (e: DropExpectation) =>
    e.probes.map((p) => ({ from: p.at - CLOCK_SLACK_MS, to: p.until + options.timeoutMs }));
  const matched = (e: DropExpectation, reports: readonly DropReport[]) =>
    windows(e).some((w) => reports.some((r) => agentReportMatches(world, e.drop, r, w)));
  const all = () => logs().flatMap((l) => l.reports);
  while (!expectations.every((e) => matched(e, all())) && now() < deadline) await sleep(POLL_MS);
  const reports = all();
  const malformed = logs().flatMap((l) => l.malformed);
  return expectations.map((e) => {
    if (matched(e, reports)) return { drop: e.drop, matched: true, explanation: undefined };
    const node = reportingNode(world, e.drop);
    const about = reportsAbout(world, e.drop, reports);
    const lines = [
      node === undefined
        ? `no node reports it: the ${e.drop.line.direction} end is not a pod`
        : `no matching report from ${node}'s agent within ${options.timeoutMs} ms of its probe`,
      about.length === 0
        ? 'no report about these two ends'
        : `reports about these two ends: ${about.join('; ')}`,
      ...malformed.map((m) => `a report record that did not parse: ${m}`),
    ];
    return { drop: e.drop, matched: false, explanation: lines.join('\n') };
  });
}
