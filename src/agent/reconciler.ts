// Level-triggered reconcile of one node: cluster state -> plan -> desired table -> diff against what this
// reconciler last programmed (or, when that record cannot be trusted, against what the kernel lists) ->
// atomic batches in order. No watching and no timers here (the agent loop and the lab drive it); the
// kernel is reached only through a Programmer.
import {
  DesiredCache,
  type DesiredState,
  desiredState,
  quietNamespaces,
  type ReportOptions,
} from '../compile/desired.ts';
import type { DiffCounts } from '../compile/diff.ts';
import { type ProgramOptions, programBatches } from '../compile/program.ts';
import { compareTable } from '../compile/verify.ts';
import type { Transaction } from '../nft/index.ts';
import { ClusterIndex, type PodChanges } from '../policy/index.ts';
import { Memo } from '../policy/memo.ts';
import { type NodePlan, PlanCache, Planner } from '../policy/plan.ts';
import type { ClusterState, ValidationIssue } from '../policy/types.ts';
import type { CommitInfo, Programmer } from './programmer.ts';

export interface SyncResult {
  /** 'full' replaced the whole table; 'diff' changed what differed; 'none' had nothing to do. */
  kind: 'full' | 'diff' | 'none';
  counts: DiffCounts | undefined;
  commit: CommitInfo | undefined;
  pods: number;
  chains: number;
  sets: number;
  elements: number;
  issues: ValidationIssue[];
  ms: number;
  /** Where the time went, in ms: planning (index + plan), compiling, diffing, the kernel's commit. */
  phases: { plan: number; compile: number; diff: number; commit: number };
  /** What the batches were computed from: our record of the last program, or the kernel's listing. */
  from: 'programmed' | 'kernel';
  /** Set when the diff against our record failed and this sync converged from the kernel's listing
   *  instead: the kernel's error for the diff. */
  recovered?: string;
}

export interface VerifyResult {
  /** The kernel's table differed from what this reconciler last programmed (or was missing). */
  drift: boolean;
  /** A full replace batch was committed and the table read back equal afterwards. */
  repaired: boolean;
  /** What differed (and, if the repair did not take, why); undefined when there was no drift. */
  detail?: string;
}

export class NodeReconciler {
  readonly nodeName: string;
  private readonly programmer: Programmer;
  /** What the kernel holds, as far as we know for sure: a diff may start from it. Forgotten after any
   *  failed commit (a batch may have been applied in part, or the kernel's table was not what we
   *  thought: ENOENT), so that the next attempt starts from what the kernel lists. */
  private programmed: DesiredState | undefined;
  /** The last state every batch of which committed: what verify() restores while syncs fail. */
  private complete: DesiredState | undefined;
  /** Unchanged peer sets and chains are reused from sync to sync (only useful when the caller reuses
   *  normalized Pod objects between syncs, as the agent does). */
  private readonly planCache = new PlanCache();
  /** Kept from sync to sync and updated by identity: its memos follow the changes, not the cluster. */
  private index: ClusterIndex | undefined;
  /** The index the last successful sync planned from (undefined after a failed one). */
  get clusterIndex(): ClusterIndex | undefined {
    return this.index;
  }
  private readonly desiredCache: DesiredCache;
  /** The memos of index, planner and compiler (the agent's, shared with its normalizers). */
  private readonly memo: Memo;

  private readonly programOptions: ProgramOptions;
  /** The plan and cluster state of the last complete program: what drop reports are attributed with. */
  enforced: { plan: NodePlan; state: ClusterState; desired: DesiredState } | undefined;
  /** Drop report rules (undefined: none, the table of an agent run with --drop-reports=off). */
  readonly reports: ReportOptions | undefined;
  /** --established=cut: new pod TCP must start with a SYN (see desiredState's requireSyn). */
  readonly requireSyn: boolean;

  constructor(
    nodeName: string,
    programmer: Programmer,
    programOptions: ProgramOptions = {},
    memo: Memo = new Memo(),
    options: { reports?: ReportOptions; requireSyn?: boolean } = {},
  ) {
    this.nodeName = nodeName;
    this.reports = options.reports;
    this.requireSyn = options.requireSyn === true;
    this.programmer = programmer;
    this.programOptions = programOptions;
    this.memo = memo;
    this.desiredCache = new DesiredCache();
  }

  private reportsFor(state: ClusterState): { reports?: ReportOptions; requireSyn?: boolean } {
    const syn = this.requireSyn ? { requireSyn: true } : {};
    if (this.reports === undefined) return syn;
    return {
      ...syn,
      reports: { ...this.reports, quietNamespaces: quietNamespaces(state.namespaces.values()) },
    };
  }

  /** What the kernel holds according to our last successful commit (undefined before the first, and
   *  after a failed commit until a sync or verify() has found out again). */
  get current(): DesiredState | undefined {
    return this.programmed;
  }

  /** The last state that was programmed completely (kept across failures; undefined before the first). */
  get lastComplete(): DesiredState | undefined {
    return this.complete;
  }

