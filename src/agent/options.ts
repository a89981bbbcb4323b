// The agent's defaults, importable without loading the agent (and the Kubernetes client) itself, and the
// drop report flags' parsing (shared with `tollgate compile`). No I/O.
import type { ReportOptions, ReportRateUnit } from '../compile/desired.ts';
import { UsageError } from '../util/errors.ts';

export const DEFAULT_AGENT_OPTIONS = {
  metricsAddr: '127.0.0.1:9808',
  minSyncIntervalMs: 20,
  verifyIntervalMs: 60_000,
  watchQuietMs: 120_000,
  relistIntervalMs: 600_000,
  heapGrowthPercent: 50,
  livenessTimeoutMs: 180_000,
  stateDir: '/var/lib/tollgate',
  /** --established: what a policy change does to established connections (semantics point 16). */
  established: 'keep',
} as const;

/** --policy-usage (src/agent/usage.ts): on by default, a conntrack pass every 10 s. */
export const DEFAULT_POLICY_USAGE = { on: true, intervalMs: 10_000 } as const;

/** --policy-usage and --policy-usage-interval-ms, parsed; undefined when off. */
export function policyUsageOptions(values: {
  'policy-usage'?: string | undefined;
  'policy-usage-interval-ms'?: string | undefined;
}): { intervalMs: number } | undefined {
  const on = values['policy-usage'] ?? 'on';
  if (on !== 'on' && on !== 'off') throw new UsageError(`--policy-usage must be on or off, not '${on}'`);
  const text = values['policy-usage-interval-ms'] ?? `${DEFAULT_POLICY_USAGE.intervalMs}`;
  const ms = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
  if (!(ms >= 100))
    throw new UsageError(
      `--policy-usage-interval-ms must be a whole number of ms, at least 100, not '${text}'`,
    );
  return on === 'off' ? undefined : { intervalMs: ms };
}

export const POLICY_USAGE_FLAGS = {
  'policy-usage': { type: 'string' },
  'policy-usage-interval-ms': { type: 'string' },
} as const;

/** Usage lines for the policy usage flags, the flags padded to `width`. */
export function policyUsageUsage(width: number): string[] {
  return [
    [
      '--policy-usage=on|off',
      'count new connections per policy (tollgate_policy_connections_total, `explain --policy`; default on)',
    ],
    [
      '--policy-usage-interval-ms N',
      `how often conntrack is read for the allowed counts (default ${DEFAULT_POLICY_USAGE.intervalMs})`,
    ],
  ].flatMap(([flag, text]) =>
    flag!.length > width
      ? [`  ${flag}`, `  ${''.padEnd(width)} ${text}`]
      : [`  ${flag!.padEnd(width)} ${text}`],
  );
}

/**
 * Drop reports (see compile/desired.ts ReportOptions): on by default. nflog group 100: clear of 0-2, which
 * ulogd2's examples and most `log group` recipes use, so a node's own logging daemon keeps its groups.
 * 20/second with a burst of 5: a denial storm costs the agent at most ~20 log lines a second.
 */
export const DEFAULT_REPORT_OPTIONS = { reports: true, group: 100, rate: '20/second', burst: 5 } as const;

/** The agent's and `tollgate compile`'s drop report flags, parsed; undefined when reports are off. */
export function reportOptions(values: {
  'drop-reports'?: string | undefined;
  'drop-report-rate'?: string | undefined;
  'drop-report-burst'?: string | undefined;
  'nflog-group'?: string | undefined;
}): ReportOptions | undefined {
  const on = values['drop-reports'] ?? 'on';
  if (on !== 'on' && on !== 'off') throw new UsageError(`--drop-reports must be on or off, not '${on}'`);
  const rateText = values['drop-report-rate'] ?? DEFAULT_REPORT_OPTIONS.rate;
  const rate = /^([1-9]\d{0,8})\/(second|minute|hour|day)$/.exec(rateText);
  if (rate === null)
    throw new UsageError(
      `--drop-report-rate must be N/second, N/minute, N/hour or N/day (N ≥ 1), not '${rateText}'`,
    );
  const burstText = values['drop-report-burst'] ?? `${DEFAULT_REPORT_OPTIONS.burst}`;
  // 0 is refused: the kernel makes a packet limit's burst 0 its default of 5.
  if (!/^[1-9]\d{0,8}$/.test(burstText))
    throw new UsageError(`--drop-report-burst must be a whole number of packets from 1, not '${burstText}'`);
  const groupText = values['nflog-group'] ?? `${DEFAULT_REPORT_OPTIONS.group}`;
  const group = /^\d{1,5}$/.test(groupText) ? Number(groupText) : Number.NaN;
  if (!(group >= 0 && group <= 65535))
    throw new UsageError(`--nflog-group must be a whole number from 0 to 65535, not '${groupText}'`);
  if (on === 'off') return undefined;
  return { group, rate: Number(rate[1]), per: rate[2] as ReportRateUnit, burst: Number(burstText) };
}

/** The flags' definitions for parseCommandArgs (shared by `tollgate agent` and `tollgate compile`). */
export const REPORT_FLAGS = {
  'drop-reports': { type: 'string' },
  'drop-report-rate': { type: 'string' },
  'drop-report-burst': { type: 'string' },
  'nflog-group': { type: 'string' },
} as const;

/** Usage lines for the report flags, the flags padded to `width` (the command's own column). */
export function reportUsage(width: number): string[] {
  return [
    ['--drop-reports=on|off', 'log denied new connections through nflog (default on; see README)'],
    [
      '--drop-report-rate R',
      `the node's report limit, N/second|minute|hour|day (default ${DEFAULT_REPORT_OPTIONS.rate})`,
    ],
    [
      '--drop-report-burst N',
      `packets above the rate the limit lets through at once (default ${DEFAULT_REPORT_OPTIONS.burst})`,
    ],
    ['--nflog-group N', `the nflog group of the reports (default ${DEFAULT_REPORT_OPTIONS.group})`],
  ].map(([flag, text]) => `  ${flag!.padEnd(width)} ${text}`);
}
