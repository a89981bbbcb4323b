// Where a node's transactions go: the kernel over netlink, or a fake that records them for unit tests.
// Nothing here decides what to program; see reconciler.ts.

import { TABLE } from '../compile/desired.ts';
import { commitWithRetry, listRuleset, NfnlSocket, rulesetToString, type Transaction } from '../nft/index.ts';

export interface CommitInfo {
  /** nf_tables messages in the batch (BEGIN/END not counted). */
  messages: number;
  bytes: number;
}

export interface Programmer {
  /** Commits one transaction as one atomic batch; nothing is applied if it fails. */
  commit(tx: Transaction): Promise<CommitInfo>;
  /** Our table as the kernel lists it, as nft text; undefined if the table does not exist. */
  listTable(): Promise<string | undefined>;
  close(): void;
}

export class NetlinkProgrammer implements Programmer {
  private readonly sock: NfnlSocket;
  constructor(sock: NfnlSocket = new NfnlSocket()) {
    this.sock = sock;
  }
  async commit(tx: Transaction): Promise<CommitInfo> {
    // Our transactions do not depend on the generation (they diff against what we programmed), so a
    // stale generation is simply retried with the same transaction.
    const r = await commitWithRetry(this.sock, () => tx);
    return { messages: r.messages, bytes: r.bytes };
  }
  async listTable(): Promise<string | undefined> {
    const ruleset = await listRuleset(this.sock, { family: 'inet', table: TABLE });
    if (ruleset.tables.length === 0) return undefined;
    return rulesetToString(ruleset);
  }
  close(): void {
    this.sock.close();
  }
}

/** Records transactions instead of programming them (unit tests of the reconcile logic). */
export class FakeProgrammer implements Programmer {
  readonly transactions: Transaction[] = [];
  async commit(tx: Transaction): Promise<CommitInfo> {
    if (tx.error) throw tx.error;
    this.transactions.push(tx);
    const batch = tx.encode();
    return { messages: batch.entries.length, bytes: batch.buf.length };
  }
  async listTable(): Promise<string | undefined> {
    return undefined;
  }
  close(): void {}
}
