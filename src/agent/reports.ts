// The agent's drop report listener: binds the nflog group of the report rules (compile/desired.ts
// ReportOptions), attributes each report with the last complete program (pods by address, the local pod's
// isolating policies), logs it as one `connection denied` line and counts it. Never changes the table,
// and never decides enforcement: reports that cannot be bound or attributed leave the drops as they are.

import type { Logger } from 'pino';
import { type DesiredState, REPORT_CHAINS } from '../compile/desired.ts';
import type { NflogError } from '../nflog/errors.ts';
import { NflogListener, type NflogStats } from '../nflog/listener.ts';
import type { NflogPacket } from '../nflog/packet.ts';
import {
  type DropReport,
  parsePrefix,
  REPORT_MESSAGE,
  type ReportDirection,
  type ReportEndpoint,
} from '../nflog/report.ts';
import { Counter as NftCounter, type Rule } from '../nft/index.ts';
import { parseAddress } from '../policy/address.ts';
import type { NodePlan, PodPlan } from '../policy/plan.ts';
import type { ClusterState } from '../policy/types.ts';
import type { Metrics } from './metrics.ts';

/** What reports are attributed with: the plan, state and table of the last complete program. */
export interface Enforced {
  readonly plan: NodePlan;
  readonly state: ClusterState;
  readonly desired: DesiredState;
}

/** A bound report group (the real one: NflogListener). */
export interface ReportSocket {
  readonly stats: NflogStats;
  close(): void;
}

/** Where reports come from: the kernel's nflog group, or a fake in unit tests. */
export type ReportSource = (
  group: number,
  onPacket: (p: NflogPacket, receivedAtMs: number) => void,
  /** A bad packet or a failed callback: skipped, the socket goes on. */
  onError: (e: NflogError) => void,
  /** The socket is dead (an I/O error after the bind) and already closed: nothing more comes from it. */
  onClosed: (e: NflogError) => void,
) => Promise<ReportSocket>;

export const nflogSource: ReportSource = (group, onPacket, onError, onClosed) =>
  NflogListener.open({ group, onPacket, onError, onClosed });

const PROTOCOLS: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

const addressKey = (text: string): string | undefined => {
  const a = parseAddress(text);
  return a === undefined ? undefined : `${a.family}:${a.value}`;
};

/** Addresses to pods, made once per program (reports come at most at the node's limit). */
interface Index {
  /** Every pod of the cluster with an address: "namespace/name". */
  readonly pods: Map<string, string>;
  /** The node's own pods. */
  readonly local: Map<string, PodPlan>;
  /** A pod chain -> the policies isolating the pods that use it (the prefix id's fallback). */
  readonly chains: Map<string, Set<string>>;
  readonly quiet: ReadonlySet<string>;
}

/**
 * The cluster's pods by address, shared between the indexes of programs less than a second apart: under
 * constant churn every sync is a new program, and a report per sync must not rebuild a map of 100,000
 * pods each time (a pod changed in the last second may then be shown by address only).
 */
export class PodAddresses {
  private map = new Map<string, string>();
  private pods: readonly unknown[] | undefined;
  private builtAt = Number.NEGATIVE_INFINITY;
  private readonly maxAgeMs: number;
  constructor(maxAgeMs = 1000) {
    this.maxAgeMs = maxAgeMs;
  }
  of(state: ClusterState, now = performance.now()): Map<string, string> {
    if (state.pods === this.pods || now - this.builtAt < this.maxAgeMs) return this.map;
    const map = new Map<string, string>();
    for (const p of state.pods) for (const a of p.ips) map.set(`${a.family}:${a.value}`, p.key);
    this.map = map;
    this.pods = state.pods;
    this.builtAt = now;
    return map;
  }
}

function buildIndex(e: Enforced, addresses: PodAddresses): Index {
  const pods = addresses.of(e.state);
  const local = new Map<string, PodPlan>();
  const chains = new Map<string, Set<string>>();
  for (const p of e.plan.pods) {
    for (const a of p.addresses) local.set(`${a.family}:${a.value}`, p);
    const names = e.desired.podChains.get(p.key);
    for (const d of ['ingress', 'egress'] as const) {
      const name = names?.[d];
      if (name === undefined) continue;
      const set = chains.get(name) ?? new Set<string>();
      chains.set(name, set);
      for (const k of directionPlan(p, d)?.isolatedBy ?? []) set.add(k);
    }
  }
  const quiet = new Set<string>();
  for (const ns of e.state.namespaces.values()) if (ns.dropReportsOff) quiet.add(ns.name);
  return { pods, local, chains, quiet };
}

