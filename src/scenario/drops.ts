// The `drops` step of scenario files: which earlier probe each report line is about, what the reference
// evaluator says such a probe reports (the model), and whether an agent's report matches a line (the lab).
// Pure: the drivers collect agents' reports and wait; nothing here reads logs or clocks.
import type { DropReport, ReportDirection, ReportKind } from '../nflog/report.ts';
import { reportLine } from '../nflog/report.ts';
import type { TierDirectionVerdict, TierVerdict } from '../policy/tiers.ts';
import { ScenarioError } from './parse.ts';
import { endpointText, type ProbeOutcome } from './probes.ts';
import type { DropLine } from './types.ts';
import type { World } from './world.ts';

/** A report the dataplane makes for one probe, as the evaluator predicts it (no node, no addresses). */
export interface ExpectedReport {
  direction: ReportDirection;
  kind: ReportKind;
  /** Sorted. */
  policies: string[];
}

/**
 * What the dataplane reports for a connection with this verdict, direction by direction as the packet
 * meets them: the source node's egress first; a denied egress drops it there, so the destination's
 * node never sees it (a connection both sides deny is reported once, as egress). An audit-only direction
 * (point 25) reports would-deny and lets the packet on. So a connection whose egress is would-deny and
 * whose ingress denies gets both reports, although its verdict (denied anyway) is not a would-deny: the
 * source node cannot know what the destination's policies say. A ClusterNetworkPolicy rule that denies
 * is named `cnp/NAME`; an Admin Accept decides before the NetworkPolicies, so no would-deny there.
 */
export function expectedReports(verdict: TierVerdict): ExpectedReport[] {
  if (verdict.reason !== 'policies') return [];
  const out: ExpectedReport[] = [];
  for (const d of [verdict.egress, verdict.ingress]) {
    if (d === undefined) continue;
    if (!d.allowed) {
      out.push({ direction: d.direction, kind: 'deny', policies: deniedBy(d) });
      break;
    }
    const np = d.networkPolicy;
    if (np?.wouldDeny && d.decidedBy !== 'Admin')
      out.push({ direction: d.direction, kind: 'would-deny', policies: [...np.auditedBy].sort() });
  }
  return out;
}

/** What a report names for a denied direction: the deciding ClusterNetworkPolicy, or the isolating policies. */
function deniedBy(d: TierDirectionVerdict): string[] {
  const cnp = d.decidedBy === 'Admin' ? d.admin : d.decidedBy === 'Baseline' ? d.baseline : undefined;
  if (cnp !== undefined) return [`cnp/${cnp.policy}`];
  return [...(d.networkPolicy?.isolatedBy ?? [])].sort();
}

/**
 * A probe an earlier step made, with when its step probed (epoch ms, from its start to its end): its
 * report is made in that time or soon after, and is told from older ones by it.
 */
export interface ProbeRecord {
  outcome: ProbeOutcome;
  at: number;
  until: number;
}

/** A `drops` line bound to the earlier probes it is about (same ends, port and protocol). */
export interface DropExpectation {
  drop: DropLine;
  probes: ProbeRecord[];
}

export interface DropOutcome {
  drop: DropLine;
  matched: boolean;
  /** Why not (what was reported instead), printed for a failure. */
  explanation: string | undefined;
}

