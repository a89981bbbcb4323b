// Named sets and maps and their elements: key/data types, flags, the set userdata nft writes, and the
// element encoding (interval end markers, KEY_END for concatenated ranges). No I/O.

import { endianness } from 'node:os';
import { Attrs, HOST_IS_LE, Writer } from '../netlink/attr.ts';
import {
  NFT_DATA_VERDICT,
  NFT_SET_ELEM_INTERVAL_END,
  NFT_SET_F,
  NFTA_DATA,
  NFTA_LIST_ELEM,
  NFTA_SET,
  NFTA_SET_DESC,
  NFTA_SET_ELEM,
  NFTA_SET_FIELD_LEN,
  NLA_F_NESTED,
} from '../netlink/constants.ts';
import {
  concatTypeId,
  type DataType,
  type DataTypeName,
  dataType,
  dataTypeById,
  decrement,
  type FieldRange,
  formatFieldRange,
  increment,
  type KeyTypeName,
  padLen,
  parseFieldRange,
  splitConcatTypeId,
  ValueError,
  VERDICT_TYPE_ID,
} from './datatypes.ts';
import { NftValidationError } from './errors.ts';
import type { Family } from './family.ts';
import { checkName } from './objects.ts';
import {
  decodeVerdictData,
  encodeValueData,
  encodeVerdictData,
  formatVerdict,
  parseVerdict,
  type Verdict,
} from './verdict.ts';

export type SetFlag = 'interval' | 'timeout' | 'constant';

/** What callers write for an element: "10.0.0.0/8", "10.0.0.1 . tcp . 80", "10.0.0.1 : accept", or an object. */
export type ElementInput =
  | string
  /** Already parsed (by a caller that built the key fields itself); checked against the set's types. */
  | Element
  | {
      key: string | Array<string | number>;
      data?: string | Verdict;
      /** per-element timeout, ms (sets with the timeout flag) */
      timeout?: number;
    };

/**
 * Elements in the kernel's key layout, for bulk adds and deletes of thousands of ranges without an object
 * per element: element i's first key is slab[2i*keyLen, (2i+1)*keyLen) and its last (inclusive) key
 * follows it (equal for a set without the interval flag). Each field sits at its offset in the key
 * (concatenated fields are padded to 4 bytes, padding zero) in the byte order NFTA_DATA_VALUE carries.
 * A verdict map's elements carry their verdicts (element i: verdicts[i]). Built from range groups by
 * `ofRanges` (the one form the compiler hands over); checked against the set when added to a transaction.
 */
export class PackedElements {
  readonly keyLen: number;
  readonly count: number;
  readonly slab: Buffer;
  readonly verdicts: readonly MapVerdict[] | undefined;
  constructor(keyLen: number, count: number, slab: Buffer, verdicts?: readonly MapVerdict[]) {
    if (slab.length !== 2 * keyLen * count || (verdicts !== undefined && verdicts.length !== count))
      throw new NftValidationError(
        'packed elements',
        `${slab.length} bytes and ${verdicts?.length ?? 'no'} verdicts for ${count} elements of ${keyLen}-byte keys`,
        'elements',
      );
    this.keyLen = keyLen;
    this.count = count;
    this.slab = slab;
    this.verdicts = verdicts;
  }

  /**
   * The elements of `groups` packed for `set` (its first key field numeric: an address, a protocol): each
   * group's ranges of the first field (first and last in turn; numbers, or numbers or bigints for IPv6
   * addresses), each followed by the group's tail, one inclusive numeric range per further key field (a
   * protocol, a port range), encoded once per group; for a verdict map, the group's verdict.
   */
  static ofRanges(set: NamedSet, groups: readonly RangeGroup[]): PackedElements {
    const d = set.describe();
    const len = set.keyLen;
    const first = set.key[0]!;
    if (first.len !== 16 && first.len > 4)
      throw new NftValidationError(d, `range elements need a numeric first key, not ${first.name}`, 'key');
    // IPv4 addresses (the most elements by far): written as big-endian words.
    const word = first.len === 4 && first.byteorder === 'big';
    const map = set.data === 'verdict';
    if (set.data !== undefined && !map)
      throw new NftValidationError(d, 'range elements carry no data but verdicts', 'data');
    let count = 0;
    for (const g of groups) count += g.bounds.length >>> 1;
    const slab = Buffer.alloc(2 * len * count);
    const verdicts: MapVerdict[] | undefined = map ? new Array(count) : undefined;
    let at = 0;
    let i = 0;
    for (const g of groups) {
      const tail = tailFields(set, g.tail);
      const b = g.bounds;
      if (b.length % 2 !== 0) throw new NftValidationError(d, 'range bounds come in pairs', 'elements');
      if ((g.verdict !== undefined) !== map)
        throw new NftValidationError(
          d,
          map ? 'a map element needs a verdict' : 'a set element has no verdict',
          'elements',
        );
      for (let k = 0; k < b.length; k += 2) {
        if (word) {
          slab.writeUInt32BE(Number(b[k]!), at);
          slab.writeUInt32BE(Number(b[k + 1]!), at + len);
        } else if (first.len === 16) {
          writeU128(slab, at, BigInt(b[k]!));
          writeU128(slab, at + len, BigInt(b[k + 1]!));
        } else {
          uintBytes(set, first, Number(b[k]!)).copy(slab, at);
          uintBytes(set, first, Number(b[k + 1]!)).copy(slab, at + len);
        }
        for (const f of tail) {
          f.from.copy(slab, at + f.at);
          f.to.copy(slab, at + len + f.at);
        }
        if (verdicts !== undefined) verdicts[i] = g.verdict!;
        at += 2 * len;
        i++;
      }
    }
    return new PackedElements(len, count, slab, verdicts);
  }
}

/** One key field after the first of range elements: an inclusive range of its numeric values. */
export type FieldSpan = readonly [from: number, to: number];

/** What an element of a verdict map the compiler makes does: jump or go to a chain, accept, drop. */
export type MapVerdict =
  | { readonly kind: 'jump' | 'goto'; readonly chain: string }
  | { readonly kind: 'accept' | 'drop' };

/**
 * The element value of every set and map the compiler makes: ranges of the first key field that share
 * the rest of their key and, in a verdict map, their verdict (see PackedElements.ofRanges). A set without
 * the interval flag has ranges of one value.
 */
export interface RangeGroup {
  /** First and last of each range in turn. */
  readonly bounds: ArrayLike<number> | ArrayLike<bigint>;
  readonly tail: readonly FieldSpan[];
  /** A verdict map's elements' verdict; absent in a set. */
  readonly verdict?: MapVerdict;
}