/** The plan a pod's direction is programmed with: its enforced isolation, else its audit policies'. */
const directionPlan = (p: PodPlan, d: ReportDirection) =>
  d === 'ingress' ? (p.ingress ?? p.auditIngress) : (p.egress ?? p.auditEgress);

const namespaceOf = (podKey: string | undefined): string =>
  podKey === undefined ? '' : podKey.slice(0, podKey.indexOf('/'));

/**
 * Why a packet gave no report (counted as `tollgate_drop_reports_skipped_total{reason}`); `undecodable`
 * comes from the listener, before attribution.
 */
export type SkipReason = 'foreign' | 'headers' | 'quiet' | 'undecodable';

/**
 * One nflog packet as a DropReport: the prefix says direction, kind and chain; the local pod (the
 * destination for ingress, the source for egress) says which policies isolate it. `foreign`: another
 * rule's log (not a tollgate prefix); `headers`: no addresses copied; `quiet`: the local pod's namespace
 * opted out (its address-class chains are shared with other namespaces and may still report).
 */
export function attribute(
  p: NflogPacket,
  receivedAtMs: number,
  enforced: Enforced | undefined,
  node: string,
  cache: WeakMap<Enforced, Index> = new WeakMap(),
  addresses: PodAddresses = new PodAddresses(0),
): { report: DropReport; namespace: string } | { skip: SkipReason } {
  const prefix = p.prefix === undefined ? undefined : parsePrefix(p.prefix);
  if (prefix === undefined) return { skip: 'foreign' };
  const h = p.headers;
  if (h === undefined) return { skip: 'headers' };
  let index: Index | undefined;
  if (enforced !== undefined) {
    index = cache.get(enforced) ?? buildIndex(enforced, addresses);
    cache.set(enforced, index);
  }
  const srcKey = addressKey(h.src);
  const dstKey = addressKey(h.dst);
  const direction: ReportDirection = prefix.direction;
  const localKey = direction === 'ingress' ? dstKey : srcKey;
  const local = localKey === undefined ? undefined : index?.local.get(localKey);
  // The node's own pods come from the program itself: the cluster map may be up to a second older, and
  // a pod started within it (when denials are most likely) would be named by address, or by the pod
  // that had its address before.
  const endpoint = (address: string, key: string | undefined): ReportEndpoint => {
    const pod = key === undefined ? undefined : (index?.local.get(key)?.key ?? index?.pods.get(key));
    return pod === undefined ? { address } : { address, pod };
  };
  const localPod = local?.key ?? (localKey === undefined ? undefined : index?.pods.get(localKey));
  const namespace = namespaceOf(localPod);
  if (index?.quiet.has(namespace)) return { skip: 'quiet' };
  // The local pod's own isolation; if it is gone since the program, what isolated the pods of the chain.
  // A ClusterNetworkPolicy's deny chain names its policy (compile/tiers.ts).
  const cnp = enforced?.desired.tierDenies?.get(prefix.id);
  const policies = new Set(
    cnp !== undefined
      ? [cnp]
      : ((local && directionPlan(local, direction)?.isolatedBy) ?? index?.chains.get(prefix.id) ?? []),
  );
  const protocol = PROTOCOLS[h.protocol] ?? h.protocolName;
  const report: DropReport = {
    kind: prefix.kind,
    direction,
    node,
    src: endpoint(h.src, srcKey),
    dst: endpoint(h.dst, dstKey),
    protocol,
    ...(PROTOCOLS[h.protocol] !== undefined && h.dport !== undefined ? { port: h.dport } : {}),
    policies: [...policies].sort(),
    at: reportTime(p.kernelTimeMs, receivedAtMs),
  };
  return { report, namespace };
}

/**
 * The kernel's timestamp when it is a date (NFULA_TIMESTAMP is two u64 the decoder does not bound; a
 * date past year 275760 makes toISOString throw, which would lose the report), else the receive time.
 */
function reportTime(kernelMs: number | undefined, receivedAtMs: number): string {
  const at = new Date(kernelMs ?? receivedAtMs);
  return (Number.isNaN(at.getTime()) ? new Date(receivedAtMs) : at).toISOString();
}

export interface ReporterOptions {
  group: number;
  node: string;
  log: Logger;
  metrics: Metrics;
  /** The last complete program (undefined before the first). */
  enforced(): Enforced | undefined;
  /** The packets the node's report limit dropped unreported (suppressedPackets: the counters of
   *  REPORT_CHAINS, deny and would-deny alike). */
  readSuppressed?(): Promise<bigint | undefined>;
  source?: ReportSource;
  /** Each report as it is logged (the per-policy denied counts, usage.ts). */
  onReport?(report: DropReport): void;
  /** First retry after a failed bind, doubled up to retryMaxMs. */
  retryMs?: number;
  retryMaxMs?: number;
}

