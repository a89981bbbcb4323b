// A transaction of nftables changes: every call is validated as it is added (the first error is kept and
// reported by run()), toString() is the equivalent nft script, and run() commits it as ONE atomic batch.

import { type Batch, BatchBuilder } from '../netlink/batch.ts';
import {
  NFT_MSG,
  NFT_SET_ELEM_INTERVAL_END,
  NFTA_CHAIN,
  NFTA_LIST_ELEM,
  NFTA_RULE,
  NFTA_SET,
  NFTA_SET_ELEM_LIST,
  NFTA_TABLE,
  NLM_F,
  nftType,
} from '../netlink/constants.ts';
import { NetlinkError } from '../netlink/errors.ts';
import type { CommitResult } from '../netlink/socket.ts';
import { ERRNO } from '../util/errors.ts';
import type { NftCommitter } from './conn.ts';
import { NftValidationError } from './errors.ts';
import { FAMILIES } from './family.ts';
import { Chain, Rule, Table } from './objects.ts';
import { type Element, type ElementInput, NamedSet, PackedElements, type PackedMode } from './set.ts';
import { LimitObject } from './stateful.ts';

export type NftObject = Table | Chain | NamedSet | Rule | LimitObject;

type Op =
  | { verb: 'add' | 'create'; obj: NftObject }
  | { verb: 'insert' | 'replace'; obj: Rule }
  | { verb: 'delete'; obj: NftObject }
  | { verb: 'flush'; obj: Table | Chain | NamedSet }
  | { verb: 'add element' | 'delete element'; set: NamedSet; elements: Element[] | PackedElements };

/** Keep each NFTA_SET_ELEM_LIST_ELEMENTS well under the 64 KiB limit of a netlink attribute length. */
const MAX_ELEMENTS_ATTR = 60_000;

const pad4 = (n: number) => (n + 3) & ~3;

/**
 * An upper bound of the bytes that adding or deleting `count` elements of `set` adds to a batch, each
 * element at most `perElement` bytes (NamedSet.elementBytesBound): the element messages' headers (one
 * message per MAX_ELEMENTS_ATTR bytes of elements, see encodeElements) and a leading end marker. Lets a
 * planner cut a large change into batches under a byte limit without encoding it twice.
 */
export function elementsBytesBound(set: NamedSet, count: number, perElement: number): number {
  if (count === 0) return 0;
  // nlmsghdr + nfgenmsg, TABLE, SET, SET_ID, the ELEMENTS nest.
  const header = 16 + 4 + 4 + pad4(set.table.length + 1) + 4 + pad4(set.name.length + 1) + 8 + 4;
  const body = count * perElement + perElement;
  return body + (1 + Math.floor(body / MAX_ELEMENTS_ATTR)) * header;
}

export class Transaction {
  private readonly ops: Op[] = [];
  private firstError: Error | undefined;
  /** The batch of the ops so far: a planner that measured it (compile/program.ts) and the commit that
   *  follows share one encoding. Dropped when an op is added. */
  private encoded: Batch | undefined;

  /** The first validation error, if any call was invalid (run() throws it). */
  get error(): Error | undefined {
    return this.firstError;
  }
  get size(): number {
    return this.ops.length;
  }

  private push(check: () => Op): this {
    try {
      const op = check();
      if (!this.firstError) this.ops.push(op);
      this.encoded = undefined;
    } catch (e) {
      this.firstError ??= e as Error;
    }
    return this;
  }

