// IP addresses, CIDRs and address ranges as bigints for both families; pure arithmetic, no I/O.
// Parsing is delegated to ip-num; formatting follows RFC 5952 so IPv6 text matches what nft and ip print.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpv6Groups } from '../util/ipv6.ts';

export type Family = 4 | 6;

export interface Address {
  family: Family;
  value: bigint;
}

/** An inclusive range of addresses of one family: a single address has first === last. */
export interface AddressRange {
  family: Family;
  first: bigint;
  last: bigint;
}

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

/** Parses an IPv4 or IPv6 address; returns undefined for anything else (callers name the field). */
export function parseAddress(text: string): Address | undefined {
  // Every pod address passes here (100k in a full sync): a plain dotted quad is read in one pass.
  const quad = dottedQuad(text);
  if (quad >= 0) return { family: 4, value: BigInt(quad) };
  const s = text.trim();
  if (isIPv4(s)) {
    const [a, b, c, d] = s.split('.').map(Number) as [number, number, number, number];
    return { family: 4, value: BigInt(((a << 24) >>> 0) + (b << 16) + (c << 8) + d) };
  }
  if (isIPv6(s) && !s.includes('%')) return { family: 6, value: parseIPv6Value(s) };
  return undefined;
}

/**
 * The value of a dotted-quad IPv4 address in exactly the form isIPv4 accepts (four decimal octets 0-255,
 * no leading zeros, no spaces), or -1 for anything else (which then takes the general path).
 */