/**
 * Binds the group and keeps it bound: a failed bind (EPERM: another socket holds the group) is logged
 * once per distinct error with the group and errno, shown by status() and the bound gauge, and retried
 * with backoff. Readiness does not depend on it: reports are not enforcement (the report rules drop
 * whatever happens to the report), and an unready agent would only stall rollouts without protecting
 * anything; /readyz shows the problem in its body instead.
 */
export class DropReporter {
  private readonly o: ReporterOptions;
  private socket: ReportSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private delay: number;
  private lastError: string | undefined;
  private readonly cache = new WeakMap<Enforced, Index>();
  private readonly addresses = new PodAddresses();
  private readonly suppressed: KernelCounter;
  private listenerSeen = { lost: 0, overruns: 0, undecodable: 0 };
  private decodeLogged = false;
  /** The label sets of deniedConnections by namespace ("direction kind"), pruned by prune(). */
  private readonly series = new Map<string, Set<string>>();
  private prunedFor: Enforced | undefined;

  constructor(options: ReporterOptions) {
    this.o = options;
    this.delay = options.retryMs ?? 1000;
    this.suppressed = new KernelCounter(options.metrics.reportsSuppressed);
  }

  start(): void {
    void this.bind();
  }

  /** undefined: bound; otherwise why not (for /readyz's body). */
  get problem(): string | undefined {
    if (this.socket !== undefined || this.stopped) return undefined;
    return this.lastError ?? `nflog group ${this.o.group}: binding`;
  }