  /** Adds (or keeps, if it exists) a table, chain, set or limit object; appends a rule. A limit object that
   *  exists is kept as it is (the kernel has no update for limits): changed parameters need a new name. */
  add(obj: NftObject): this {
    return this.push(() => ({ verb: 'add', obj: checkObject(obj) }));
  }
  /** Like add, but fails (EEXIST) if the table, chain or set already exists. */
  create(obj: Table | Chain | NamedSet | LimitObject): this {
    return this.push(() => {
      const o = obj as NftObject;
      if (o instanceof Rule)
        throw new NftValidationError(o.describe(), 'rules cannot be created, only added');
      return { verb: 'create', obj: checkObject(obj) };
    });
  }
  /** Inserts a rule at the start of its chain. */
  insert(rule: Rule): this {
    return this.push(() => ({ verb: 'insert', obj: checkObject(rule) as Rule }));
  }
  /** Replaces the rule with rule.handle in place. */
  replace(rule: Rule): this {
    return this.push(() => {
      if (rule.handle === undefined)
        throw new NftValidationError(rule.describe(), 'replace needs the rule handle', 'handle');
      return { verb: 'replace', obj: checkObject(rule) as Rule };
    });
  }
  /** Deletes a table, chain, set, limit object or (by handle) rule. */
  delete(obj: NftObject): this {
    return this.push(() => {
      if (obj instanceof Rule && obj.handle === undefined) {
        throw new NftValidationError(obj.describe(), 'delete needs the rule handle', 'handle');
      }
      return { verb: 'delete', obj: checkObject(obj) };
    });
  }
  /** Removes every rule of a chain or table, or every element of a set or map. */
  flush(obj: Table | Chain | NamedSet): this {
    return this.push(() => ({ verb: 'flush', obj: checkObject(obj) as Table | Chain | NamedSet }));
  }
  /** Adds elements: texts, objects, or packed elements (see PackedElements.ofRanges). */
  addElements(set: NamedSet, elements: readonly ElementInput[] | PackedElements): this {
    return this.push(() => ({ verb: 'add element', set, elements: checkElements(set, elements) }));
  }
  deleteElements(set: NamedSet, elements: readonly ElementInput[] | PackedElements): this {
    return this.push(() => ({ verb: 'delete element', set, elements: checkElements(set, elements) }));
  }