/** How many elements range groups hold. */
export function rangeCount(groups: readonly RangeGroup[]): number {
  let n = 0;
  for (const g of groups) n += g.bounds.length >>> 1;
  return n;
}

/** One element of range groups: its group and the index of its first bound there. */
export interface RangeAt {
  readonly group: RangeGroup;
  readonly at: number;
}

/**
 * The identity of a range element's key: what tells two element values apart without making nft text
 * (equal keys, equal texts; the kernel holds one element per key). A range of one value is named by the
 * value alone.
 */
export const rangeKey = (g: RangeGroup, at: number): string => spanId(g.bounds, at) + tailId(g);

const spanId = (b: RangeGroup['bounds'], at: number): string =>
  b[at] === b[at + 1] ? `${b[at]}` : `${b[at]}-${b[at + 1]}`;
const tailId = (g: RangeGroup): string => (g.tail.length === 0 ? '' : ` ${g.tail.join(' ')}`);
function verdictId(g: RangeGroup): string {
  const v = g.verdict;
  if (v === undefined) return '';
  return v.kind === 'jump' || v.kind === 'goto' ? ` ${v.kind} ${v.chain}` : ` ${v.kind}`;
}

/**
 * Every element's identity with its verdict, in order: rangeKey and the verdict (each group's tail and
 * verdict written once). Equal identities, equal elements.
 */
export function rangeIds(groups: readonly RangeGroup[]): string[] {
  const out: string[] = [];
  for (const g of groups) {
    const rest = tailId(g) + verdictId(g);
    for (let at = 0; at < g.bounds.length; at += 2) out.push(spanId(g.bounds, at) + rest);
  }
  return out;
}

/** Every element of range groups, in order. */
export function rangeItems(groups: readonly RangeGroup[]): RangeAt[] {
  const out: RangeAt[] = [];
  for (const group of groups) for (let at = 0; at < group.bounds.length; at += 2) out.push({ group, at });
  return out;
}

/**
 * Range elements as groups again, in order: neighbours of one group share a group (with `verdict`, every
 * group gets that verdict instead of its own).
 */
export function regroup(items: readonly RangeAt[], verdict?: MapVerdict): RangeGroup[] {
  const out: RangeGroup[] = [];
  let group: RangeGroup | undefined;
  let bounds: (number | bigint)[] = [];
  const flush = () => {
    if (group === undefined) return;
    const bs = bounds as ArrayLike<number> | ArrayLike<bigint>;
    const v = verdict ?? group.verdict;
    out.push(
      v === undefined ? { bounds: bs, tail: group.tail } : { bounds: bs, tail: group.tail, verdict: v },
    );
  };
  for (const { group: g, at } of items) {
    if (g !== group) {
      flush();
      group = g;
      bounds = [];
    }
    bounds.push(g.bounds[at]!, g.bounds[at + 1]!);
  }
  flush();
  return out;
}

/** What a transaction takes as elements: texts or objects, or packed ranges (see PackedElements). */
export type Elements = readonly ElementInput[] | PackedElements;

export const elementCount = (e: Elements): number => (e instanceof PackedElements ? e.count : e.length);

/** Elements `from` to `to` (exclusive) of `e`, in the same form; packed ones share the slab. */
export function sliceElements(e: Elements, from: number, to: number): Elements {
  if (!(e instanceof PackedElements)) return e.slice(from, to);
  const len = e.keyLen;
  return new PackedElements(
    len,
    to - from,
    e.slab.subarray(2 * len * from, 2 * len * to),
    e.verdicts?.slice(from, to),
  );
}

function writeU128(slab: Buffer, at: number, value: bigint): void {
  slab.writeBigUInt64BE(value >> 64n, at);
  slab.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, at + 8);
}

/** The key bytes of a tail, with each field's offset in the key. */
function tailFields(set: NamedSet, tail: readonly FieldSpan[]): { at: number; from: Buffer; to: Buffer }[] {
  if (tail.length !== set.key.length - 1)
    throw new NftValidationError(
      set.describe(),
      `range elements have ${tail.length + 1} key field(s), the set's are ${set.typeText()}`,
      'elements',
    );
  let at = padLen(set.key[0]!.len);
  return tail.map(([from, to], j) => {
    const t = set.key[j + 1]!;
    const field = { at, from: uintBytes(set, t, from), to: uintBytes(set, t, to) };
    at += padLen(t.len);
    return field;
  });
}

/** A numeric key field value in its type's length and byte order. */
function uintBytes(set: NamedSet, t: DataType, value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * t.len) || t.len > 4)
    throw new NftValidationError(set.describe(), `${value} is not a ${t.name} value`, 'elements');
  const b = Buffer.alloc(t.len);
  if (t.byteorder === 'big' || !HOST_IS_LE) b.writeUIntBE(value, 0, t.len);
  else b.writeUIntLE(value, 0, t.len);
  return b;
}

export class Element {
  /** One inclusive range per key field (from === to for plain values). */
  readonly fields: FieldRange[];
  readonly data: Verdict | Buffer | undefined;
  readonly timeout: number | undefined;
  constructor(fields: FieldRange[], data?: Verdict | Buffer, timeout?: number) {
    this.fields = fields;
    this.data = data;
    this.timeout = timeout;
  }
  isRange(): boolean {
    return this.fields.some((f) => !f.from.equals(f.to));
  }
}

export interface SetOptions {
  family: Family;
  table: string;
  name: string;
  /** one type, or several for a concatenation (ipv4_addr . inet_proto . inet_service) */
  key: KeyTypeName | readonly KeyTypeName[];
  /** present for maps: the mapped type, "verdict" for verdict maps */
  data?: DataTypeName;
  flags?: SetFlag[];
  /** default element timeout in ms (needs the timeout flag) */
  timeout?: number;
  elements?: ElementInput[];
}

const UDATA = { KEYBYTEORDER: 0, DATABYTEORDER: 1, KEY_TYPEOF: 3, DATA_INTERVAL: 6 } as const;
/** nft's EXPR_CONCAT number, recorded in KEY_TYPEOF for concatenated keys. */
const EXPR_CONCAT = 13;

const fieldCache = new WeakMap<DataType, Map<string | number, FieldRange>>();
/**
 * parseFieldRange, memoized per type and text: the same addresses, protocols and ports recur in every
 * set and every update. Parsed ranges are never mutated. Bounded (16,384 texts per type, then cleared):
 * an entry with its buffers costs ~400 bytes of heap, and texts that never recur (deleted ranges) must not
 * pile up in a long-running agent. Elements the compiler makes from ranges do not come through here.
 */
