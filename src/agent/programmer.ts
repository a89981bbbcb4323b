// Where a node's transactions go: the kernel over netlink, or a fake that keeps an in-memory table for unit
// tests. Nothing here decides what to program; see reconciler.ts.

import { TABLE } from '../compile/desired.ts';
import { Attrs } from '../netlink/attr.ts';
import {
  messageTypeName,
  NFT_MSG,
  NFTA_RULE,
  NFTA_SET,
  NFTA_SET_ELEM_LIST,
  NLM_F,
} from '../netlink/constants.ts';
import { NFGENMSG_LEN, splitMessages } from '../netlink/message.ts';
import {
  Chain,
  commitWithRetry,
  type Family,
  familyFromNumber,
  listRuleset,
  listTables,
  NamedSet,
  NetlinkError,
  NfnlSocket,
  Rule,
  type Ruleset,
  rulesetToString,
  Table,
  type Transaction,
} from '../nft/index.ts';
import type { KernelElement } from '../nft/set.ts';
import { ERRNO, isNotFound } from '../util/errors.ts';

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
  /** The netlink port id our commits come from (their change notifications carry it); undefined when
   *  the programmer has no socket. */
  readonly portId?: number | undefined;
  /** The kernel's ruleset generation (bumped by every committed batch of anyone). */
  generation?(): Promise<number>;
  close(): void;
}

