// Per-policy use (issue 18): how many new connections each policy's rules allowed and each isolation
// denied, as tollgate_policy_connections_total and one `policy usage` log line per pass (what `tollgate
// explain --policy` reads through the API). Counts only: never changes the table or conntrack, and never
// delays a sync (its passes run on their own timer, one at a time, off the sync loop).
//
// Why not the kernel's rule counters: a pod chain is compiled per plan (shared by every pod with the same
// allowed peers) and its peer sets are the union of every policy selecting the pod, so a rule's counter
// cannot be split by policy; a rule (or counter) per policy would make the per-packet cost grow with the
// number of policies (issue 14 forbids it).
//
// Allowed: sampled from conntrack. Every --policy-usage-interval-ms the node's table is dumped (only entries
// with a local pod at one end are decoded, as for --established=cut), the entries not in the previous
// pass (kernel id and original tuple; the state is one key per local entry, bounded by the table) are
// read as cut.ts reads them, and for each direction this node enforces (egress of a local source pod,
// ingress of a local destination pod) every policy whose rules allow it gets +1: all the NetworkPolicies
// that allow it (point 5: a union, each is in use), or the ClusterNetworkPolicy whose Accept decided
// (`cnp/NAME`). Not counted: connections allowed because nothing isolates the pod, entries the current
// policies deny (a change since; --established=cut deletes them), audit-mode allows.
// What it misses: an entry created and gone within one interval. TCP entries stay 120 s in TIME_WAIT after
// a close and UDP ones 30 s after the last packet, so at the default 10 s what is lost is a connection
// refused or reset at once (its entry lives 10 s in CLOSE), one whose entry a full table evicted, and
// anything between the agent's last pass and its exit. It is judged with the index of the pass, up to one
// interval after the connection opened. The first pass of an agent counts every live entry (the counters
// start with the process). Considered and left: conntrack events (NEW on a multicast group) would see
// every connection, but cost a message per connection on a busy node and drop under load (ENOBUFS) exactly
// when counts matter; a sampled dump costs the same whatever the connection rate.
//
// Denied and would-deny: from the drop reports (reports.ts), +1 for each policy a report names (the
// isolating policies, the audit ones for would-deny, or cnp/NAME). Denials over the node's report limit
// have no report and are not attributed: tollgate_drop_reports_suppressed_total counts them per node.
//
// The log: a line per pass only with the counts that changed (cumulative, capped, the rest next time), and
// every USAGE_REFRESH_MS all of them again, so a reader needs only a window of that length (the CLI takes
// each agent's newest counts and sums the nodes; an agent restart starts its counts again at 0).

import type { Logger } from 'pino';
import type { CtEntry } from '../conntrack/entry.ts';
import type { DropReport } from '../nflog/report.ts';
import { type Address, formatAddress } from '../policy/address.ts';
import { type Endpoint, type Flow, policiesAllowing } from '../policy/evaluate.ts';
import type { ClusterIndex } from '../policy/index.ts';
import { evaluateTiers, type TierDirectionVerdict } from '../policy/tiers.ts';
import type { Direction, Pod } from '../policy/types.ts';
import { type ConntrackAccess, entryFlow, localAddresses } from './cut.ts';
import type { Metrics } from './metrics.ts';

/** The log line of each pass that changed a count (`tollgate explain --policy` reads it). */
export const USAGE_MESSAGE = 'policy usage';
/** Records in one line at most; the others stay due and come in the next lines ("more" says how many). */
export const USAGE_LOG_CAP = 200;
/**
 * Every policy's counts are logged again this often, changed or not: a reader of the logs over a window at
 * least this long (`explain --policy`'s default --since is 1 h) finds every policy's newest counts.
 */
export const USAGE_REFRESH_MS = 30 * 60_000;

/** Distinct attribution failures logged per agent at most (a bug repeating per entry must not flood the log). */
const UNATTRIBUTED_LOGGED = 20;
/** New entries attributed between two turns of the event loop. */
const YIELD_EVERY = 500;

export type UsageVerdict = 'allowed' | 'denied' | 'would-deny';
const VERDICTS: readonly UsageVerdict[] = ['allowed', 'denied', 'would-deny'];

/** One policy's counts in one direction, cumulative since the agent started (as logged). */
export interface UsageRecord {
  /** namespace/name, or cnp/NAME for a ClusterNetworkPolicy. */
  policy: string;
  direction: Direction;
  allowed: number;
  denied: number;
  wouldDeny: number;
}

export interface PolicyUse {
  policy: string;
  direction: Direction;
}

/** What one direction's verdict says was used: the allowing NetworkPolicies or the deciding CNP rule. */
function usedBy(
  index: ClusterIndex,
  d: TierDirectionVerdict,
  subject: Pod,
  other: Endpoint,
  flow: Flow,
): string[] {
  if (!d.allowed) return [];
  if (d.decidedBy === 'Admin' && d.admin) return [`cnp/${d.admin.policy}`];
  if (d.decidedBy === 'Baseline' && d.baseline) return [`cnp/${d.baseline.policy}`];
  if (d.decidedBy === 'NetworkPolicy') return policiesAllowing(index, d.direction, subject, other, flow);
  return [];
}

