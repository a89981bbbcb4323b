// The kernel as the agent needs it: commit one batch atomically, read the generation, list a table back.
// NetlinkConnection is the real one over an nfnetlink socket; FakeNft (fake.ts) models it in memory.
// Neither decides what to program.

import type { Batch } from '../netlink/batch.ts';
import { type CommitOptions, type CommitResult, NfnlSocket } from '../netlink/socket.ts';
import { type ListFilter, listRules, listRuleset, listTables, type Ruleset } from './list.ts';
import type { Rule, Table } from './objects.ts';

/** What committing a Transaction needs (an NfnlSocket is one). */
export interface NftCommitter {
  /** Applies every message of the batch or none; the kernel answers ERESTART when options.genid is stale. */
  commit(batch: Batch, options?: CommitOptions): Promise<CommitResult>;
  /** The ruleset generation, bumped by every committed batch of anyone. */
  getGeneration(): Promise<number>;
}

export interface NftConnection extends NftCommitter {
  /** The port id our commits' change notifications carry; undefined without a socket. */
  readonly portId: number | undefined;
  listTables(filter?: ListFilter): Promise<Table[]>;
  /** A consistent listing (one generation) of the tables, chains, sets with elements and rules. Set and
   *  rule dumps filtered by a table that does not exist fail with ENOENT, as the kernel's do. */
  listRuleset(filter?: ListFilter): Promise<Ruleset>;
  /** The rules of one table (or one chain of it); ENOENT when either does not exist, as the kernel's. */
  listRules?(filter: ListFilter): Promise<Rule[]>;
  close(): void;
}

export class NetlinkConnection implements NftConnection {
  readonly sock: NfnlSocket;
  constructor(sock: NfnlSocket = new NfnlSocket()) {
    this.sock = sock;
  }
  get portId(): number {
    return this.sock.portId;
  }
  commit(batch: Batch, options?: CommitOptions): Promise<CommitResult> {
    return this.sock.commit(batch, options);
  }
  getGeneration(): Promise<number> {
    return this.sock.getGeneration();
  }
  listTables(filter?: ListFilter): Promise<Table[]> {
    return listTables(this.sock, filter);
  }
  listRuleset(filter?: ListFilter): Promise<Ruleset> {
    return listRuleset(this.sock, filter);
  }
  listRules(filter: ListFilter): Promise<Rule[]> {
    return listRules(this.sock, filter);
  }
  close(): void {
    this.sock.close();
  }
}
