// An in-memory nf_tables behind the same NftConnection as the kernel, for unit tests without root: it
// decodes the very batch bytes the kernel would get, applies each batch atomically or refuses it the way
// the kernel does (typed NetlinkErrors from the errno table), and dump() prints its tables as nft text.
// Models what the agent uses (tables, chains, sets, elements, limit objects, rules); no packet path, no
// notifications.

import { Attrs } from '../netlink/attr.ts';
import { type Batch, defaultBatchLimit } from '../netlink/batch.ts';
import {
  messageTypeName,
  NFT_MSG,
  NFTA_OBJ,
  NFTA_RULE,
  NFTA_SET,
  NFTA_SET_ELEM_LIST,
  NLM_F,
} from '../netlink/constants.ts';
import { NetlinkError } from '../netlink/errors.ts';
import { NFGENMSG_LEN, splitMessages } from '../netlink/message.ts';
import type { CommitOptions, CommitResult } from '../netlink/socket.ts';
import { ERRNO, type ErrnoName } from '../util/errors.ts';
import type { NftConnection } from './conn.ts';
import { type Family, familyFromNumber } from './family.ts';
import { canonicalLines, type ListFilter, type Ruleset } from './list.ts';
import { Chain, Rule, Table } from './objects.ts';
import { type KernelElement, NamedSet } from './set.ts';
import { LimitObject } from './stateful.ts';

/** One table of the model. Elements are kept in kernel form (interval end markers), as the kernel does. */
export interface FakeTable {
  table: Table;
  chains: Map<string, Chain>;
  sets: Map<string, { set: NamedSet; elements: Map<string, KernelElement> }>;
  /** Limit objects by name (the kernel keys objects by type and name; tollgate has one type). */
  objects: Map<string, LimitObject>;
  rules: Rule[];
}

/** A kernel refusal to inject: the first message whose "TYPE object" (e.g. "NEWCHAIN chain inet t in-x")
 *  matches fails the whole batch with this errno, as a kernel rejecting that message would. */
export interface Refusal {
  match: RegExp;
  errno: ErrnoName;
}

/** A batch the fake applied: its messages as nft text (decoded from the bytes), their types and size. */
export interface CommittedBatch {
  text: string;
  types: string[];
  bytes: number;
}

export interface FakeNftOptions {
  /** Batches larger than this fail with E_NETLINK_TOO_LARGE, as the socket's send buffer refuses them
   *  (default: defaultBatchLimit(), what an unprivileged socket gets). */
  maxBatchBytes?: number;
  /** The port id our commits would carry (default: none, as a programmer without a socket). */
  portId?: number;
}

const { ENOENT, EEXIST, EBUSY, EOPNOTSUPP, EAFNOSUPPORT, ERESTART } = ERRNO;

const elementKey = (k: KernelElement) =>
  `${k.key.toString('hex')}/${k.keyEnd?.toString('hex') ?? ''}/${k.flags & 1}`;

export class FakeNft implements NftConnection {
  /** The model, keyed "family name": replaced whole by each applied batch, edited only by tamper(). */
  private tables = new Map<string, FakeTable>();
  /** Bumped by every applied batch and by tamper(), like the kernel's ruleset generation. */
  genid = 1;
  readonly committed: CommittedBatch[] = [];
  /** Injected: the next N commits fail before reaching the model (a socket error, E_NETLINK_IO). */
  failNext = 0;
  /** Injected: kernel refusals, tried on every message of every batch while set. */
  refuse: Refusal | undefined;
  /** Injected: runs once right after the next applied batch, as another process committing at once. */
  afterCommit: ((fake: FakeNft) => void) | undefined;
  readonly portId: number | undefined;
  private readonly maxBatchBytes: number;
  private nextHandle = 1;

  constructor(options: FakeNftOptions = {}) {
    this.maxBatchBytes = options.maxBatchBytes ?? defaultBatchLimit();
    this.portId = options.portId;
  }

  async getGeneration(): Promise<number> {
    return this.genid;
  }