  private async bind(): Promise<void> {
    const source = this.o.source ?? nflogSource;
    // Set when this bind's socket dies, also before the source has resolved with it.
    let dead: NflogError | undefined;
    let socket: ReportSocket | undefined;
    const onClosed = (e: NflogError): void => {
      if (dead !== undefined) return;
      dead = e;
      if (socket !== undefined && this.socket === socket) this.onSocketDead(e);
    };
    try {
      socket = await source(
        this.o.group,
        (p, at) => this.onPacket(p, at),
        (e) => this.onListenerError(e),
        onClosed,
      );
      if (this.stopped) {
        socket.close();
        return;
      }
      if (dead !== undefined) throw dead;
      this.socket = socket;
      this.lastError = undefined;
      this.delay = this.o.retryMs ?? 1000;
      this.o.metrics.reportsBound.set(1);
      this.o.log.info({ group: this.o.group }, 'drop reports: listening');
    } catch (error) {
      const e = error as Error & Partial<Pick<NflogError, 'errnoName' | 'code'>>;
      this.o.metrics.reportBindFailures.inc();
      this.o.metrics.reportsBound.set(0);
      // A rejection that is no Error still gets its one log line (undefined would equal lastError).
      const text = error instanceof Error ? e.message : String(error);
      if (text !== this.lastError)
        this.o.log.error(
          { group: this.o.group, errno: e.errnoName, code: e.code, retryMs: this.delay },
          `drop reports: cannot bind nflog group ${this.o.group} (enforcement is unaffected; retrying): ${text}`,
        );
      this.lastError = text;
      this.retry();
    }
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.bind(), this.delay);
    this.timer.unref();
    this.delay = Math.min(this.delay * 2, this.o.retryMaxMs ?? 60_000);
  }

  /**
   * The bound socket failed (the listener closed it): dropped, shown as not listening (gauge, /readyz
   * detail) and bound again after the bind's backoff step (one per retryMs at most, so a socket that
   * dies at once after each bind does not spin); the same error is logged once.
   */
  private onSocketDead(e: NflogError): void {
    if (this.stopped) return;
    this.socket?.close();
    this.socket = undefined;
    this.o.metrics.reportsBound.set(0);
    if (e.message !== this.lastError)
      this.o.log.error(
        { group: this.o.group, errno: e.errnoName, code: e.code, retryMs: this.delay },
        `drop reports: the nflog socket failed (enforcement is unaffected; binding again): ${e.message}`,
      );
    this.lastError = e.message;
    this.retry();
  }

  /**
   * A report that did not decode comes again at the report rate (the same kernel, the same layout):
   * counted each time, logged once. A callback that threw is logged each time (a bug of ours). A dead
   * socket comes through onSocketDead instead.
   */
  private onListenerError(e: NflogError): void {
    if (e.code === 'E_NFLOG_DECODE') {
      this.o.metrics.reportsSkipped.inc({ reason: 'undecodable' });
      if (this.decodeLogged) return;
      this.decodeLogged = true;
    }
    this.o.log.warn(
      { err: e.message, code: e.code, group: this.o.group },
      e.code === 'E_NFLOG_DECODE'
        ? 'drop report error (logged once; counted as tollgate_drop_reports_skipped_total{reason="undecodable"})'
        : 'drop report error',
    );
  }

  private onPacket(p: NflogPacket, receivedAtMs: number): void {
    const r = attribute(p, receivedAtMs, this.o.enforced(), this.o.node, this.cache, this.addresses);
    if ('skip' in r) {
      this.o.metrics.reportsSkipped.inc({ reason: r.skip });
      return;
    }
    this.prune(this.o.enforced());
    this.o.metrics.deniedConnections.inc({
      direction: r.report.direction,
      namespace: r.namespace,
      kind: r.report.kind,
    });
    const keys = this.series.get(r.namespace) ?? new Set<string>();
    this.series.set(r.namespace, keys);
    keys.add(`${r.report.direction} ${r.report.kind}`);
    this.o.log.info({ report: r.report }, REPORT_MESSAGE);
    this.o.onReport?.(r.report);
  }

  /**
   * Drops the deniedConnections series of namespaces the program no longer has: the namespace label is
   * bounded by the live namespaces, not by every namespace that ever had a denial (CI clusters make
   * and delete thousands). Once per program.
   */
  private prune(e: Enforced | undefined): void {
    if (e === undefined || e === this.prunedFor) return;
    this.prunedFor = e;
    for (const [namespace, keys] of this.series) {
      if (namespace === '' || e.state.namespaces.has(namespace)) continue;
      for (const key of keys) {
        const [direction, kind] = key.split(' ') as [string, string];
        this.o.metrics.deniedConnections.remove({ direction, namespace, kind });
      }
      this.series.delete(namespace);
    }
  }

  /** Brings the counters read from elsewhere up to date (called before /metrics is served). */
  async refreshMetrics(): Promise<void> {
    this.prune(this.o.enforced());
    const s = this.socket?.stats;
    if (s !== undefined) {
      const seen = this.listenerSeen;
      const lost = s.lost + s.overruns;
      if (lost > seen.lost + seen.overruns) this.o.metrics.reportsLost.inc(lost - seen.lost - seen.overruns);
      this.listenerSeen = { lost: s.lost, overruns: s.overruns, undecodable: s.undecodable };
    }
    this.suppressed.update(await this.o.readSuppressed?.().catch(() => undefined));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close();
    this.socket = undefined;
    this.o.metrics.reportsBound.set(0);
  }
}

/** Reads one chain's rules with their counters (Programmer.readChainRules; undefined: no such chain). */
export type ChainReader = (chain: string) => Promise<readonly Rule[] | undefined>;

/**
 * The packets counted by the rules of `chains` that `pick` selects, summed; undefined when none of the
 * chains exists (nothing to count yet, or the programmer cannot read).
 */
export async function chainPackets(
  read: ChainReader,
  chains: readonly string[],
  pick: (r: Rule) => boolean = () => true,
): Promise<bigint | undefined> {
  let total: bigint | undefined;
  for (const chain of chains) {
    const rules = await read(chain);
    if (rules === undefined) continue;
    total ??= 0n;
    for (const r of rules) {
      if (!pick(r)) continue;
      for (const e of r.exprs) if (e instanceof NftCounter) total += e.packets;
    }
  }
  return total;
}

/** The report limit's suppressed reports: the counters of the deny gate and both audit chains' gates. */
export const suppressedPackets = (read: ChainReader): Promise<bigint | undefined> =>
  chainPackets(read, REPORT_CHAINS);

/**
 * A kernel rule counter followed by a Prometheus counter: each reading adds what the kernel counted
 * since the one before. A rewritten rule (a new limit, a full program) starts again at 0: a reading below
 * the last is all new.
 */
export class KernelCounter {
  private last: bigint | undefined;
  private readonly target: { inc(n: number): void };
  constructor(target: { inc(n: number): void }) {
    this.target = target;
  }
  update(now: bigint | undefined): void {
    if (now === undefined) return;
    const last = this.last;
    const delta = last === undefined ? now : now >= last ? now - last : now;
    if (delta > 0n) this.target.inc(Number(delta));
    this.last = now;
  }
}