function cachedFieldRange(t: DataType, text: string | number, use: CacheUse): FieldRange {
  if (use.off) return parseFieldRange(t, text);
  let cache = fieldCache.get(t);
  if (cache === undefined) {
    cache = new Map();
    fieldCache.set(t, cache);
  }
  let r = cache.get(text);
  if (r === undefined) {
    r = parseFieldRange(t, text);
    if (cache.size >= 16_384) cache.clear();
    cache.set(text, r);
    // A long list of texts that do not recur (100k distinct ranges) only churns the cache: past 4,096
    // lookups with fewer than one in eight found, the rest of the list is parsed directly.
    if (++use.misses >= 4096 && use.hits * 8 < use.misses) use.off = true;
  } else use.hits++;
  return r;
}

/** How one list of elements uses the field cache for one key field (see cachedFieldRange). */
interface CacheUse {
  hits: number;
  misses: number;
  off: boolean;
}

export class NamedSet {
  readonly kind: 'set' | 'map';
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  readonly key: DataType[];
  readonly data: DataType | 'verdict' | undefined;
  readonly flags: SetFlag[];
  readonly timeout: number | undefined;
  readonly elements: Element[];
  constructor(o: SetOptions) {
    this.family = o.family;
    this.table = o.table;
    this.name = o.name;
    this.kind = o.data === undefined ? 'set' : 'map';
    const d = this.describe();
    checkName(d, 'table', o.table);
    checkName(d, 'name', o.name);
    const keys = Array.isArray(o.key) ? o.key : [o.key];
    if (keys.length === 0) throw new NftValidationError(d, 'a set needs a key type', 'key');
    try {
      this.key = keys.map((k) => dataType(k));
      this.data = o.data === undefined ? undefined : o.data === 'verdict' ? 'verdict' : dataType(o.data);
    } catch (e) {
      throw new NftValidationError(d, (e as Error).message, 'key', { cause: e });
    }
    const order: SetFlag[] = ['constant', 'interval', 'timeout'];
    this.flags = order.filter((f) => o.flags?.includes(f));
    for (const f of o.flags ?? [])
      if (!order.includes(f)) throw new NftValidationError(d, `unknown flag ${f}`, 'flags');
    if (o.timeout !== undefined && !this.flags.includes('timeout')) {
      throw new NftValidationError(d, 'a default timeout needs the timeout flag', 'timeout');
    }
    if (this.flags.includes('interval') && this.key.length === 1 && !this.key[0]?.ordered) {
      throw new NftValidationError(d, `${this.key[0]?.name} keys cannot have the interval flag`, 'flags');
    }
    this.timeout = o.timeout;
    this.elements = o.elements ? this.parseElements(o.elements) : [];
  }

  get isConcat(): boolean {
    return this.key.length > 1;
  }
  get isInterval(): boolean {
    return this.flags.includes('interval');
  }
  /** NFTA_SET_KEY_LEN: every concatenation component padded to 4 bytes. */
  get keyLen(): number {
    return this.isConcat ? this.key.reduce((n, t) => n + padLen(t.len), 0) : (this.key[0]?.len ?? 0);
  }
  kernelFlags(): number {
    let f = 0;
    if (this.flags.includes('constant')) f |= NFT_SET_F.CONSTANT;
    if (this.isInterval) f |= NFT_SET_F.INTERVAL;
    if (this.kind === 'map') f |= NFT_SET_F.MAP;
    if (this.flags.includes('timeout')) f |= NFT_SET_F.TIMEOUT;
    // Concatenated ranges need the pipapo backend, which the kernel picks on NFT_SET_CONCAT.
    if (this.isInterval && this.isConcat) f |= NFT_SET_F.CONCAT;
    return f;
  }
  describe(): string {
    return `${this.kind} ${this.family} ${this.table} ${this.name}`;
  }
  spec(): string {
    return `${this.family} ${this.table} ${this.name}`;
  }
  typeText(): string {
    const k = this.key.map((t) => t.name).join(' . ');
    if (this.data === undefined) return k;
    return `${k} : ${this.data === 'verdict' ? 'verdict' : this.data.name}`;
  }
  body(elements: readonly Element[] = []): string {
    const parts = [`type ${this.typeText()};`];
    if (this.flags.length > 0) parts.push(`flags ${this.flags.join(',')};`);
    if (this.timeout !== undefined) parts.push(`timeout ${formatDuration(this.timeout)};`);
    if (elements.length > 0) parts.push(`elements = ${this.elementsText(elements)};`);
    return `{ ${parts.join(' ')} }`;
  }
  /** `add set|map ... { type ...; flags ...; elements = { ... }; }` */
  toString(): string {
    return `add ${this.kind} ${this.spec()} ${this.body(this.elements)}`;
  }

  elementsText(elements: readonly Element[]): string {
    return `{ ${elements.map((e) => this.formatElement(e)).join(', ')} }`;
  }

  formatElement(e: Element): string {
    let s = e.fields.map((r, i) => formatFieldRange(this.key[i] as DataType, r)).join(' . ');
    if (e.timeout !== undefined) s += ` timeout ${formatDuration(e.timeout)}`;
    if (e.data !== undefined) {
      s += ` : ${Buffer.isBuffer(e.data) ? (this.data as DataType).format(e.data) : formatVerdict(e.data)}`;
    }
    return s;
  }

  /** Parses and validates element inputs against this set's types and flags. */
  parseElements(inputs: readonly ElementInput[]): Element[] {
    const d = this.describe();
    // Per key field: the addresses of a long list may never recur while its protocols always do.
    const use = this.key.map((): CacheUse => ({ hits: 0, misses: 0, off: false }));
    const out = inputs.map((input) => {
      try {
        return this.parseElement(input, use);
      } catch (e) {
        if (e instanceof ValueError) {
          throw new NftValidationError(d, `element ${JSON.stringify(input)}: ${e.message}`, 'elements', {
            cause: e,
          });
        }
        throw e;
      }
    });
    if (this.isInterval && !this.isConcat) {
      const sorted = sortedByStart(out);
      for (let i = 1; i < sorted.length; i++) {
        const prev = sorted[i - 1]!.fields[0]!;
        const cur = sorted[i]!.fields[0]!;
        if (Buffer.compare(cur.from, prev.to) <= 0) {
          const t = this.key[0] as DataType;
          throw new NftValidationError(
            d,
            `elements ${formatFieldRange(t, prev)} and ${formatFieldRange(t, cur)} overlap`,
            'elements',
          );
        }
      }
    }
    return out;
  }

