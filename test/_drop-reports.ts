// Synthetic drop reports for the readers' tests (lab collection, `tollgate drops`): a report with
// overrides, and the agent's stdout line that carries it (the record form of src/nflog/report.ts).
import { type DropReport, REPORT_MESSAGE } from '../src/nflog/report.ts';

/** An ingress deny of x/b -> x/a:80/TCP on node-1 unless overridden. */
export function sampleReport(o: Partial<DropReport> = {}): DropReport {
  return {
    kind: 'deny',
    direction: 'ingress',
    node: 'node-1',
    src: { address: '10.244.2.10', pod: 'x/b' },
    dst: { address: '10.244.1.10', pod: 'x/a' },
    protocol: 'TCP',
    port: 80,
    policies: ['x/deny-a'],
    at: '2026-12-01T18:00:00.000Z',
    ...o,
  };
}

/** The agent's log line of a report, as pino writes it. */
export const reportLogLine = (report: DropReport): string =>
  JSON.stringify({ level: 30, time: Date.parse(report.at), pid: 1, msg: REPORT_MESSAGE, report });