export class NetlinkProgrammer implements Programmer {
  private readonly sock: NfnlSocket;
  constructor(sock: NfnlSocket = new NfnlSocket()) {
    this.sock = sock;
  }
  get portId(): number {
    return this.sock.portId;
  }
  async commit(tx: Transaction): Promise<CommitInfo> {
    // Our transactions do not depend on the generation (they diff against what we programmed), so a
    // stale generation is simply retried with the same transaction.
    let before = -1;
    const r = await commitWithRetry(this.sock, (genid) => {
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
    return this.sock.getGeneration();
  }
  async listTable(): Promise<string | undefined> {
    const ruleset = await this.readTable();
    return ruleset === undefined ? undefined : rulesetToString(ruleset);
  }
  async readTable(): Promise<Ruleset | undefined> {
    // Set and rule dumps filtered by a table that does not exist fail with ENOENT: look for it first, and
    // treat ENOENT as "gone" when the table vanished between the dumps.
    const filter = { family: 'inet' as const, table: TABLE };
    if ((await listTables(this.sock, filter)).length === 0) return undefined;
    try {
      return await listRuleset(this.sock, filter);
    } catch (e) {
      if (isNotFound(e)) {
        if ((await listTables(this.sock, filter)).length === 0) return undefined;
      }
      throw e;
    }
  }
  close(): void {
    this.sock.close();
  }
}

/** One table of the fake's in-memory nf_tables. Elements are kept in kernel form (interval end markers). */
interface FakeTable {
  table: Table;
  chains: Map<string, Chain>;
  sets: Map<string, { set: NamedSet; elements: Map<string, KernelElement> }>;
  rules: Rule[];
}

const elementKey = (k: KernelElement) =>
  `${k.key.toString('hex')}/${k.keyEnd?.toString('hex') ?? ''}/${k.flags & 1}`;

/**
 * Records transactions and applies them, decoded from the very batch bytes the kernel would get, to an
 * in-memory table: enough of nf_tables (add/delete/flush of tables, chains, sets, elements and rules,
 * ENOENT/EBUSY for missing or busy objects, all-or-nothing batches) for unit tests of reconcile and verify.
 * `tables` may be changed behind the reconciler's back to simulate drift.
 */
export class FakeProgrammer implements Programmer {
  readonly transactions: Transaction[] = [];
  tables = new Map<string, FakeTable>();
  private nextHandle = 1;

  async commit(tx: Transaction): Promise<CommitInfo> {
    if (tx.error) throw tx.error;
    const batch = tx.encode();
    const work = cloneTables(this.tables);
    const msgs = splitMessages(batch.buf).slice(1, -1);
    msgs.forEach((msg, i) => {
      const object = batch.entries[i]?.object ?? '';
      const fail = (errno: number): never => {
        throw NetlinkError.fromErrno(errno, { messageType: messageTypeName(msg.type), object });
      };
      const family = familyFromNumber(msg.family) ?? fail(ERRNO.EAFNOSUPPORT);
      this.apply(work, msg.type & 0xff, msg.flags, family, Attrs.parse(msg.payload, NFGENMSG_LEN), fail);
    });
    this.tables = work;
    this.transactions.push(tx);
    return { messages: batch.entries.length, bytes: batch.buf.length };
  }

  private apply(
    tables: Map<string, FakeTable>,
    type: number,
    flags: number,
    family: Family,
    a: Attrs,
    fail: (errno: number) => never,
  ): void {
    const { ENOENT, EEXIST, EBUSY } = ERRNO;
    const excl = (flags & NLM_F.EXCL) !== 0;
    const tableOf = (name: string | undefined) => tables.get(`${family} ${name}`) ?? fail(ENOENT);
    switch (type) {
      case NFT_MSG.NEWTABLE: {
        const t = Table.decode(family, a);
        if (tables.has(`${family} ${t.name}`)) {
          if (excl) fail(EEXIST);
          return;
        }
        tables.set(`${family} ${t.name}`, { table: t, chains: new Map(), sets: new Map(), rules: [] });
        return;
      }
      case NFT_MSG.DELTABLE: {
        const t = Table.decode(family, a);
        if (!tables.delete(`${family} ${t.name}`)) fail(ENOENT);
        return;
      }
      case NFT_MSG.NEWCHAIN: {
        const c = Chain.decode(family, a);
        const t = tableOf(c.table);
        if (t.chains.has(c.name)) {
          if (excl) fail(EEXIST);
          return;
        }
        t.chains.set(c.name, c);
        return;
      }
      case NFT_MSG.DELCHAIN: {
        const c = Chain.decode(family, a);
        const t = tableOf(c.table);
        if (!t.chains.has(c.name)) fail(ENOENT);
        const jumpsHere = (chain: string | undefined) => chain === c.name;
        const used =
          t.rules.some((r) => r.chain === c.name || r.exprs.some((e) => jumpsHere(verdictChain(e)))) ||
          [...t.sets.values()].some((s) => [...s.elements.values()].some((k) => jumpsHere(verdictChain(k))));
        if (used) fail(EBUSY);
        t.chains.delete(c.name);
        return;
      }
      case NFT_MSG.NEWSET: {
        const s = NamedSet.decode(family, a);
        const t = tableOf(s.table);
        if (t.sets.has(s.name)) {
          if (excl) fail(EEXIST);
          return;
        }
        t.sets.set(s.name, { set: s, elements: new Map() });
        return;
      }
      case NFT_MSG.DELSET: {
        // A delete carries only the names (no key type to decode).
        const name = a.str(NFTA_SET.NAME) ?? '';
        const t = tableOf(a.str(NFTA_SET.TABLE));
        if (!t.sets.has(name)) fail(ENOENT);
        if (t.rules.some((r) => r.exprs.some((e) => setName(e) === name))) fail(EBUSY);
        t.sets.delete(name);
        return;
      }
      case NFT_MSG.NEWSETELEM:
      case NFT_MSG.DELSETELEM: {
        const t = tableOf(a.str(NFTA_SET_ELEM_LIST.TABLE));
        const s = t.sets.get(a.str(NFTA_SET_ELEM_LIST.SET) ?? '') ?? fail(ENOENT);
        const list = a.get(NFTA_SET_ELEM_LIST.ELEMENTS);
        if (!list) {
          if (type === NFT_MSG.DELSETELEM) s.elements.clear();
          return;
        }
        for (const item of Attrs.list(list)) {
          const k = NamedSet.decodeKernelElement(Attrs.parse(item));
          const key = elementKey(k);
          if (type === NFT_MSG.DELSETELEM) {
            if (!s.elements.delete(key)) fail(ENOENT);
            continue;
          }
          if (s.elements.has(key) && excl) fail(EEXIST);
          const target = verdictChain(k);
          if (target !== undefined && !t.chains.has(target)) fail(ENOENT);
          s.elements.set(key, k);
        }
        return;
      }
      case NFT_MSG.NEWRULE: {
        const r = Rule.decode(family, a);
        const t = tableOf(r.table);
        if (!t.chains.has(r.chain)) fail(ENOENT);
        for (const e of r.exprs) {
          const set = setName(e);
          if (set !== undefined && !t.sets.has(set)) fail(ENOENT);
          const target = verdictChain(e);
          if (target !== undefined && !t.chains.has(target)) fail(ENOENT);
        }
        if (flags & NLM_F.REPLACE) {
          const at = t.rules.findIndex((x) => x.chain === r.chain && x.handle === r.handle);
          if (at < 0) fail(ENOENT);
          t.rules[at] = r;
          return;
        }
        const rule = r.withHandle(this.nextHandle++);
        if (flags & NLM_F.APPEND) t.rules.push(rule);
        else {
          const first = t.rules.findIndex((x) => x.chain === r.chain);
          t.rules.splice(first < 0 ? t.rules.length : first, 0, rule);
        }
        return;
      }
      case NFT_MSG.DELRULE: {
        const t = tableOf(a.str(NFTA_RULE.TABLE));
        const chain = a.str(NFTA_RULE.CHAIN);
        const handle = a.u64be(NFTA_RULE.HANDLE);
        if (chain !== undefined && !t.chains.has(chain)) fail(ENOENT);
        const doomed = (r: Rule) =>
          (chain === undefined || r.chain === chain) &&
          (handle === undefined || BigInt(r.handle ?? -1) === handle);
        if (handle !== undefined && !t.rules.some(doomed)) fail(ENOENT);
        t.rules = t.rules.filter((r) => !doomed(r));
        return;
      }
      default:
        fail(ERRNO.EOPNOTSUPP);
    }
  }

  async listTable(): Promise<string | undefined> {
    const ruleset = await this.readTable();
    return ruleset === undefined ? undefined : rulesetToString(ruleset);
  }

  async readTable(): Promise<Ruleset | undefined> {
    const t = this.tables.get(`inet ${TABLE}`);
    if (!t) return undefined;
    return {
      tables: [t.table],
      chains: [...t.chains.values()],
      sets: [...t.sets.values()].map(({ set, elements }) => {
        const copy = new NamedSet({ ...setOptions(set) });
        copy.elements.push(...set.elementsFromKernel([...elements.values()]));
        return copy;
      }),
      rules: [...t.rules],
    };
  }

  close(): void {}
}

/** The chain a rule's verdict expression or a verdict map element jumps to. */
function verdictChain(x: { verdict?: unknown; data?: unknown } | object): string | undefined {
  const o = x as { verdict?: unknown; data?: unknown };
  const chain = ((o.verdict ?? o.data) as { chain?: unknown } | undefined)?.chain;
  return typeof chain === 'string' ? chain : undefined;
}

function setName(e: unknown): string | undefined {
  const x = e as { name?: string; set?: unknown };
  return x.name === 'lookup' && typeof x.set === 'string' ? x.set : undefined;
}

function setOptions(s: NamedSet): ConstructorParameters<typeof NamedSet>[0] {
  return {
    family: s.family,
    table: s.table,
    name: s.name,
    key: s.key.map((k) => k.name) as ConstructorParameters<typeof NamedSet>[0]['key'],
    ...(s.data === undefined ? {} : { data: s.data === 'verdict' ? 'verdict' : s.data.name }),
    flags: s.flags,
    ...(s.timeout === undefined ? {} : { timeout: s.timeout }),
  };
}

function cloneTables(tables: Map<string, FakeTable>): Map<string, FakeTable> {
  const out = new Map<string, FakeTable>();
  for (const [k, t] of tables) {
    out.set(k, {
      table: t.table,
      chains: new Map(t.chains),
      sets: new Map([...t.sets].map(([n, s]) => [n, { set: s.set, elements: new Map(s.elements) }])),
      rules: [...t.rules],
    });
  }
  return out;
}