  /**
   * Packed elements checked against this set: its key layout, verdicts exactly when it is a verdict map.
   * A concatenated interval set or a set of single values (no interval flag) without data takes them as
   * they are (encoded straight from the slab); any other set gets them as elements, checked like parsed
   * ones (a plain interval set's kernel form needs sorted start and end markers, a map's its verdicts).
   */
  acceptPacked(p: PackedElements): PackedElements | Element[] {
    const d = this.describe();
    if ((p.verdicts !== undefined) !== (this.data === 'verdict'))
      throw new NftValidationError(
        d,
        this.data === undefined
          ? 'packed elements of a set carry no verdicts'
          : 'packed map elements need verdicts',
        'elements',
      );
    if (p.keyLen !== this.keyLen)
      throw new NftValidationError(
        d,
        `packed elements have ${p.keyLen}-byte keys, the set's are ${this.keyLen} (${this.typeText()})`,
        'elements',
      );
    if (this.data === undefined) {
      if (this.isInterval ? this.isConcat || packedInOrder(p) : packedSingles(p)) return p;
    }
    return this.parseElements(this.unpack(p));
  }

  /**
   * Parsed elements of a set without data in the packed form (sorted by start for a plain interval set;
   * a set without the interval flag gets from = to), or undefined when some element has a timeout or
   * the set is a map.
   */
  packElements(elements: readonly Element[]): PackedElements | undefined {
    if (this.data !== undefined || elements.length === 0) return undefined;
    for (const e of elements) if (e.timeout !== undefined) return undefined;
    const len = this.keyLen;
    const slab = Buffer.alloc(2 * len * elements.length);
    const sorted = this.isConcat || !this.isInterval ? elements : sortedByStart(elements);
    let off = 0;
    for (const e of sorted) {
      let at = off;
      for (let i = 0; i < e.fields.length; i++) {
        const f = e.fields[i]!;
        putBytes(f.from, slab, at);
        putBytes(f.to, slab, at + len);
        at += this.isConcat ? padLen((this.key[i] as DataType).len) : f.from.length;
      }
      off += 2 * len;
    }
    return new PackedElements(len, elements.length, slab);
  }

  /** Packed elements as element objects (for text and for sets that are not concatenated). */
  unpack(p: PackedElements): Element[] {
    const out: Element[] = [];
    const len = p.keyLen;
    for (let i = 0; i < p.count; i++) {
      const fields: FieldRange[] = [];
      let at = 2 * i * len;
      for (const t of this.key) {
        fields.push({
          from: Buffer.from(p.slab.subarray(at, at + t.len)),
          to: Buffer.from(p.slab.subarray(at + len, at + len + t.len)),
        });
        at += this.isConcat ? padLen(t.len) : t.len;
      }
      out.push(new Element(fields, p.verdicts?.[i]));
    }
    return out;
  }

  private parseElement(input: ElementInput, use: CacheUse[]): Element {
    if (input instanceof Element) {
      const fields = input.fields;
      let fits = fields.length === this.key.length;
      for (let i = 0; fits && i < fields.length; i++) {
        const len = (this.key[i] as DataType).len;
        fits = fields[i]!.from.length === len && fields[i]!.to.length === len;
      }
      if (!fits) throw new ValueError(`a parsed element does not fit the key (${this.typeText()})`);
      if (!this.isInterval && input.isRange())
        throw new ValueError('ranges and prefixes need a set with the interval flag');
      if ((input.data === undefined) !== (this.data === undefined))
        throw new ValueError(
          this.data === undefined ? 'a set element has no data' : 'a map element needs data',
        );
      return input;
    }
    let keyParts: Array<string | number>;
    let dataIn: string | Verdict | undefined;
    let timeout: number | undefined;
    if (typeof input === 'string') {
      const colon = input.indexOf(' : ');
      const keyText = colon >= 0 ? input.slice(0, colon) : input;
      dataIn = colon >= 0 ? input.slice(colon + 3).trim() : undefined;
      keyParts = keyText.split(' . ');
    } else {
      keyParts = Array.isArray(input.key) ? input.key : input.key.split(' . ');
      dataIn = input.data;
      timeout = input.timeout;
    }
    if (keyParts.length !== this.key.length) {
      throw new ValueError(
        `expected ${this.key.length} key field(s) (${this.typeText()}), got ${keyParts.length}`,
      );
    }
    // A loop, not map and some: this runs once per element of lists of 100k texts.
    const fields: FieldRange[] = new Array(keyParts.length);
    for (let i = 0; i < keyParts.length; i++) {
      const f = cachedFieldRange(this.key[i] as DataType, keyParts[i]!, use[i]!);
      fields[i] = f;
      // A single value's range holds one buffer twice (parseFieldRange): no compare for it.
      if (!this.isInterval && f.from !== f.to && !f.from.equals(f.to))
        throw new ValueError('ranges and prefixes need a set with the interval flag');
    }
    let data: Verdict | Buffer | undefined;
    if (this.data === undefined) {
      if (dataIn !== undefined) throw new ValueError('a set element has no data (this is not a map)');
    } else {
      if (dataIn === undefined) throw new ValueError('a map element needs data');
      if (this.data === 'verdict') {
        const v = typeof dataIn === 'string' ? parseVerdict(dataIn) : dataIn;
        if (!v) throw new ValueError(`not a verdict: ${JSON.stringify(dataIn)}`);
        data = v;
      } else {
        if (typeof dataIn !== 'string') throw new ValueError('map data must be a value');
        data = this.data.parse(dataIn);
      }
    }
    if (timeout !== undefined) {
      if (!this.flags.includes('timeout'))
        throw new ValueError('element timeouts need the timeout flag on the set');
      if (!Number.isInteger(timeout) || timeout <= 0) throw new ValueError(`bad timeout ${timeout}`);
    }
    return new Element(fields, data, timeout);
  }

