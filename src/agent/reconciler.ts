// Level-triggered reconcile of one node: cluster state -> plan -> desired table -> diff against what this
// reconciler last programmed -> one atomic transaction. No watching and no timers here (the agent loop
// and the lab drive it); the kernel is reached only through a Programmer.
import { DesiredCache, type DesiredState, desiredState } from '../compile/desired.ts';
import type { DiffCounts } from '../compile/diff.ts';
import { fullTransaction } from '../compile/diff.ts';
import { type ProgramOptions, programBatches } from '../compile/program.ts';
import { compareTable } from '../compile/verify.ts';
import { ClusterIndex, type PodChanges } from '../policy/index.ts';
import { PlanCache, Planner } from '../policy/plan.ts';
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
  private programmed: DesiredState | undefined;
  /** Unchanged peer sets and chains are reused from sync to sync (only useful when the caller reuses
   *  normalized Pod objects between syncs, as the agent does). */
  private readonly planCache = new PlanCache();
  /** Kept from sync to sync and updated by identity: its memos follow the changes, not the cluster. */
  private index: ClusterIndex | undefined;
  private readonly desiredCache = new DesiredCache();

  private readonly programOptions: ProgramOptions;

  constructor(nodeName: string, programmer: Programmer, programOptions: ProgramOptions = {}) {
    this.nodeName = nodeName;
    this.programmer = programmer;
    this.programOptions = programOptions;
  }

  /** What the kernel holds according to our last successful commit (undefined before the first). */
  get current(): DesiredState | undefined {
    return this.programmed;
  }

  /**
   * Makes the node's table match `state`. The first sync (and `full`) replaces the table in one batch:
   * an old table keeps enforcing until that batch commits. If a commit fails nothing was applied, and the
   * next sync diffs against the last state that was. `podChanges` (see ClusterIndex.update) spares the
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
    try {
      if (this.index === undefined) this.index = new ClusterIndex(state);
      else this.index.update(state, options.podChanges);
      const planner = new Planner(this.index, this.planCache);
      plan = planner.planNode(this.nodeName);
      this.index.retainPeers(planner.peerKeysUsed());
      t1 = performance.now();
      next = desiredState(plan, this.desiredCache);
    } catch (error) {
      // The index may hold part of this state: the next sync rebuilds it from the whole state.
      this.index = undefined;
      throw error;
    }
    const t2 = performance.now();
    const program = programBatches(
      this.programmed === undefined || options.full
        ? { kernel: await this.programmer.readTable() }
        : { programmed: this.programmed },
      next,
      this.programOptions,
    );
    const { kind, counts } = program;
    const t3 = performance.now();
    let commit: CommitInfo | undefined;
    for (const tx of program.batches) {
      const c = await this.programmer.commit(tx);
      commit = { messages: (commit?.messages ?? 0) + c.messages, bytes: (commit?.bytes ?? 0) + c.bytes };
    }
    const t4 = performance.now();
    this.programmed = next;
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
    };
  }

  /**
   * The periodic full comparison: reads our table back through the programmer and compares it with what
   * we last programmed (see compile/verify.ts for what is ignored: handles, counters, element order). On
   * any difference (table gone, objects, elements or rules added or removed by someone else) the table is
   * replaced in one batch and read back again. Sends nothing when the table is as expected. Call it
   * between syncs, never concurrently with one.
   */
  async verify(): Promise<VerifyResult> {
    const current = this.programmed;
    if (current === undefined) return { drift: false, repaired: false, detail: 'nothing programmed yet' };
    const before = compareTable(current, await this.programmer.readTable());
    if (before.equal) return { drift: false, repaired: false };
    const detail = before.detail ?? 'differs';
    try {
      await this.programmer.commit(fullTransaction(current, { replace: true }));
    } catch (e) {
      return { drift: true, repaired: false, detail: `${detail}; repair failed: ${(e as Error).message}` };
    }
    const after = compareTable(current, await this.programmer.readTable());
    if (!after.equal)
      return {
        drift: true,
        repaired: false,
        detail: `${detail}; still differs after repair: ${after.detail}`,
      };
    return { drift: true, repaired: true, detail };
  }
}