  async commit(batch: Batch, options: CommitOptions = {}): Promise<CommitResult> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new NetlinkError('E_NETLINK_IO', 'EIO (injected): the netlink socket failed');
    }
    if (batch.buf.length > this.maxBatchBytes) {
      throw new NetlinkError(
        'E_NETLINK_TOO_LARGE',
        `batch of ${batch.buf.length} bytes exceeds the socket send buffer (${this.maxBatchBytes} bytes)`,
      );
    }
    if (options.genid !== undefined && options.genid !== 0 && options.genid !== this.genid) {
      throw NetlinkError.fromErrno(ERESTART, {
        messageType: 'BATCH_BEGIN',
        object: `the batch (built against generation ${options.genid})`,
      });
    }
    const work = cloneTables(this.tables);
    const lines: string[] = [];
    const types: string[] = [];
    splitMessages(batch.buf)
      .slice(1, -1)
      .forEach((msg, i) => {
        const messageType = messageTypeName(msg.type);
        const object = batch.entries[i]?.object ?? '';
        const fail = (errno: number): never => {
          throw NetlinkError.fromErrno(errno, { messageType, object });
        };
        if (this.refuse?.match.test(`${messageType} ${object}`)) fail(ERRNO[this.refuse.errno]);
        const family = familyFromNumber(msg.family) ?? fail(EAFNOSUPPORT);
        const a = Attrs.parse(msg.payload, NFGENMSG_LEN);
        lines.push(this.apply(work, msg.type & 0xff, msg.flags, family, a, fail));
        types.push(messageType);
      });
    this.tables = work;
    this.genid++;
    const genid = this.genid;
    this.committed.push({
      text: lines.length > 0 ? `${lines.join('\n')}\n` : '',
      types,
      bytes: batch.buf.length,
    });
    const after = this.afterCommit;
    this.afterCommit = undefined;
    after?.(this);
    return { genid, messages: batch.entries.length, bytes: batch.buf.length };
  }

  /** Another process changes the ruleset behind our back: `change` edits the model, the generation moves. */
  tamper(change: (tables: Map<string, FakeTable>) => void): void {
    change(this.tables);
    this.genid++;
  }

  /** Applies one message to `tables` (a working copy) and returns it as an nft command. */
  private apply(
    tables: Map<string, FakeTable>,
    type: number,
    flags: number,
    family: Family,
    a: Attrs,
    fail: (errno: number) => never,
  ): string {
    const excl = (flags & NLM_F.EXCL) !== 0;
    const tableOf = (name: string | undefined) => tables.get(`${family} ${name}`) ?? fail(ENOENT);
    // NEW* of an existing object keeps it, unless the batch said create (NLM_F_EXCL).
    const addOnce = <V>(map: Map<string, V>, key: string, value: () => V) => {
      if (!map.has(key)) map.set(key, value());
      else if (excl) fail(EEXIST);
    };
    switch (type) {
      case NFT_MSG.NEWTABLE: {
        const t = Table.decode(family, a);
        addOnce(tables, `${family} ${t.name}`, () => ({
          table: t,
          chains: new Map(),
          sets: new Map(),
          objects: new Map(),
          rules: [],
        }));
        return t.toString();
      }
      case NFT_MSG.DELTABLE: {
        const t = Table.decode(family, a);
        if (!tables.delete(`${family} ${t.name}`)) fail(ENOENT);
        return `delete table ${t.spec()}`;
      }
      case NFT_MSG.NEWCHAIN: {
        const c = Chain.decode(family, a);
        const t = tableOf(c.table);
        addOnce(t.chains, c.name, () => c);
        return c.toString();
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
        return `delete chain ${c.spec()}`;
      }
      case NFT_MSG.NEWSET: {
        const s = NamedSet.decode(family, a);
        const t = tableOf(s.table);
        addOnce(t.sets, s.name, () => ({ set: s, elements: new Map() }));
        return s.toString();
      }
      case NFT_MSG.DELSET: {
        // A delete carries only the names (no key type to decode).
        const name = a.str(NFTA_SET.NAME) ?? '';
        const t = tableOf(a.str(NFTA_SET.TABLE));
        const s = t.sets.get(name) ?? fail(ENOENT);
        if (t.rules.some((r) => r.exprs.some((e) => setName(e) === name))) fail(EBUSY);
        t.sets.delete(name);
        return `delete ${s.set.kind} ${s.set.spec()}`;
      }
      case NFT_MSG.NEWOBJ: {
        // Another type than limit decodes nowhere here: the kernel would accept it, the model refuses.
        if (!LimitObject.isLimit(a)) return fail(EOPNOTSUPP);
        const o = LimitObject.decode(family, a);
        const t = tableOf(o.table);
        // The kernel keeps an existing limit unchanged (no update operation for limits).
        addOnce(t.objects, o.name, () => o);
        return o.toString();
      }
      case NFT_MSG.DELOBJ: {
        const name = a.str(NFTA_OBJ.NAME) ?? '';
        const t = tableOf(a.str(NFTA_OBJ.TABLE));
        const o = t.objects.get(name) ?? fail(ENOENT);
        if (!LimitObject.isLimit(a)) fail(ENOENT);
        if (t.rules.some((r) => r.exprs.some((e) => objectName(e) === name))) fail(EBUSY);
        t.objects.delete(name);
        return `delete limit ${o.spec()}`;
      }
      case NFT_MSG.NEWSETELEM:
      case NFT_MSG.DELSETELEM: {
        const t = tableOf(a.str(NFTA_SET_ELEM_LIST.TABLE));
        const s = t.sets.get(a.str(NFTA_SET_ELEM_LIST.SET) ?? '') ?? fail(ENOENT);
        const add = type === NFT_MSG.NEWSETELEM;
        const list = a.get(NFTA_SET_ELEM_LIST.ELEMENTS);
        if (!list) {
          if (!add) s.elements.clear();
          return `${add ? 'add element' : 'flush'} ${s.set.kind} ${s.set.spec()}`;
        }
        const kes: KernelElement[] = [];
        for (const item of Attrs.list(list)) {
          const k = NamedSet.decodeKernelElement(Attrs.parse(item));
          kes.push(k);
          const key = elementKey(k);
          if (!add) {
            if (!s.elements.delete(key)) fail(ENOENT);
            continue;
          }
          if (s.elements.has(key) && excl) fail(EEXIST);
          const target = verdictChain(k);
          if (target !== undefined && !t.chains.has(target)) fail(ENOENT);
          s.elements.set(key, k);
        }
        return `${add ? 'add' : 'delete'} element ${s.set.spec()} ${elementsText(s.set, kes)}`;
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
          const object = objectName(e);
          if (object !== undefined && !t.objects.has(object)) fail(ENOENT);
        }
        const at = `${r.family} ${r.table} ${r.chain}`;
        if (flags & NLM_F.REPLACE) {
          const i = t.rules.findIndex((x) => x.chain === r.chain && x.handle === r.handle);
          if (i < 0) fail(ENOENT);
          t.rules[i] = r;
          return `replace rule ${at} handle ${r.handle} ${r.statement()}`;
        }
        const rule = r.withHandle(this.nextHandle++);
        if (flags & NLM_F.APPEND) {
          t.rules.push(rule);
          return `add rule ${at} ${r.statement()}`;
        }
        const first = t.rules.findIndex((x) => x.chain === r.chain);
        t.rules.splice(first < 0 ? t.rules.length : first, 0, rule);
        return `insert rule ${at} ${r.statement()}`;
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
        const where = chain === undefined ? `table ${t.table.spec()}` : `chain ${t.table.spec()} ${chain}`;
        return handle === undefined
          ? `flush ${where}`
          : `delete rule ${t.table.spec()} ${chain} handle ${handle}`;
      }
      default:
        return fail(EOPNOTSUPP);
    }
  }

  async listTables(filter: ListFilter = {}): Promise<Table[]> {
    return [...this.tables.values()]
      .map((t) => t.table)
      .filter((t) => (filter.family ?? t.family) === t.family && (filter.table ?? t.name) === t.name);
  }

  async listRuleset(filter: ListFilter = {}): Promise<Ruleset> {
    const tables = [...this.tables.values()].filter(
      (t) =>
        (filter.family ?? t.table.family) === t.table.family &&
        (filter.table ?? t.table.name) === t.table.name,
    );
    // The kernel's set and rule dumps filtered by a missing table answer ENOENT.
    if (filter.table !== undefined && tables.length === 0)
      throw NetlinkError.fromErrno(ENOENT, { messageType: 'GETSET', object: `table ${filter.table}` });
    return {
      tables: tables.map((t) => t.table),
      chains: tables.flatMap((t) => [...t.chains.values()]),
      sets: tables.flatMap((t) => [...t.sets.values()].map(({ set, elements }) => listedSet(set, elements))),
      objects: tables.flatMap((t) => [...t.objects.values()]),
      rules: tables.flatMap((t) => [...t.rules]),
    };
  }

  async listRules(filter: ListFilter): Promise<Rule[]> {
    const t = [...this.tables.values()].find(
      (x) => (filter.family ?? x.table.family) === x.table.family && x.table.name === filter.table,
    );
    if (t === undefined || (filter.chain !== undefined && !t.chains.has(filter.chain)))
      throw NetlinkError.fromErrno(ENOENT, { messageType: 'GETRULE', object: `chain ${filter.chain}` });
    return t.rules.filter((r) => filter.chain === undefined || r.chain === filter.chain);
  }

  /** The model as nft text, one canonical line per object (see canonicalLines): what tests compare. */
  dump(filter: ListFilter = {}): string {
    const lines: string[] = [];
    for (const t of this.tables.values()) {
      if (
        (filter.family ?? t.table.family) !== t.table.family ||
        (filter.table ?? t.table.name) !== t.table.name
      )
        continue;
      lines.push(
        ...canonicalLines({
          tables: [t.table],
          chains: [...t.chains.values()],
          sets: [...t.sets.values()].map(({ set, elements }) => listedSet(set, elements)),
          objects: [...t.objects.values()],
          rules: t.rules,
        }),
      );
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }

  close(): void {}
}

/** A set as a listing returns it: a copy holding its elements. */
function listedSet(set: NamedSet, elements: Map<string, KernelElement>): NamedSet {
  const copy = new NamedSet(setOptions(set));
  copy.elements.push(...set.elementsFromKernel([...elements.values()]));
  return copy;
}

/** Elements of one message as nft text; markers that do not pair up (a partial interval) as a count. */
function elementsText(set: NamedSet, kes: KernelElement[]): string {
  try {
    return set.elementsText(set.elementsFromKernel(kes));
  } catch {
    return `{ ${kes.length} kernel elements }`;
  }
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

/** The object an objref expression names. */
function objectName(e: unknown): string | undefined {
  const x = e as { name?: string; object?: unknown };
  return x.name === 'objref' && typeof x.object === 'string' ? x.object : undefined;
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
      objects: new Map(t.objects),
      rules: [...t.rules],
    });
  }
  return out;
}