  encode(w: Writer, id: number): void {
    w.str(NFTA_SET.TABLE, this.table);
    w.str(NFTA_SET.NAME, this.name);
    w.u32be(NFTA_SET.FLAGS, this.kernelFlags());
    w.u32be(NFTA_SET.KEY_TYPE, concatTypeId(this.key));
    w.u32be(NFTA_SET.KEY_LEN, this.keyLen);
    if (this.data !== undefined) {
      // NFTA_SET_DATA_TYPE is u32 big-endian: NFT_DATA_VERDICT (0xffffff00) or the datatype id.
      w.u32be(NFTA_SET.DATA_TYPE, this.data === 'verdict' ? NFT_DATA_VERDICT : this.data.id);
      w.u32be(NFTA_SET.DATA_LEN, this.data === 'verdict' ? 0 : this.data.len);
    }
    w.u32be(NFTA_SET.ID, id);
    if (this.flags.includes('constant') && this.elements.length > 0) {
      // nft sizes a constant set exactly (NFTA_SET_DESC_SIZE, u32 big-endian): it can never grow.
      w.nest(NFTA_SET.DESC, () => w.u32be(NFTA_SET_DESC.SIZE, this.elements.length));
    } else if (this.isInterval && this.isConcat) {
      // NFTA_SET_DESC_CONCAT: the unpadded length of every field, so pipapo knows the field boundaries.
      w.nest(NFTA_SET.DESC, () =>
        w.nest(NFTA_SET_DESC.CONCAT, () => {
          for (const t of this.key) w.nest(NFTA_LIST_ELEM, () => w.u32be(NFTA_SET_FIELD_LEN, t.len));
        }),
      );
    }
    if (this.timeout !== undefined) w.u64be(NFTA_SET.TIMEOUT, this.timeout);
    w.bytesAttr(NFTA_SET.USERDATA, this.userdata());
  }

  /** The userdata nft stores (its TLVs are u8 type, u8 len, host-endian u32 values): listing relies on it. */
  userdata(): Buffer {
    const parts: Buffer[] = [];
    const u32 = (type: number, v: number) => {
      const b = Buffer.alloc(6);
      b[0] = type;
      b[1] = 4;
      if (endianness() === 'LE') b.writeUInt32LE(v, 2);
      else b.writeUInt32BE(v, 2);
      parts.push(b);
    };
    u32(UDATA.KEYBYTEORDER, this.isConcat ? 0 : (this.key[0]?.udataByteorder ?? 0));
    if (this.data !== undefined)
      u32(UDATA.DATABYTEORDER, this.data === 'verdict' ? 0 : this.data.udataByteorder);
    if (this.isConcat) {
      const inner = Buffer.alloc(8);
      inner[0] = 0; // NFTNL_UDATA_SET_TYPEOF_EXPR
      inner[1] = 4;
      if (endianness() === 'LE') inner.writeUInt32LE(EXPR_CONCAT, 2);
      else inner.writeUInt32BE(EXPR_CONCAT, 2);
      inner[6] = 1; // NFTNL_UDATA_SET_TYPEOF_DATA, empty: the components are plain datatypes
      inner[7] = 0;
      parts.push(Buffer.from([UDATA.KEY_TYPEOF, inner.length]), inner);
    }
    if (this.data !== undefined) u32(UDATA.DATA_INTERVAL, 0);
    return Buffer.concat(parts);
  }

  static decode(family: Family, a: Attrs, elements: Element[] = []): NamedSet {
    const name = a.str(NFTA_SET.NAME) ?? '';
    const table = a.str(NFTA_SET.TABLE) ?? '';
    const flags = a.u32be(NFTA_SET.FLAGS) ?? 0;
    const keyTypes = splitConcatTypeId(a.u32be(NFTA_SET.KEY_TYPE) ?? 0);
    const where = `set ${family} ${table} ${name}`;
    if (!keyTypes || keyTypes.length === 0) throw new NftValidationError(where, 'unsupported key type');
    const o: SetOptions = { family, table, name, key: keyTypes.map((t) => t.name) };
    if (flags & NFT_SET_F.MAP) {
      const dt = a.u32be(NFTA_SET.DATA_TYPE) ?? 0;
      if (dt === NFT_DATA_VERDICT || dt === VERDICT_TYPE_ID) o.data = 'verdict';
      else {
        const t = dataTypeById(dt);
        if (!t) throw new NftValidationError(where, `unsupported data type ${dt}`);
        o.data = t.name;
      }
    }
    const f: SetFlag[] = [];
    if (flags & NFT_SET_F.CONSTANT) f.push('constant');
    if (flags & NFT_SET_F.INTERVAL) f.push('interval');
    if (flags & NFT_SET_F.TIMEOUT) f.push('timeout');
    o.flags = f;
    const timeout = a.u64be(NFTA_SET.TIMEOUT);
    if (timeout !== undefined && timeout > 0n) o.timeout = Number(timeout);
    const s = new NamedSet(o);
    // Not push(...elements): a spread of a few hundred thousand arguments overflows the stack.
    for (const e of elements) s.elements.push(e);
    return s;
  }

  /**
   * Element attributes for NEWSETELEM/DELSETELEM, in kernel form: a non-concatenated interval set gets a
   * start element plus an end element (key = last + 1, NFT_SET_ELEM_INTERVAL_END); concatenated ranges
   * carry their inclusive end in NFTA_SET_ELEM_KEY_END instead.
   */
  kernelElements(elements: readonly Element[], forAdd: boolean, leadingZeroEnd: boolean): KernelElement[] {
    const out: KernelElement[] = [];
    if (!this.isInterval) {
      for (const e of elements)
        out.push({
          key: this.packKey(e.fields.map((f) => f.from)),
          flags: 0,
          timeout: e.timeout,
          data: e.data,
        });
      return out;
    }
    if (this.isConcat) {
      // Every key and key end is a view into one zeroed slab (padding stays zero): one allocation per
      // call instead of two per element.
      const len = this.keyLen;
      const slab = Buffer.alloc(elements.length * 2 * len);
      let off = 0;
      for (const e of elements) {
        const key = slab.subarray(off, off + len);
        const keyEnd = slab.subarray(off + len, off + 2 * len);
        let at = off;
        for (let i = 0; i < e.fields.length; i++) {
          const f = e.fields[i]!;
          f.from.copy(slab, at);
          f.to.copy(slab, at + len);
          at += padLen((this.key[i] as DataType).len);
        }
        off += 2 * len;
        out.push({ key, keyEnd, flags: 0, timeout: e.timeout, data: e.data });
      }
      return out;
    }
    const sorted = sortedByStart(elements);
    const first = sorted[0]?.fields[0];
    // nft opens a fresh interval set with an end marker at 0 when the first range starts above 0.
    if (forAdd && leadingZeroEnd && first?.from.some((b) => b !== 0)) {
      out.push({ key: Buffer.alloc(first.from.length), flags: NFT_SET_ELEM_INTERVAL_END });
    }
    for (const e of sorted) {
      const r = e.fields[0]!;
      out.push({ key: r.from, flags: 0, timeout: e.timeout, data: e.data });
      const end = increment(r.to);
      if (end) out.push({ key: end, flags: NFT_SET_ELEM_INTERVAL_END, timeout: e.timeout });
      else out[out.length - 1]!.openEnded = true;
    }
    return out;
  }