  /** The transaction as an nft script (`nft -f` applies the same change). */
  toString(): string {
    const lines: string[] = [];
    for (const op of this.ops) {
      switch (op.verb) {
        case 'add':
          lines.push(op.obj.toString());
          break;
        case 'create':
          lines.push(op.obj.toString().replace(/^add /, 'create '));
          break;
        case 'insert':
          lines.push(`insert rule ${op.obj.family} ${op.obj.table} ${op.obj.chain} ${op.obj.statement()}`);
          break;
        case 'replace':
          lines.push(
            `replace rule ${op.obj.family} ${op.obj.table} ${op.obj.chain} handle ${op.obj.handle} ${op.obj.statement()}`,
          );
          break;
        case 'delete':
          lines.push(
            op.obj instanceof Rule
              ? `delete rule ${op.obj.family} ${op.obj.table} ${op.obj.chain} handle ${op.obj.handle}`
              : `delete ${op.obj.kind} ${op.obj.spec()}`,
          );
          break;
        case 'flush':
          lines.push(`flush ${op.obj instanceof NamedSet ? op.obj.kind : op.obj.kind} ${op.obj.spec()}`);
          break;
        case 'add element':
        case 'delete element':
          if (countOf(op.elements) > 0) {
            const elements = op.elements instanceof PackedElements ? op.set.unpack(op.elements) : op.elements;
            lines.push(`${op.verb.split(' ')[0]} element ${op.set.spec()} ${op.set.elementsText(elements)}`);
          }
          break;
      }
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }

  /** Encodes the whole transaction as one nfnetlink batch (once: later calls return the same batch). */
  encode(): Batch {
    if (this.firstError) throw this.firstError;
    this.encoded ??= this.encodeOps();
    return this.encoded;
  }

  private encodeOps(): Batch {
    // Sized up front for the elements: growing by doubling copies a large batch several times over, and
    // every discarded buffer is external memory the garbage collector must notice.
    let size = 64 * 1024;
    for (const op of this.ops) {
      const set = 'set' in op ? op.set : op.obj instanceof NamedSet ? op.obj : undefined;
      const n = 'set' in op ? countOf(op.elements) : set !== undefined ? set.elements.length : 0;
      if (set !== undefined && n > 0) size += elementsBytesBound(set, n, set.elementBytesBound());
    }
    const b = new BatchBuilder(size);
    const setIds = new Map<string, number>();
    const createdSets = new Set<string>();
    let nextSetId = 1;
    const setKey = (family: string, table: string, name: string) => `${family}\0${table}\0${name}`;
    for (const op of this.ops) {
      if ('set' in op) {
        const s = op.set;
        this.encodeElements(
          b,
          s,
          op.elements,
          op.verb === 'add element',
          setIds.get(setKey(s.family, s.table, s.name)),
          createdSets.has(setKey(s.family, s.table, s.name)),
        );
        continue;
      }
      const obj = op.obj;
      const fam = FAMILIES[obj.family];
      if (obj instanceof Table) {
        if (op.verb === 'flush') {
          b.begin(nftType(NFT_MSG.DELRULE), 0, fam, `rules of ${obj.describe()}`);
          b.w.str(NFTA_RULE.TABLE, obj.name);
        } else if (op.verb === 'delete') {
          b.begin(nftType(NFT_MSG.DELTABLE), 0, fam, obj.describe());
          b.w.str(NFTA_TABLE.NAME, obj.name);
        } else {
          b.begin(nftType(NFT_MSG.NEWTABLE), createFlags(op.verb), fam, obj.describe());
          obj.encode(b.w);
        }
        b.end();
      } else if (obj instanceof Chain) {
        if (op.verb === 'flush') {
          b.begin(nftType(NFT_MSG.DELRULE), 0, fam, `rules of ${obj.describe()}`);
          b.w.str(NFTA_RULE.TABLE, obj.table);
          b.w.str(NFTA_RULE.CHAIN, obj.name);
        } else if (op.verb === 'delete') {
          b.begin(nftType(NFT_MSG.DELCHAIN), 0, fam, obj.describe());
          b.w.str(NFTA_CHAIN.TABLE, obj.table);
          b.w.str(NFTA_CHAIN.NAME, obj.name);
        } else {
          b.begin(nftType(NFT_MSG.NEWCHAIN), createFlags(op.verb), fam, obj.describe());
          obj.encode(b.w);
        }
        b.end();
      } else if (obj instanceof LimitObject) {
        if (op.verb === 'delete') {
          b.begin(nftType(NFT_MSG.DELOBJ), 0, fam, obj.describe());
          obj.encodeKey(b.w);
        } else {
          b.begin(nftType(NFT_MSG.NEWOBJ), createFlags(op.verb), fam, obj.describe());
          obj.encode(b.w);
        }
        b.end();
      } else if (obj instanceof NamedSet) {
        const key = setKey(obj.family, obj.table, obj.name);
        if (op.verb === 'flush') {
          b.begin(nftType(NFT_MSG.DELSETELEM), 0, fam, `elements of ${obj.describe()}`);
          b.w.str(NFTA_SET_ELEM_LIST.TABLE, obj.table);
          b.w.str(NFTA_SET_ELEM_LIST.SET, obj.name);
          b.end();
        } else if (op.verb === 'delete') {
          b.begin(nftType(NFT_MSG.DELSET), 0, fam, obj.describe());
          b.w.str(NFTA_SET.TABLE, obj.table);
          b.w.str(NFTA_SET.NAME, obj.name);
          b.end();
        } else {
          const id = nextSetId++;
          setIds.set(key, id);
          createdSets.add(key);
          b.begin(nftType(NFT_MSG.NEWSET), createFlags(op.verb), fam, obj.describe());
          obj.encode(b.w, id);
          b.end();
          if (obj.elements.length > 0) this.encodeElements(b, obj, obj.elements, true, id, true);
        }
      } else {
        const rule = obj;
        const ctx = { setId: (name: string) => setIds.get(setKey(rule.family, rule.table, name)) };
        if (op.verb === 'delete') {
          b.begin(nftType(NFT_MSG.DELRULE), 0, fam, rule.describe());
          b.w.str(NFTA_RULE.TABLE, rule.table);
          b.w.str(NFTA_RULE.CHAIN, rule.chain);
          b.w.u64be(NFTA_RULE.HANDLE, rule.handle ?? 0);
        } else {
          const flags =
            op.verb === 'replace'
              ? NLM_F.REPLACE
              : op.verb === 'insert'
                ? NLM_F.CREATE
                : NLM_F.CREATE | NLM_F.APPEND;
          b.begin(nftType(NFT_MSG.NEWRULE), flags, fam, rule.describe());
          rule.encode(b.w, ctx, op.verb === 'replace');
        }
        b.end();
      }
    }
    return b.finish();
  }

  private encodeElements(
    b: BatchBuilder,
    set: NamedSet,
    elements: readonly Element[] | PackedElements,
    add: boolean,
    setId: number | undefined,
    fresh: boolean,
  ): void {
    const fam = FAMILIES[set.family];
    const type = nftType(add ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM);
    const what = `elements of ${set.describe()}`;
    // Packed elements are written straight from their slab; so are parsed elements of an interval set
    // without data or timeouts, packed here first (one slab instead of an object per kernel element).
    const packed = elements instanceof PackedElements ? elements : set.packElements(elements);
    const kes = packed ? [] : set.kernelElements(elements as readonly Element[], add, fresh);
    const total = packed ? packed.count : kes.length;
    // A plain interval set's packed ranges become start and end markers right here (see
    // encodePackedInterval), with nft's leading end marker at 0 for a fresh set.
    const mode: PackedMode = !set.isInterval ? 'keys' : set.isConcat ? 'ranges' : 'intervals';
    const plain = packed !== undefined && mode === 'intervals';
    let zeroEnd =
      plain && add && fresh && packed.count > 0 && packed.slab.subarray(0, packed.keyLen).some((b) => b);
    let i = 0;
    while (i < total) {
      b.begin(type, add ? NLM_F.CREATE : 0, fam, what);
      b.w.str(NFTA_SET_ELEM_LIST.TABLE, set.table);
      b.w.str(NFTA_SET_ELEM_LIST.SET, set.name);
      if (setId !== undefined) b.w.u32be(NFTA_SET_ELEM_LIST.SET_ID, setId);
      const list = b.w.begin(NFTA_SET_ELEM_LIST.ELEMENTS);
      // libnftnl numbers list entries 1, 2, 3...; the kernel ignores the type, we match nft's bytes.
      let index = 1;
      if (zeroEnd) {
        const e = b.w.begin(index++);
        NamedSet.encodeKernelElement(b.w, {
          key: Buffer.alloc(set.keyLen),
          flags: NFT_SET_ELEM_INTERVAL_END,
        });
        b.w.end(e);
        zeroEnd = false;
      }
      if (packed) [i, index] = NamedSet.encodePacked(b.w, packed, mode, i, index, list, MAX_ELEMENTS_ATTR);
      while (i < total && b.w.pos - list < MAX_ELEMENTS_ATTR) {
        const e = b.w.begin(index++ & 0x3fff || NFTA_LIST_ELEM);
        NamedSet.encodeKernelElement(b.w, kes[i++]!);
        b.w.end(e);
      }
      b.w.end(list);
      b.end();
    }
  }

  /** Commits the transaction as one atomic batch; throws the first validation or kernel error. */
  async run(sock: NftCommitter, options: { genid?: number } = {}): Promise<CommitResult> {
    const batch = this.encode();
    if (batch.entries.length === 0) return { genid: await sock.getGeneration(), messages: 0, bytes: 0 };
    // Sent: the bytes are not kept (a staged program holds many batches until its last is committed).
    this.encoded = undefined;
    return sock.commit(batch, options);
  }
}

function checkElements(set: NamedSet, elements: readonly ElementInput[] | PackedElements) {
  return elements instanceof PackedElements ? set.acceptPacked(elements) : set.parseElements(elements);
}

const countOf = (elements: Element[] | PackedElements): number =>
  elements instanceof PackedElements ? elements.count : elements.length;

function createFlags(verb: string): number {
  return verb === 'create' ? NLM_F.CREATE | NLM_F.EXCL : NLM_F.CREATE;
}

function checkObject(obj: NftObject): NftObject {
  if (
    !(
      obj instanceof Table ||
      obj instanceof Chain ||
      obj instanceof NamedSet ||
      obj instanceof Rule ||
      obj instanceof LimitObject
    )
  ) {
    throw new NftValidationError(
      String(obj),
      'not an nftables object (Table, Chain, NamedSet, Rule or LimitObject)',
    );
  }
  return obj;
}

/**
 * Builds and commits a transaction against the current generation; when the kernel reports that the
 * ruleset changed in between (ERESTART), reads the generation again, rebuilds and retries (bounded).
 */
export async function commitWithRetry(
  sock: NftCommitter,
  build: (genid: number, attempt: number) => Transaction | Promise<Transaction>,
  options: { attempts?: number } = {},
): Promise<CommitResult & { attempts: number }> {
  const attempts = options.attempts ?? 3;
  let last: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const genid = await sock.getGeneration();
    const tx = await build(genid, attempt);
    try {
      const r = await tx.run(sock, { genid });
      return { ...r, attempts: attempt };
    } catch (e) {
      if (!(e instanceof NetlinkError) || e.code !== 'E_NETLINK_GENID') throw e;
      last = e;
    }
  }
  throw new NetlinkError('E_NETLINK_GENID', `the ruleset kept changing: gave up after ${attempts} attempts`, {
    errno: ERRNO.ERESTART,
    messageType: 'BATCH_BEGIN',
    cause: last,
  });
}