/** The policies that allow one entry in the directions this node enforces (none: not ours to count). */
export function policiesUsed(index: ClusterIndex, nodeName: string, entry: CtEntry): PolicyUse[] {
  const flow = entryFlow(index, entry);
  const { from, to } = flow;
  const egress = from.kind === 'pod' && from.pod.nodeName === nodeName ? from.pod : undefined;
  const ingress = to.kind === 'pod' && to.pod.nodeName === nodeName ? to.pod : undefined;
  if (!egress && !ingress) return [];
  const v = evaluateTiers(index, flow);
  const out: PolicyUse[] = [];
  if (egress && v.egress)
    for (const policy of usedBy(index, v.egress, egress, to, flow)) out.push({ policy, direction: 'egress' });
  if (ingress && v.ingress)
    for (const policy of usedBy(index, v.ingress, ingress, from, flow))
      out.push({ policy, direction: 'ingress' });
  return out;
}

/**
 * One entry's identity across passes: the kernel's id and the original tuple (an id alone may be reused),
 * as a 53-bit hash. A string key costs ~300 B an entry in the set and a number ~40 B (measured with 100k:
 * 30 MB against 4 MB, twice that while a pass builds the next set); two live entries that collide make one
 * connection go uncounted, with odds of about n²/2⁵⁴ per pass (10⁻⁶ at 100k entries).
 */
function entryKey(e: CtEntry): number {
  const t = e.orig;
  const text = `${e.id ?? ''} ${e.zone} ${t.protocol} ${t.src.value} ${t.sport ?? t.icmpId ?? ''} ${t.dst.value} ${t.dport ?? ''}`;
  // Two independent 32-bit FNV-1a style mixes, 32 + 21 bits of them kept (a double holds 53 exactly).
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 2 ** 21 + (b >>> 11);
}

/** An address of an entry that may be malformed (for the log of one that could not be judged). */
const at = (a: Address | undefined) => (a === undefined ? '?' : formatAddress(a));

/** The metric's labels of a policy key: ClusterNetworkPolicies are cluster-scoped (namespace ""). */
function labelsOf(policy: string): { namespace: string; policy: string } {
  if (policy.startsWith('cnp/')) return { namespace: '', policy };
  const slash = policy.indexOf('/');
  return { namespace: policy.slice(0, slash), policy: policy.slice(slash + 1) };
}

export interface UsagePass {
  /** Local entries decoded. */
  examined: number;
  /** Of those, not in the previous pass. */
  new: number;
  /** Allowed counts added (a connection can count for several policies and both directions). */
  counted: number;
  /** New entries that could not be judged (logged once per distinct failure, counted for no policy). */
  unattributed: number;
}

export interface UsageOptions {
  nodeName: string;
  log: Logger;
  metrics: Metrics;
  /** The newest index (undefined before the first sync: the pass waits). */
  index(): ClusterIndex | undefined;
  /** Opens the node's conntrack table (on the first pass, and again after a failed one); undefined: no allowed counts. */
  conntrack: (() => ConntrackAccess) | undefined;
  intervalMs: number;
  /** Tests shorten it (default USAGE_REFRESH_MS). */
  refreshMs?: number;
}

export class PolicyUsage {
  private readonly o: UsageOptions;
  private seen = new Set<number>();
  /** `policy direction` -> counts. */
  private readonly totals = new Map<string, UsageRecord>();
  /** Keys whose counts changed since they were last logged, oldest first. */
  private readonly due = new Set<string>();
  private access: ConntrackAccess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<UsagePass | undefined> | undefined;
  private stopped = false;
  private lastError: string | undefined;
  /** Attribution failures already logged (bounded: a new one past the cap is not logged again). */
  private readonly unattributedSeen = new Set<string>();
  private refreshedAt = performance.now();

  constructor(options: UsageOptions) {
    this.o = options;
  }

  start(): void {
    if (this.o.conntrack === undefined)
      this.o.log.warn('policy usage: no access to conntrack, only denied connections are counted');
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.access?.close?.();
    this.access = undefined;
  }

  /** undefined: the last pass read conntrack (or none ran yet); otherwise why not (for /readyz's body). */
  get problem(): string | undefined {
    return this.lastError;
  }

  /** The counts (tests, and what the log lines add up to). */
  records(): UsageRecord[] {
    return [...this.totals.values()].map((r) => ({ ...r }));
  }

  /** A drop report: +1 denied (would-deny) for each policy it names; logged with the next pass. */
  denied(report: DropReport): void {
    const verdict: UsageVerdict = report.kind === 'would-deny' ? 'would-deny' : 'denied';
    for (const policy of report.policies) this.add(policy, report.direction, verdict);
  }