  private packKey(values: Buffer[]): Buffer {
    if (!this.isConcat) return values[0] as Buffer;
    const out = Buffer.alloc(this.keyLen);
    let off = 0;
    values.forEach((v, i) => {
      v.copy(out, off);
      off += padLen((this.key[i] as DataType).len);
    });
    return out;
  }

  private unpackKey(key: Buffer): Buffer[] {
    if (!this.isConcat) return [Buffer.from(key.subarray(0, this.key[0]?.len))];
    const out: Buffer[] = [];
    let off = 0;
    for (const t of this.key) {
      out.push(Buffer.from(key.subarray(off, off + t.len)));
      off += padLen(t.len);
    }
    return out;
  }

  /** Rebuilds elements from what the kernel lists (pairing interval start and end markers). */
  elementsFromKernel(kes: readonly KernelElement[]): Element[] {
    if (!this.isInterval || this.isConcat) {
      return kes.map((k) => {
        const from = this.unpackKey(k.key);
        const to = k.keyEnd ? this.unpackKey(k.keyEnd) : from;
        return new Element(
          from.map((f, i) => ({ from: f, to: to[i] as Buffer })),
          k.data,
          k.timeout,
        );
      });
    }
    const sorted = [...kes].sort((a, b) => {
      const c = Buffer.compare(a.key, b.key);
      if (c !== 0) return c;
      return (b.flags & NFT_SET_ELEM_INTERVAL_END) - (a.flags & NFT_SET_ELEM_INTERVAL_END);
    });
    const out: Element[] = [];
    for (let i = 0; i < sorted.length; i++) {
      const k = sorted[i]!;
      if (k.flags & NFT_SET_ELEM_INTERVAL_END) continue;
      const next = sorted[i + 1];
      const from = Buffer.from(k.key);
      // The range ends just before the next marker (its end marker, or an adjacent start); the last range
      // may have no end marker at all when it runs to the maximum value.
      const to = next ? decrement(next.key) : Buffer.alloc(from.length, 0xff);
      out.push(new Element([{ from, to }], k.data, k.timeout));
    }
    return out;
  }

  /**
   * An upper bound of the bytes one element of this set takes in an element message (its list entry as
   * kernelElements and encodeKernelElement write it; for a plain interval set the start and the end
   * marker). `chainName`: the longest chain name a verdict element names. Kept next to the encoders it
   * mirrors; tests hold it against real encodings.
   */
  elementBytesBound(chainName = 0): number {
    const pad4 = (n: number) => (n + 3) & ~3;
    const key = 8 + pad4(this.keyLen);
    const timeout = this.flags.includes('timeout') ? 12 : 0;
    // list entry and KEY; a concatenated range its KEY_END
    let one = 4 + key + timeout;
    if (this.isInterval && this.isConcat) one += key;
    if (this.data === 'verdict') one += 8 + 8 + 4 + pad4(chainName + 1);
    else if (this.data !== undefined) one += 8 + pad4(this.data.len);
    if (!this.isInterval || this.isConcat) return one;
    // A plain interval range: its start and its end marker (list entry, FLAGS, KEY, TIMEOUT), or the start
    // alone with the open-end userdata (12 bytes, less than an end marker).
    return one + 4 + 8 + key + timeout;
  }

  /** Writes one element (inside an NFTA_SET_ELEM_LIST_ELEMENTS list entry). */
  static encodeKernelElement(w: Writer, k: KernelElement): void {
    if (k.flags) w.u32be(NFTA_SET_ELEM.FLAGS, k.flags);
    if (k.timeout !== undefined) w.u64be(NFTA_SET_ELEM.TIMEOUT, k.timeout);
    const key = w.begin(NFTA_SET_ELEM.KEY);
    w.bytesAttr(NFTA_DATA.VALUE, k.key);
    w.end(key);
    if (k.keyEnd) encodeValueData(w, NFTA_SET_ELEM.KEY_END, k.keyEnd);
    if (k.data !== undefined) {
      if (Buffer.isBuffer(k.data)) encodeValueData(w, NFTA_SET_ELEM.DATA, k.data);
      else encodeVerdictData(w, NFTA_SET_ELEM.DATA, k.data);
    }
    if (k.openEnded) {
      // NFTNL_UDATA_SET_ELEM_FLAGS (u8 type 1, len 4) = NFTNL_SET_ELEM_F_INTERVAL_OPEN, host-endian u32.
      const ud = Buffer.from([1, 4, 0, 0, 0, 0]);
      if (HOST_IS_LE) ud.writeUInt32LE(1, 2);
      else ud.writeUInt32BE(1, 2);
      w.bytesAttr(NFTA_SET_ELEM.USERDATA, ud);
    }
  }

  /**
   * Writes packed elements from `i` on, each in its own list entry numbered from `index`, while the list
   * (opened at `list`) is under `limit` bytes; returns the next element and entry number. The bytes are
   * those encodeKernelElement writes for the elements kernelElements makes (a plain interval range: its
   * start, then its end marker at last + 1 in another entry, or the open-end userdata when it runs to the
   * maximum), but copied from a template at fixed offsets: no call, closure or object per element.
   * Packed elements of a plain interval set reach here only in order and disjoint.
   */
  static encodePacked(
    w: Writer,
    p: PackedElements,
    mode: PackedMode,
    i: number,
    index: number,
    list: number,
    limit: number,
  ): [next: number, index: number] {
    const len = p.keyLen;
    const t = packedTemplates(len, mode);
    // One element's entries are at most `t.most` bytes: the message stays under `limit` plus one element.
    w.ensure(limit - (w.pos - list) + t.most);
    const stop = list + limit;
    const size = t.a.length + t.b.length;
    // Whole 32-bit words where the key length and both buffers allow (IPv4/IPv6 keys and every
    // concatenation): a quarter of the stores.
    const words = len % 4 === 0 && w.buf.byteOffset % 4 === 0 && p.slab.byteOffset % 4 === 0;
    const run =
      mode !== 'intervals' ? (words ? concatWords : concatBytes) : words ? intervalWords : intervalBytes;
    const v: RunViews = {
      buf: w.buf,
      buf32: words ? new Uint32Array(w.buf.buffer, w.buf.byteOffset, w.buf.length >>> 2) : NO_WORDS,
      slab: p.slab,
      slab32: words ? new Uint32Array(p.slab.buffer, p.slab.byteOffset, p.slab.length >>> 2) : NO_WORDS,
      t,
      len,
    };
    while (i < p.count && w.pos < stop) {
      // Short runs from this loop (not one long one): every run executes its whole body unoptimized
      // first, so the optimized code never meets an operation without type feedback and deoptimizes.
      const want = Math.min(RUN, p.count - i, Math.ceil((stop - w.pos) / size));
      const done = run(v, w.pos, i, index, want);
      w.pos += done * size;
      i += done;
      index += mode === 'intervals' ? 2 * done : done;
      if (done < want) {
        // A plain range that runs to the maximum: start and open-end userdata, by the general encoder.
        const e = w.begin(index++ & 0x3fff || NFTA_LIST_ELEM);
        const first = 2 * i * len;
        NamedSet.encodeKernelElement(w, {
          key: Buffer.from(p.slab.subarray(first, first + len)),
          flags: 0,
          openEnded: true,
        });
        w.end(e);
        i++;
      }
    }
    return [i, index];
  }