function dottedQuad(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // A leading zero is allowed only as the whole octet.
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/**
 * The value of an IPv6 address already validated by isIPv6: groups around `::`, an optional embedded
 * IPv4 tail. Hand-written because it is on the agent's hot path (ip-num, the reference in the tests, takes
 * about 40 µs per address).
 */
function parseIPv6Value(text: string): bigint {
  let s = text;
  let tail: number[] = [];
  if (s.includes('.')) {
    const colon = s.lastIndexOf(':');
    const [a, b, c, d] = s
      .slice(colon + 1)
      .split('.')
      .map(Number) as [number, number, number, number];
    tail = [(a << 8) | b, (c << 8) | d];
    s = s.slice(0, colon + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const hex = (part: string) => (part === '' ? [] : part.split(':').map((h) => Number.parseInt(h, 16)));
  const gap = s.indexOf('::');
  let groups: number[];
  if (gap < 0) groups = [...hex(s), ...tail];
  else {
    const left = hex(s.slice(0, gap));
    const right = hex(s.slice(gap + 2));
    groups = [
      ...left,
      ...new Array<number>(8 - left.length - right.length - tail.length).fill(0),
      ...right,
      ...tail,
    ];
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

const v4Text = (v: number): string => `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;

export function formatAddress(address: Address): string {
  if (address.family === 4) return v4Text(Number(address.value));
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((address.value >> BigInt(i * 16)) & 0xffffn));
  return formatIpv6Groups(groups);
}

export interface Cidr {
  family: Family;
  prefix: number;
  /** The masked network address: `10.10.1.12/24` has network 10.10.1.0 (semantics point 6). */
  network: bigint;
}

/** Parses `addr/prefix`; host bits are masked. Returns a reason string when invalid. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return `'${text}' is not a CIDR (expected address/prefix, e.g. 10.0.0.0/24)`;
  const address = parseAddress(text.slice(0, slash));
  if (!address) return `'${text}' does not start with a valid IPv4 or IPv6 address`;
  const prefixText = text.slice(slash + 1);
  const bits = familyBits(address.family);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
    return `'${text}' has an invalid prefix length (0 to ${bits} for IPv${address.family})`;
  }
  const prefix = Number(prefixText);
  return { family: address.family, prefix, network: address.value & prefixMask(address.family, prefix) };
}

export function prefixMask(family: Family, prefix: number): bigint {
  const bits = BigInt(familyBits(family));
  const all = (1n << bits) - 1n;
  return (all >> BigInt(prefix)) ^ all;
}

export function cidrRange(cidr: Cidr): AddressRange {
  const hostMask = ((1n << BigInt(familyBits(cidr.family))) - 1n) >> BigInt(cidr.prefix);
  return { family: cidr.family, first: cidr.network, last: cidr.network | hostMask };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatAddress({ family: cidr.family, value: cidr.network })}/${cidr.prefix}`;
}

/** The one-address range of an address. */
export function addressRange(address: Address): AddressRange {
  return { family: address.family, first: address.value, last: address.value };
}

export function rangeContains(range: AddressRange, address: Address): boolean {
  return range.family === address.family && range.first <= address.value && address.value <= range.last;
}

function compareRanges(a: AddressRange, b: AddressRange): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.first !== b.first) return a.first < b.first ? -1 : 1;
  return a.last === b.last ? 0 : a.last < b.last ? -1 : 1;
}

/**
 * Sorts and merges overlapping or adjacent ranges (per family): the canonical form of an address set.
 * Ranges that merge with nothing are returned as the input objects themselves (callers never mutate
 * ranges), and sorted input is not copied: no allocation beyond the result.
 */
export function mergeRanges(ranges: readonly AddressRange[]): AddressRange[] {
  let ordered = true;
  for (let i = 1; i < ranges.length && ordered; i++) ordered = compareRanges(ranges[i - 1]!, ranges[i]!) <= 0;
  const sorted = ordered ? ranges : [...ranges].sort(compareRanges);
  const out: AddressRange[] = [];
  let last: AddressRange | undefined;
  let owned = false;
  for (const r of sorted) {
    if (last && last.family === r.family && r.first <= last.last + 1n) {
      if (r.last > last.last) {
        if (!owned) {
          last = { ...last };
          out[out.length - 1] = last;
          owned = true;
        }
        last.last = r.last;
      }
    } else {
      out.push(r);
      last = r;
      owned = false;
    }
  }
  return out;
}

/**
 * A range bound of one family: IPv4 as a number (exact in float64, no bigint arithmetic on the hot paths),
 * IPv6 as a bigint. The routines below are written once for both.
 */
export type Bound = number | bigint;

/** Sorted, disjoint inclusive ranges of one family as their bounds in turn: [first0, last0, first1, ...]. */
export type Bounds<T extends Bound> = ArrayLike<T>;

/** Bounds being written: a Float64Array for IPv4, an array of bigints for IPv6. */
export interface WritableBounds<T extends Bound> {
  [i: number]: T;
  readonly length: number;
  slice(start?: number, end?: number): WritableBounds<T>;
}

/** What the generic routines need of a family's bounds: one, its storage, and its conversions. */
export interface BoundKind<T extends Bound> {
  readonly family: Family;
  readonly one: T;
  alloc(n: number): WritableBounds<T>;
  of(value: bigint): T;
  big(value: T): bigint;
}

export const V4_BOUNDS: BoundKind<number> = {
  family: 4,
  one: 1,
  alloc: (n) => new Float64Array(n) as WritableBounds<number>,
  of: Number,
  big: BigInt,
};
export const V6_BOUNDS: BoundKind<bigint> = {
  family: 6,
  one: 1n,
  alloc: (n) => new Array<bigint>(n).fill(0n),
  of: (v) => v,
  big: (v) => v,
};

/** The bounds of a sorted, disjoint list of `kind`'s family, or undefined if it is not one. */
export function boundsOf<T extends Bound>(
  kind: BoundKind<T>,
  ranges: readonly AddressRange[],
): WritableBounds<T> | undefined {
  const out = kind.alloc(ranges.length * 2);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (r.family !== kind.family) return undefined;
    const first = kind.of(r.first);
    if (i > 0 && first <= out[2 * i - 1]!) return undefined;
    out[2 * i] = first;
    out[2 * i + 1] = kind.of(r.last);
  }
  return out;
}

/** Bounds as range objects. */
export function boundsRanges<T extends Bound>(kind: BoundKind<T>, b: Bounds<T>): AddressRange[] {
  const out: AddressRange[] = [];
  for (let i = 0; i < b.length; i += 2)
    out.push({ family: kind.family, first: kind.big(b[i]!), last: kind.big(b[i + 1]!) });
  return out;
}

// `+` on a type parameter of number | bigint is not expressible; both operands are always the same kind.
const plus = <T extends Bound>(a: T, b: T): T => ((a as number) + (b as number)) as T;
const minus = <T extends Bound>(a: T, b: T): T => ((a as number) - (b as number)) as T;

/**
 * The union of two lists of ranges, each sorted by first (overlaps allowed within one), joined where
 * they overlap or touch: a two-pointer pass, the one merge of ranges. The result is sorted and disjoint.
 */
export function unionBounds<T extends Bound>(kind: BoundKind<T>, a: Bounds<T>, b: Bounds<T>): Bounds<T> {
  const out = kind.alloc(a.length + b.length);
  const one = kind.one;
  let n = 0;
  let i = 0;
  let j = 0;
  let first = one;
  let last = one;
  let open = false;
  while (i < a.length || j < b.length) {
    let head: T;
    let end: T;
    if (j >= b.length || (i < a.length && a[i]! <= b[j]!)) {
      head = a[i]!;
      end = a[i + 1]!;
      i += 2;
    } else {
      head = b[j]!;
      end = b[j + 1]!;
      j += 2;
    }
    if (open && head <= plus(last, one)) {
      if (end > last) last = end;
      continue;
    }
    if (open) {
      out[n++] = first;
      out[n++] = last;
    }
    open = true;
    first = head;
    last = end;
  }
  if (open) {
    out[n++] = first;
    out[n++] = last;
  }
  return n === out.length ? out : out.slice(0, n);
}

/**
 * The union of many sorted, disjoint lists: merged in pairs, smallest first (a scan of every list's head
 * per element cost lists x elements: with cluster-wide peer lists of thousands of ranges, several per
 * run, that was most of a sync). The same list twice counts once; one list is passed through the merge,
 * since its ranges are disjoint but may touch.
 */
export function unionAll<T extends Bound>(kind: BoundKind<T>, lists: readonly Bounds<T>[]): Bounds<T> {
  const empty = kind.alloc(0);
  const queue = [...new Set(lists)].sort((a, b) => a.length - b.length);
  if (queue.length < 2) return unionBounds(kind, queue[0] ?? empty, empty);
  while (queue.length > 1) {
    const merged = unionBounds(kind, queue.shift()!, queue.shift()!);
    let at = queue.findIndex((q) => q.length >= merged.length);
    if (at < 0) at = queue.length;
    queue.splice(at, 0, merged);
  }
  return queue[0]!;
}

export function sameBounds<T extends Bound>(a: Bounds<T>, b: Bounds<T>): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A buffer patchBounds writes into and its caller keeps for the next call (see patchBounds). */
export interface Scratch<T extends Bound> {
  buf: WritableBounds<T> | undefined;
}

/**
 * A new element list for `union` that keeps every old element still inside it: an old range contained in
 * the union stays as it is, one that is not goes (appended to `gone`, first and last), and what no kept
 * range covers is added as the fewest ranges (appended to `come`). So a neighbour joining adds one
 * element instead of replacing a merged range (deletes cost far more than adds in the kernel's
 * concatenated sets), and a fresh build is still fully merged. Both inputs are sorted and disjoint; so is
 * the result, which is `old` itself when the ranges are the same.
 */
export function patchBounds<T extends Bound>(
  kind: BoundKind<T>,
  old: Bounds<T>,
  union: Bounds<T>,
  gone: T[],
  come: T[],
  scratch: Scratch<T>,
): Bounds<T> {
  if (sameBounds(old, union)) return old;
  // At most every old range kept plus a gap before each of them and one at the end of each union range;
  // written to the caller's scratch buffer and copied out at its real size (these are megabytes at
  // 100,000 pods, and allocating the bound at every change made the garbage collector run over the
  // whole heap).
  const bound = 2 * old.length + union.length;
  let out = scratch.buf;
  if (out === undefined || out.length < bound) {
    out = kind.alloc(Math.max(bound, 2 * (out?.length ?? 0)));
    scratch.buf = out;
  }
  const one = kind.one;
  let n = 0;
  let i = 0;
  for (let u = 0; u < union.length; u += 2) {
    const uFirst = union[u]!;
    const uLast = union[u + 1]!;
    let cursor = uFirst;
    for (; i < old.length; i += 2) {
      const oFirst = old[i]!;
      const oLast = old[i + 1]!;
      if (oFirst > uLast) break; // belongs to later
      if (oFirst >= uFirst && oLast <= uLast) {
        if (oFirst > cursor) {
          const gapLast = minus(oFirst, one);
          out[n++] = cursor;
          out[n++] = gapLast;
          come.push(cursor, gapLast);
        }
        out[n++] = oFirst;
        out[n++] = oLast;
        cursor = plus(oLast, one);
      } else gone.push(oFirst, oLast); // before u, or overlapping its edge: not inside the union any more
    }
    if (cursor <= uLast) {
      out[n++] = cursor;
      out[n++] = uLast;
      come.push(cursor, uLast);
    }
  }
  for (; i < old.length; i += 2) gone.push(old[i]!, old[i + 1]!);
  return out.slice(0, n);
}

/**
 * The canonical ranges of single addresses, as mergeRanges would give them: IPv4 addresses are sorted and
 * joined as numbers (a peer set of thousands of pods is rebuilt whenever one of them changes, and sorting
 * bigint ranges cost most of it). With `previous` (this set's list before a change), equal IPv4 ranges
 * are taken from it instead of allocated: a list of 20,000 pods rebuilt for one of them would otherwise
 * be 20,000 new objects that outlive the young generation, and their old copies garbage for a full
 * collection of the agent's heap.
 */
export function mergeAddresses(
  addresses: readonly Address[],
  previous?: readonly AddressRange[],
): AddressRange[] {
  let count = 0;
  for (const a of addresses) if (a.family === 4) count++;
  const v4 = new Float64Array(count);
  const v6: AddressRange[] = [];
  let n = 0;
  for (const a of addresses) {
    if (a.family === 4) v4[n++] = Number(a.value);
    else v6.push(addressRange(a));
  }
  v4.sort();
  const out = sortedV4Ranges(v4, previous);
  return v6.length > 0 ? [...out, ...mergeRanges(v6)] : out;
}

/** mergeAddresses of IPv4 addresses given as sorted numbers (duplicates allowed), with the same reuse of `previous`. */
export function sortedV4Ranges(v4: ArrayLike<number>, previous?: readonly AddressRange[]): AddressRange[] {
  const count = v4.length;
  const out: AddressRange[] = [];
  let j = 0;
  const old = previous ?? [];
  for (let i = 0; i < count; ) {
    const first = v4[i++]!;
    let last = first;
    while (i < count && v4[i]! <= last + 1) last = v4[i++]!;
    // The previous list is sorted (a canonical list): walk it alongside, as numbers.
    while (j < old.length && (old[j]!.family !== 4 || Number(old[j]!.first) < first)) j++;
    const o = old[j];
    out.push(
      o !== undefined && o.family === 4 && Number(o.first) === first && Number(o.last) === last
        ? o
        : { family: 4, first: BigInt(first), last: BigInt(last) },
    );
  }
  return out;
}

/** `ranges` minus `holes`, both per family; used for ipBlock `except` (carved out of its own peer only). */
export function subtractRanges(
  ranges: readonly AddressRange[],
  holes: readonly AddressRange[],
): AddressRange[] {
  let current = mergeRanges(ranges);
  for (const hole of mergeRanges(holes)) {
    const next: AddressRange[] = [];
    for (const r of current) {
      if (r.family !== hole.family || hole.last < r.first || hole.first > r.last) {
        next.push(r);
        continue;
      }
      if (hole.first > r.first) next.push({ family: r.family, first: r.first, last: hole.first - 1n });
      if (hole.last < r.last) next.push({ family: r.family, first: hole.last + 1n, last: r.last });
    }
    current = next;
  }
  return current;
}

/** An IPv4 range given as numbers, as formatRange writes it. */
export const formatV4Range = (first: number, last: number): string =>
  first === last ? v4Text(first) : `${v4Text(first)}-${v4Text(last)}`;

export function formatRange(range: AddressRange): string {
  // IPv4 without the intermediate Address objects: element texts of thousands of ranges go through here.
  if (range.family === 4) return formatV4Range(Number(range.first), Number(range.last));
  const first = formatAddress({ family: range.family, value: range.first });
  if (range.first === range.last) return first;
  return `${first}-${formatAddress({ family: range.family, value: range.last })}`;
}

/** A Map key for an address: a bigint, IPv6 values shifted above every IPv4 value (no string building). */
export const addressKey = (a: Address): bigint => (a.family === 4 ? a.value : a.value + (1n << 32n));