  /** One pass now (a pass already running is awaited instead). Undefined: no index yet, or it failed. */
  pass(): Promise<UsagePass | undefined> {
    this.running ??= this.runPass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.pass().finally(() => this.schedule());
    }, this.o.intervalMs);
    this.timer.unref();
  }

  private add(policy: string, direction: Direction, verdict: UsageVerdict, n = 1): void {
    const key = `${policy} ${direction}`;
    let r = this.totals.get(key);
    if (r === undefined) {
      r = { policy, direction, allowed: 0, denied: 0, wouldDeny: 0 };
      this.totals.set(key, r);
    }
    if (verdict === 'allowed') r.allowed += n;
    else if (verdict === 'denied') r.denied += n;
    else r.wouldDeny += n;
    this.due.add(key);
    this.o.metrics.policyConnections.inc({ ...labelsOf(policy), direction, verdict }, n);
  }

  private async runPass(): Promise<UsagePass | undefined> {
    const index = this.o.index();
    if (index === undefined || this.stopped) return undefined;
    const started = performance.now();
    let result: UsagePass | undefined = { examined: 0, new: 0, counted: 0, unattributed: 0 };
    if (this.o.conntrack !== undefined) {
      try {
        this.access ??= this.o.conntrack();
        const dump = await this.access.dump(undefined, localAddresses(index, this.o.nodeName));
        // The newest index judges (a sync may have run during the dump).
        let now = this.o.index() ?? index;
        const seen = new Set<number>();
        for (const e of dump.entries) {
          const key = entryKey(e);
          seen.add(key);
          if (this.seen.has(key)) continue;
          result.new++;
          // ~12 µs an entry: a node with thousands of new connections per pass lets syncs run between.
          if (result.new % YIELD_EVERY === 0) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            now = this.o.index() ?? now;
          }
          // One entry that cannot be judged must not undo the pass: its key is seen (it is never counted
          // twice), the others still count, and it is logged once per distinct failure.
          let uses: PolicyUse[];
          try {
            uses = policiesUsed(now, this.o.nodeName, e);
          } catch (error) {
            result.unattributed++;
            this.unattributed(e, error);
            continue;
          }
          for (const use of uses) {
            this.add(use.policy, use.direction, 'allowed');
            result.counted++;
          }
        }
        result.examined = dump.entries.length;
        this.seen = seen;
        this.lastError = undefined;
        this.o.metrics.policyUsagePasses.inc({ result: 'ok' });
      } catch (error) {
        // stop() closed the socket under a running dump: nothing failed.
        if (this.stopped) return undefined;
        // The next interval retries on a new socket; the same failure is logged once.
        this.access?.close?.();
        this.access = undefined;
        this.o.metrics.policyUsagePasses.inc({ result: 'error' });
        const text = (error as Error).message;
        if (text !== this.lastError)
          this.o.log.error(
            { err: text, retryInMs: this.o.intervalMs },
            'policy usage: cannot read the conntrack table; allowed connections are not counted until it can',
          );
        this.lastError = text;
        result = undefined;
      }
    }
    this.o.metrics.policyUsagePassDuration.observe((performance.now() - started) / 1000);
    this.prune(this.o.index() ?? index);
    if (performance.now() - this.refreshedAt >= (this.o.refreshMs ?? USAGE_REFRESH_MS)) {
      this.refreshedAt = performance.now();
      for (const key of this.totals.keys()) this.due.add(key);
    }
    this.logDue(result);
    return result;
  }

  private unattributed(e: CtEntry, error: unknown): void {
    const text = error instanceof Error ? error.message : String(error);
    if (this.unattributedSeen.has(text) || this.unattributedSeen.size >= UNATTRIBUTED_LOGGED) return;
    this.unattributedSeen.add(text);
    const t = e.orig;
    this.o.log.error(
      {
        err: text,
        entry: `${t.protocol} ${at(t.src)}:${t.sport ?? ''} -> ${at(t.dst)}:${t.dport ?? ''}`,
      },
      'policy usage: cannot judge a conntrack entry; it counts for no policy',
    );
  }

  /** Drops the counts and series of policies the cluster no longer has (the metric stays bounded). */
  private prune(index: ClusterIndex): void {
    const live = new Set(index.state.policies.map((p) => p.key));
    for (const c of index.state.clusterPolicies ?? []) live.add(`cnp/${c.key}`);
    for (const [key, r] of this.totals) {
      if (live.has(r.policy)) continue;
      for (const verdict of VERDICTS)
        this.o.metrics.policyConnections.remove({ ...labelsOf(r.policy), direction: r.direction, verdict });
      this.totals.delete(key);
      this.due.delete(key);
    }
  }

  /** One line with the changed counts (cumulative), at most USAGE_LOG_CAP records; nothing when none changed. */
  private logDue(pass: UsagePass | undefined): void {
    if (this.due.size === 0) return;
    const usage: UsageRecord[] = [];
    for (const key of this.due) {
      if (usage.length >= USAGE_LOG_CAP) break;
      const r = this.totals.get(key);
      if (r !== undefined) usage.push({ ...r });
      this.due.delete(key);
    }
    this.o.log.info({ usage, more: this.due.size, ...(pass ? { pass } : {}) }, USAGE_MESSAGE);
  }
}