  static decodeKernelElement(a: Attrs): KernelElement {
    const key = a.nested(NFTA_SET_ELEM.KEY)?.get(NFTA_DATA.VALUE) ?? Buffer.alloc(0);
    const keyEnd = a.nested(NFTA_SET_ELEM.KEY_END)?.get(NFTA_DATA.VALUE);
    const dataAttrs = a.nested(NFTA_SET_ELEM.DATA);
    let data: Buffer | Verdict | undefined;
    if (dataAttrs)
      data = dataAttrs.has(NFTA_DATA.VERDICT) ? decodeVerdictData(dataAttrs) : dataAttrs.get(NFTA_DATA.VALUE);
    const timeout = a.u64be(NFTA_SET_ELEM.TIMEOUT);
    return {
      key: Buffer.from(key),
      ...(keyEnd ? { keyEnd: Buffer.from(keyEnd) } : {}),
      flags: a.u32be(NFTA_SET_ELEM.FLAGS) ?? 0,
      ...(timeout !== undefined ? { timeout: Number(timeout) } : {}),
      ...(data !== undefined ? { data: Buffer.isBuffer(data) ? Buffer.from(data) : data } : {}),
    };
  }
}

export interface KernelElement {
  key: Buffer;
  /** a range running to the maximum value has no end marker; nft flags it in the element userdata */
  openEnded?: boolean;
  keyEnd?: Buffer;
  flags: number;
  timeout?: number | undefined;
  data?: Verdict | Buffer | undefined;
}

/**
 * How packed elements are written: `ranges` (concatenated interval sets: KEY and KEY_END), `intervals`
 * (plain interval sets: a start and an end marker), `keys` (sets without the interval flag: KEY alone,
 * from parsed elements only).
 */
export type PackedMode = 'ranges' | 'intervals' | 'keys';

interface PackedTemplate {
  /** A concatenated element's entry, or a plain interval's start entry, with zero key bytes. */
  a: Buffer;
  /** A plain interval's end marker entry (empty for concatenations). */
  b: Buffer;
  /** The same as 32-bit words (every entry is a multiple of 4 bytes). */
  a32: Uint32Array;
  b32: Uint32Array;
  /** Offset of the key in `a`; of the key end in `a` (ranges) or `b` (the end marker); -1 for keys. */
  keyAt: number;
  keyEndAt: number;
  /** The most bytes one element writes (an open-ended range included). */
  most: number;
}
const templates = new Map<string, PackedTemplate>();
/** The entries of one packed element, written once by the general encoder so their bytes are its bytes. */
function packedTemplates(len: number, mode: PackedMode): PackedTemplate {
  const id = `${mode} ${len}`;
  let t = templates.get(id);
  if (t !== undefined) return t;
  const zero = Buffer.alloc(len);
  const write = (k: KernelElement): Buffer => {
    const w = new Writer(256);
    const e = w.begin(NFTA_LIST_ELEM);
    NamedSet.encodeKernelElement(w, k);
    w.end(e);
    return Buffer.from(w.bytes());
  };
  // The value of a KEY or KEY_END sits after the entry header, its nest header and its own header.
  const a = write(mode === 'ranges' ? { key: zero, keyEnd: zero, flags: 0 } : { key: zero, flags: 0 });
  const b = mode !== 'intervals' ? Buffer.alloc(0) : write({ key: zero, flags: NFT_SET_ELEM_INTERVAL_END });
  const keyAt = 12;
  const keyEndAt = mode === 'ranges' ? 12 + 8 + ((len + 3) & ~3) : mode === 'intervals' ? 12 + 8 : -1;
  const open = write({ key: zero, flags: 0, openEnded: true }).length;
  const words = (x: Buffer) => new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.length));
  t = { a, b, a32: words(a), b32: words(b), keyAt, keyEndAt, most: Math.max(a.length + b.length, open) };
  templates.set(id, t);
  return t;
}

/** Elements per call of a run function (see encodePacked). */
const RUN = 64;
const NO_WORDS = new Uint32Array(0);

interface RunViews {
  buf: Buffer;
  /** `buf` as words (empty when not word-aligned). */
  buf32: Uint32Array;
  slab: Buffer;
  slab32: Uint32Array;
  t: PackedTemplate;
  len: number;
}

/** The list entry type of entry `index` (libnftnl's numbering), with NLA_F_NESTED, patched in place. */
function entryType(buf: Buffer, pos: number, index: number): void {
  const type = (index & 0x3fff || NFTA_LIST_ELEM) | NLA_F_NESTED;
  buf[pos + (HOST_IS_LE ? 2 : 3)] = type & 0xff;
  buf[pos + (HOST_IS_LE ? 3 : 2)] = type >>> 8;
}

/** Adds one to the big-endian `len` bytes at `at` (an end marker's key is the range's last + 1). */
function incrementAt(buf: Buffer, at: number, len: number): void {
  for (let k = at + len - 1; k >= at; k--) {
    const v = (buf[k]! + 1) & 0xff;
    buf[k] = v;
    if (v !== 0) return;
  }
}

