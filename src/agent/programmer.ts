// Where a node's transactions go: an nft connection, the kernel over netlink (NetlinkProgrammer) or the
// in-memory FakeNft for unit tests. Nothing here decides what to program; see reconciler.ts.

import { TABLE } from '../compile/desired.ts';
import {
  commitWithRetry,
  NetlinkConnection,
  NfnlSocket,
  type NftConnection,
  type Rule,
  type Ruleset,
  rulesetToString,
  type Transaction,
} from '../nft/index.ts';
import { isNotFound } from '../util/errors.ts';

export interface CommitInfo {
  /** nf_tables messages in the batch (BEGIN/END not counted). */
  messages: number;
  bytes: number;
  /** The ruleset generation the committed batch was built against and the one right after it (only a
   *  programmer with a kernel knows them): another process committed in between when after > before+1. */
  generations?: { before: number; after: number; attempts: number };
}

export interface Programmer {
  /** Commits one transaction as one atomic batch; nothing is applied if it fails. */
  commit(tx: Transaction): Promise<CommitInfo>;
  /** Our table as the kernel lists it, as nft text; undefined if the table does not exist. */
  listTable(): Promise<string | undefined>;
  /** Our table read back as typed objects (with handles and counters); undefined if it does not exist. */
  readTable(): Promise<Ruleset | undefined>;
  /** One chain's rules of our table, with their counters (undefined: no such chain, or not supported). */
  readChainRules?(chain: string): Promise<Rule[] | undefined>;
  /** The netlink port id our commits come from (their change notifications carry it); undefined when
   *  the programmer has no socket. */
  readonly portId?: number | undefined;
  /** The kernel's ruleset generation (bumped by every committed batch of anyone). */
  generation?(): Promise<number>;
  close(): void;
}

/** A Programmer over any nft connection: the kernel's, or a FakeNft in tests. */
export class NftProgrammer implements Programmer {
  readonly conn: NftConnection;
  constructor(conn: NftConnection) {
    this.conn = conn;
  }
  get portId(): number | undefined {
    return this.conn.portId;
  }
  async commit(tx: Transaction): Promise<CommitInfo> {
    // Our transactions do not depend on the generation (they diff against what we programmed), so a
    // stale generation is simply retried with the same transaction.
    let before = -1;
    const r = await commitWithRetry(this.conn, (genid) => {
      before = genid;
      return tx;
    });
    return {
      messages: r.messages,
      bytes: r.bytes,
      generations: { before, after: r.genid, attempts: r.attempts },
    };
  }
  generation(): Promise<number> {
    return this.conn.getGeneration();
  }
  async readChainRules(chain: string): Promise<Rule[] | undefined> {
    if (this.conn.listRules === undefined) return undefined;
    try {
      return await this.conn.listRules({ family: 'inet', table: TABLE, chain });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }
  async listTable(): Promise<string | undefined> {
    const ruleset = await this.readTable();
    return ruleset === undefined ? undefined : rulesetToString(ruleset);
  }
  async readTable(): Promise<Ruleset | undefined> {
    // Set and rule dumps filtered by a table that does not exist fail with ENOENT: look for it first, and
    // treat ENOENT as "gone" when the table vanished between the dumps.
    const filter = { family: 'inet' as const, table: TABLE };
    if ((await this.conn.listTables(filter)).length === 0) return undefined;
    try {
      return await this.conn.listRuleset(filter);
    } catch (e) {
      if (isNotFound(e)) {
        if ((await this.conn.listTables(filter)).length === 0) return undefined;
      }
      throw e;
    }
  }
  close(): void {
    this.conn.close();
  }
}

/** The kernel of this network namespace, over an nfnetlink socket. */
export class NetlinkProgrammer extends NftProgrammer {
  constructor(sock: NfnlSocket = new NfnlSocket()) {
    super(new NetlinkConnection(sock));
  }
}