  /**
   * Makes the node's table match `state`. The first sync (and `full`, and the first after a failed
   * commit) programs from the kernel's own listing: a replace, during which an old table keeps
   * enforcing. Later syncs diff against our record. `podChanges` (see ClusterIndex.update) spares the
   * scan of every pod; the first sync, and the one after a failure before the commit, ignore it.
   */
  async sync(
    state: ClusterState,
    options: { full?: boolean; podChanges?: PodChanges } = {},
  ): Promise<SyncResult> {
    const start = performance.now();

    let plan: ReturnType<Planner['planNode']>;
    let next: DesiredState;
    let t1: number;
    const trusted = options.full ? undefined : this.programmed;
    try {
      if (this.index === undefined) this.index = new ClusterIndex(state, this.memo);
      else this.index.update(state, options.podChanges);
      const planner = new Planner(this.index, this.planCache);
      plan = planner.planNode(this.nodeName);
      this.index.retainPeers(planner.peerKeysUsed());
      t1 = performance.now();
      // A program from the kernel's listing writes every set anyway: under the names a fresh build
      // gives them, so that the table is exactly a fresh full program (see DesiredCache.lineage).
      next = desiredState(plan, this.desiredCache, {
        fresh: trusted === undefined,
        ...this.reportsFor(state),
      });
    } catch (error) {
      // The index may hold part of this state: the next sync rebuilds it from the whole state.
      this.index = undefined;
      throw error;
    }
    const t2 = performance.now();
    let program = programBatches(
      trusted === undefined ? { kernel: await this.programmer.readTable() } : { programmed: trusted },
      next,
      this.programOptions,
    );
    let t3 = performance.now();
    let from: SyncResult['from'] = trusted === undefined ? 'kernel' : 'programmed';
    let recovered: string | undefined;
    let commit: CommitInfo | undefined;
    try {
      commit = await this.commitAll(program.batches);
    } catch (error) {
      if (trusted === undefined) throw error;
      // The kernel did not hold what we recorded (someone changed our table behind our back): start
      // again, once, from what it lists now, so that this sync converges instead of failing until a retry.
      recovered = (error as Error).message;
      next = desiredState(plan, this.desiredCache, { fresh: true, ...this.reportsFor(state) });
      program = programBatches({ kernel: await this.programmer.readTable() }, next, this.programOptions);
      from = 'kernel';
      t3 = performance.now();
      commit = await this.commitAll(program.batches);
    }
    const { kind, counts } = program;
    const t4 = performance.now();
    this.programmed = next;
    this.complete = next;
    this.enforced = { plan, state, desired: next };
    let elements = 0;
    for (const s of next.sets.values()) elements += s.elements.size;
    return {
      kind,
      counts,
      commit,
      pods: plan.pods.length,
      chains: next.chains.size,
      sets: next.sets.size,
      elements,
      issues: plan.issues,
      ms: performance.now() - start,
      phases: { plan: t1 - start, compile: t2 - t1, diff: t3 - t2, commit: t4 - t3 },
      from,
      ...(recovered === undefined ? {} : { recovered }),
    };
  }

  /**
   * Commits the batches in order. On any failure the record is forgotten: a multi-batch program may stop
   * half-way, and a rejected diff (ENOENT, EEXIST) means the kernel did not hold what we thought.
   */
  private async commitAll(batches: readonly Transaction[]): Promise<CommitInfo | undefined> {
    let commit: CommitInfo | undefined;
    try {
      for (const tx of batches) {
        const c = await this.programmer.commit(tx);
        commit = { messages: (commit?.messages ?? 0) + c.messages, bytes: (commit?.bytes ?? 0) + c.bytes };
      }
    } catch (error) {
      this.programmed = undefined;
      throw error;
    }
    return commit;
  }

  /**
   * The full comparison: reads our table back through the programmer and compares it with what we last
   * programmed completely (see compile/verify.ts for what is ignored: handles, counters, element order),
   * also while syncs fail (then it restores the last complete program, the best state we know the
   * kernel accepts). On any difference (table gone, objects, elements or rules added or removed by
   * someone else) the table is reprogrammed from the kernel's listing and read back again. Sends nothing
   * when the table is as expected, and then trusts the record again (a failed batch that changed
   * nothing costs no replace). Call it between syncs, never concurrently with one.
   */
  async verify(): Promise<VerifyResult> {
    const current = this.programmed ?? this.complete;
    if (current === undefined) return { drift: false, repaired: false, detail: 'nothing programmed yet' };
    const kernel = await this.programmer.readTable();
    const before = compareTable(current, kernel);
    if (before.equal) {
      this.programmed = current;
      return { drift: false, repaired: false };
    }
    const detail = before.detail ?? 'differs';
    try {
      await this.commitAll(programBatches({ kernel }, current, this.programOptions).batches);
    } catch (e) {
      return { drift: true, repaired: false, detail: `${detail}; repair failed: ${(e as Error).message}` };
    }
    const after = compareTable(current, await this.programmer.readTable());
    if (!after.equal) {
      this.programmed = undefined;
      return {
        drift: true,
        repaired: false,
        detail: `${detail}; still differs after repair: ${after.detail}`,
      };
    }
    this.programmed = current;
    return { drift: true, repaired: true, detail };
  }
}