/** Writes `n` concatenated elements from element `i` at `pos` (word stores); returns n. */
function concatWords(v: RunViews, pos: number, i: number, index: number, n: number): number {
  const { buf, buf32, slab32, t } = v;
  const a32 = t.a32;
  const size = a32.length;
  const lw = v.len >>> 2;
  const keyAt = t.keyAt >>> 2;
  const keyEndAt = t.keyEndAt >> 2;
  let at = pos >>> 2;
  let s = (2 * i * v.len) >>> 2;
  for (let e = 0; e < n; e++) {
    for (let k = 0; k < size; k++) buf32[at + k] = a32[k]!;
    for (let k = 0; k < lw; k++) buf32[at + keyAt + k] = slab32[s + k]!;
    if (keyEndAt >= 0) for (let k = 0; k < lw; k++) buf32[at + keyEndAt + k] = slab32[s + lw + k]!;
    entryType(buf, at << 2, index + e);
    at += size;
    s += 2 * lw;
  }
  return n;
}

/** concatWords for keys or buffers that are not word-aligned. */
function concatBytes(v: RunViews, pos: number, i: number, index: number, n: number): number {
  const { buf, slab, t, len } = v;
  const a = t.a;
  const size = a.length;
  let s = 2 * i * len;
  for (let e = 0; e < n; e++) {
    for (let k = 0; k < size; k++) buf[pos + k] = a[k]!;
    for (let k = 0; k < len; k++) buf[pos + t.keyAt + k] = slab[s + k]!;
    if (t.keyEndAt >= 0) for (let k = 0; k < len; k++) buf[pos + t.keyEndAt + k] = slab[s + len + k]!;
    entryType(buf, pos, index + e);
    pos += size;
    s += 2 * len;
  }
  return n;
}

/** Whether the range of packed element at slab offset `s` (length `len`) ends at the maximum value. */
function endsAtMax(slab: Buffer, s: number, len: number): boolean {
  for (let k = s + len; k < s + 2 * len; k++) if (slab[k] !== 0xff) return false;
  return true;
}

/**
 * Writes up to `n` plain interval ranges from element `i` at `pos` (word stores): start entry, then end
 * marker entry. Stops before a range that ends at the maximum (it has no end marker); returns how many.
 */
function intervalWords(v: RunViews, pos: number, i: number, index: number, n: number): number {
  const { buf, buf32, slab, slab32, t, len } = v;
  const { a32, b32 } = t;
  const lw = len >>> 2;
  const keyAt = t.keyAt >>> 2;
  const keyEndAt = t.keyEndAt >>> 2;
  let at = pos >>> 2;
  let s = 2 * i * len;
  for (let e = 0; e < n; e++) {
    if (endsAtMax(slab, s, len)) return e;
    const sw = s >>> 2;
    for (let k = 0; k < a32.length; k++) buf32[at + k] = a32[k]!;
    for (let k = 0; k < lw; k++) buf32[at + keyAt + k] = slab32[sw + k]!;
    entryType(buf, at << 2, index + 2 * e);
    at += a32.length;
    for (let k = 0; k < b32.length; k++) buf32[at + k] = b32[k]!;
    for (let k = 0; k < lw; k++) buf32[at + keyEndAt + k] = slab32[sw + lw + k]!;
    entryType(buf, at << 2, index + 2 * e + 1);
    incrementAt(buf, (at + keyEndAt) << 2, len);
    at += b32.length;
    s += 2 * len;
  }
  return n;
}

/** intervalWords for keys or buffers that are not word-aligned. */
function intervalBytes(v: RunViews, pos: number, i: number, index: number, n: number): number {
  const { buf, slab, t, len } = v;
  const { a, b } = t;
  let s = 2 * i * len;
  for (let e = 0; e < n; e++) {
    if (endsAtMax(slab, s, len)) return e;
    for (let k = 0; k < a.length; k++) buf[pos + k] = a[k]!;
    for (let k = 0; k < len; k++) buf[pos + t.keyAt + k] = slab[s + k]!;
    entryType(buf, pos, index + 2 * e);
    pos += a.length;
    for (let k = 0; k < b.length; k++) buf[pos + k] = b[k]!;
    for (let k = 0; k < len; k++) buf[pos + t.keyEndAt + k] = slab[s + len + k]!;
    entryType(buf, pos, index + 2 * e + 1);
    incrementAt(buf, pos + t.keyEndAt, len);
    pos += b.length;
    s += 2 * len;
  }
  return n;
}

/** A key field's bytes (at most 16) written into `dst` at `at`: a loop costs less than Buffer#copy's call. */
function putBytes(src: Buffer, dst: Buffer, at: number): void {
  for (let k = 0; k < src.length; k++) dst[at + k] = src[k]!;
}

/** Whether every packed element is one value (first key = last key): what a set without intervals holds. */
function packedSingles(p: PackedElements): boolean {
  const len = p.keyLen;
  const slab = p.slab;
  for (let i = 0; i < p.count; i++) {
    const first = 2 * i * len;
    for (let k = 0; k < len; k++) if (slab[first + k] !== slab[first + len + k]) return false;
  }
  return true;
}

/** Whether packed plain-interval elements are sorted and disjoint (what the runs of the compiler give). */
function packedInOrder(p: PackedElements): boolean {
  const len = p.keyLen;
  const slab = p.slab;
  // Byte-wise compares in place: no view per element (100k ranges are checked on every full program).
  const cmp = (x: number, y: number): number => {
    for (let k = 0; k < len; k++) {
      const d = slab[x + k]! - slab[y + k]!;
      if (d !== 0) return d;
    }
    return 0;
  };
  for (let i = 0; i < p.count; i++) {
    const first = 2 * i * len;
    if (cmp(first, first + len) > 0) return false;
    if (i > 0 && cmp(first - len, first) >= 0) return false;
  }
  return true;
}

function sortedByStart(elements: readonly Element[]): readonly Element[] {
  let sorted = true;
  for (let i = 1; i < elements.length && sorted; i++) {
    sorted = Buffer.compare(elements[i - 1]!.fields[0]!.from, elements[i]!.fields[0]!.from) < 0;
  }
  return sorted
    ? elements
    : [...elements].sort((a, b) => Buffer.compare(a.fields[0]!.from, b.fields[0]!.from));
}

/** ms -> nft duration text ("1h", "1m30s", "250ms"). */
export function formatDuration(ms: number): string {
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ];
  let rest = ms;
  let out = '';
  for (const [u, n] of units) {
    const q = Math.floor(rest / n);
    if (q > 0) {
      out += `${q}${u}`;
      rest -= q * n;
    }
  }
  return out || '0s';
}

export { Attrs };
