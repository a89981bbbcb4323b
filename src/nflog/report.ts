// The drop report as the agent logs it and every reader (`tollgate drops`, the lab, scenario steps) parses
// it: the kernel rule's log prefix that attributes a report, the JSON log record, and the one-line text
// of scenario files. Values and texts only: no socket, no store, no attribution lookups.

import { TollgateError } from '../util/errors.ts';

export type ReportKind = 'deny' | 'would-deny';
export type ReportDirection = 'ingress' | 'egress';

/** code E_REPORT_FORMAT: a prefix, log record or report line that is not in the documented form. */
export class ReportFormatError extends TollgateError<'E_REPORT_FORMAT'> {
  readonly text: string;
  constructor(text: string, reason: string) {
    super('E_REPORT_FORMAT', `drop report ${JSON.stringify(text.slice(0, 200))}: ${reason}`);
    this.text = text;
  }
}

/** One end of a denied connection: its address, and the pod that holds it when the agent knows one. */
export interface ReportEndpoint {
  readonly address: string;
  /** "namespace/name" of the pod with this address, if any. */
  readonly pod?: string;
}

/** One denied (or, for audit-mode policies, would-be denied) new connection, as the agent logs it. */
export interface DropReport {
  readonly kind: ReportKind;
  readonly direction: ReportDirection;
  /** The node whose agent saw it (ingress: the destination's node, egress: the source's). */
  readonly node: string;
  readonly src: ReportEndpoint;
  readonly dst: ReportEndpoint;
  /** "TCP", "UDP", "SCTP", or the nft name of another protocol ("icmp", "ipv6-icmp", a number). */
  readonly protocol: string;
  /** Destination port (TCP, UDP, SCTP). */
  readonly port?: number;
  /** What denied it: isolating NetworkPolicies as "namespace/name", a ClusterNetworkPolicy as "cnp/NAME". */
  readonly policies: readonly string[];
  /** When the kernel logged it (ISO 8601). */
  readonly at: string;
}

/** The message of the agent's log record that carries a report in its `report` field. */
export const REPORT_MESSAGE = 'connection denied';

/**
 * The log prefix of a report rule: `tg:<i|e>:<d|w>:<id>`, direction, kind (deny / would-deny) and the
 * compiled chain or rule id the agent maps back to policies. Short on purpose: the kernel allows 127 bytes.
 */
export interface ReportPrefix {
  readonly direction: ReportDirection;
  readonly kind: ReportKind;
  readonly id: string;
}

const PREFIX = /^tg:([ie]):([dw]):([A-Za-z0-9._/-]{1,100})$/;

export function formatPrefix(p: ReportPrefix): string {
  const text = `tg:${p.direction === 'ingress' ? 'i' : 'e'}:${p.kind === 'deny' ? 'd' : 'w'}:${p.id}`;
  if (!PREFIX.test(text))
    throw new ReportFormatError(text, 'the id must be 1-100 characters of [A-Za-z0-9._/-]');
  return text;
}

/** The prefix's parts, or undefined for a log prefix that is not a tollgate report's (another rule's). */
export function parsePrefix(text: string): ReportPrefix | undefined {
  const m = PREFIX.exec(text);
  if (m === null) return undefined;
  return {
    direction: m[1] === 'i' ? 'ingress' : 'egress',
    kind: m[2] === 'd' ? 'deny' : 'would-deny',
    id: m[3]!,
  };
}

/** A pod, or an address (IPv6 in brackets, so that a port can follow it). */
const endpointText = (e: ReportEndpoint): string =>
  e.pod ?? (e.address.includes(':') ? `[${e.address}]` : e.address);

/**
 * The scenario-file form (../shared/scenarios/README.md, "Denied connections in the log"):
 * `x/b -> x/a:80/TCP ingress x/deny-a[,x/other] [would-deny]`; endpoints are pods or addresses; policies
 * sorted. Lab and model both compare in this form, the policies as a set.
 */
export function reportLine(r: DropReport): string {
  const port = r.port === undefined ? '' : `:${r.port}`;
  const kind = r.kind === 'would-deny' ? ' would-deny' : '';
  return `${endpointText(r.src)} -> ${endpointText(r.dst)}${port}/${r.protocol} ${r.direction} ${[...r.policies].sort().join(',')}${kind}`;
}

/** A scenario `drops` line, parsed; policies sorted so that lines compare as sets. */
export interface ReportLine {
  readonly src: string;
  readonly dst: string;
  readonly port: number | undefined;
  readonly protocol: string;
  readonly direction: ReportDirection;
  readonly policies: readonly string[];
  readonly kind: ReportKind;
}

const LINE =
  /^(\S+) -> (\[[0-9a-fA-F:.]+\]|\S+?)(?::(\d+))?\/([A-Za-z0-9-]+) (ingress|egress) (\S+)(?: (would-deny))?$/;
const unbracket = (s: string): string => (s.startsWith('[') ? s.slice(1, -1) : s);

export function parseReportLine(text: string): ReportLine {
  const m = LINE.exec(text.trim().replace(/\s+/g, ' '));
  if (m === null)
    throw new ReportFormatError(
      text,
      'expected "SRC -> DST:PORT/PROTO ingress|egress POLICY[,POLICY] [would-deny]"',
    );
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535))
    throw new ReportFormatError(text, `port ${port} is not 1-65535`);
  const policies = m[6]!.split(',').filter((p) => p !== '');
  if (policies.length === 0) throw new ReportFormatError(text, 'names no policy');
  return {
    src: unbracket(m[1]!),
    dst: unbracket(m[2]!),
    port,
    protocol: m[4]!,
    direction: m[5] as ReportDirection,
    policies: [...policies].sort(),
    kind: m[7] === undefined ? 'deny' : 'would-deny',
  };
}

/** The report in an agent log record (one JSON line), or undefined when the line is not a report. */
export function reportOfLogLine(line: string): DropReport | undefined {
  if (!line.includes(REPORT_MESSAGE)) return undefined;
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = (rec as { msg?: unknown; report?: unknown }).report;
  if ((rec as { msg?: unknown }).msg !== REPORT_MESSAGE || typeof r !== 'object' || r === null)
    return undefined;
  const o = r as Record<string, unknown>;
  const ok =
    (o.kind === 'deny' || o.kind === 'would-deny') &&
    (o.direction === 'ingress' || o.direction === 'egress') &&
    typeof o.node === 'string' &&
    typeof o.protocol === 'string' &&
    Array.isArray(o.policies) &&
    typeof o.at === 'string' &&
    isEndpoint(o.src) &&
    isEndpoint(o.dst);
  if (!ok)
    throw new ReportFormatError(
      line,
      'a report record lacks kind, direction, node, src, dst, protocol, policies or at',
    );
  return o as unknown as DropReport;
}

function isEndpoint(v: unknown): v is ReportEndpoint {
  return typeof v === 'object' && v !== null && typeof (v as { address?: unknown }).address === 'string';
}