/** Binds each line to its probes; a line no earlier probe is about is a mistake in the file. */
export function dropExpectations(lines: DropLine[], probed: readonly ProbeRecord[]): DropExpectation[] {
  return lines.map((drop) => {
    const { src, dst, port, protocol } = drop.line;
    const probes = probed.filter(
      ({ outcome: { probe } }) =>
        endpointText(probe.from) === src &&
        endpointText(probe.to) === dst &&
        probe.port === port &&
        probe.protocol === protocol,
    );
    if (probes.length === 0)
      throw new ScenarioError(
        `${drop.where}: '${drop.text}': no earlier expect or matrix step probes ${src} -> ${dst}:${port}/${protocol}`,
      );
    return { drop, probes };
  });
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function reportMatchesLine(r: ExpectedReport, drop: DropLine): boolean {
  return (
    r.direction === drop.line.direction &&
    r.kind === drop.line.kind &&
    sameSet(r.policies, drop.line.policies)
  );
}

const expectedText = (drop: DropLine, r: ExpectedReport) =>
  `${drop.line.src} -> ${drop.line.dst}:${drop.line.port}/${drop.line.protocol} ${r.direction} ${r.policies.join(',')}${r.kind === 'would-deny' ? ' would-deny' : ''}`;

/** Model mode: a line holds when the evaluator predicts its report for one of its probes. */
export function modelDrops(expectations: DropExpectation[]): DropOutcome[] {
  return expectations.map(({ drop, probes }) => {
    const matched = probes.some((p) => (p.outcome.reports ?? []).some((r) => reportMatchesLine(r, drop)));
    if (matched) return { drop, matched, explanation: undefined };
    const lines = probes.map((p) => {
      const reports = p.outcome.reports ?? [];
      const said = reports.length === 0 ? 'no report' : reports.map((r) => expectedText(drop, r)).join('; ');
      return `${p.outcome.probe.where} (${p.outcome.probe.text}): the model reports ${said}\n${p.outcome.explanation ?? ''}`;
    });
    return { drop, matched, explanation: lines.join('\n') };
  });
}

/** The node whose agent makes a line's report: ingress the destination's, egress the source's. */
export function reportingNode(world: World, drop: DropLine): string | undefined {
  const key = drop.line.direction === 'ingress' ? drop.line.dst : drop.line.src;
  const pod = world.pods.get(key);
  return pod === undefined ? undefined : world.node(pod.node).name;
}

/** The addresses a report may give for a line's endpoint that is not a pod (or a pod it did not name). */
function addressesOf(world: World, text: string): string[] {
  const [kind, name] = text.split('/') as [string, string];
  if (kind === 'host') {
    const h = world.hosts.find((x) => x.name === name);
    return h ? [h.ip, h.ip6] : [];
  }
  if (kind === 'node') {
    const n = world.nodes[Number(name) - 1];
    return n ? [n.ip4, n.ip6] : [];
  }
  const pod = world.pods.get(text);
  return pod ? [world.podIp4(pod), world.podIp6(pod)] : [];
}

function endpointMatches(world: World, text: string, e: DropReport['src']): boolean {
  if (e.pod !== undefined) return e.pod === text;
  // No pod named: only a non-pod end or a hostNetwork pod (whose address is its node's) may match.
  const pod = world.pods.get(text);
  if (pod !== undefined && !pod.hostNetwork) return false;
  return addressesOf(world, text).includes(e.address);
}

/**
 * Lab mode: does one agent report match a line (its ends, port, protocol, direction, kind, policies as a
 * set, from the right node, made within `window`, epoch ms)?
 */
export function agentReportMatches(
  world: World,
  drop: DropLine,
  r: DropReport,
  window: { from: number; to: number },
): boolean {
  const l = drop.line;
  const at = Date.parse(r.at);
  return (
    r.node === reportingNode(world, drop) &&
    at >= window.from &&
    at <= window.to &&
    r.direction === l.direction &&
    r.kind === l.kind &&
    r.protocol === l.protocol &&
    r.port === l.port &&
    sameSet(r.policies, l.policies) &&
    endpointMatches(world, l.src, r.src) &&
    endpointMatches(world, l.dst, r.dst)
  );
}

/** For a failure: the reports seen that are about the line's two ends (any node, any time), as lines. */
export function reportsAbout(world: World, drop: DropLine, reports: readonly DropReport[]): string[] {
  return reports
    .filter(
      (r) => endpointMatches(world, drop.line.src, r.src) && endpointMatches(world, drop.line.dst, r.dst),
    )
    .map((r) => `${reportLine(r)} (node ${r.node}, ${r.at})`);
}
