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

/** Sorted, disjoint IPv4 ranges with their bounds as numbers: keys = [first0, last0, first1, last1, ...]. */
export interface KeyedRanges {
  ranges: readonly AddressRange[];
  keys: Float64Array;
}

/** Where v4Keyed keeps its results: Memo.v4Keys (lists are never mutated, so identity stands for content). */
export type KeyMemo = WeakMap<readonly AddressRange[], KeyedRanges | null>;

/**
 * The numeric keys of a sorted, disjoint IPv4 list, or undefined if it is not one. Memoized by list in
 * `memo`: plan sets keep their lists while their members stay, so the bigints of a list are converted
 * once, not at every rebuild of the sets that merge it.
 */
export function v4Keyed(ranges: readonly AddressRange[], memo?: KeyMemo): KeyedRanges | undefined {
  let k = memo?.get(ranges);
  if (k === undefined) {
    k = computeV4Keys(ranges) ?? null;
    memo?.set(ranges, k);
  }
  return k ?? undefined;
}

function computeV4Keys(ranges: readonly AddressRange[]): KeyedRanges | undefined {
  const keys = new Float64Array(ranges.length * 2);
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (r.family !== 4) return undefined;
    const first = Number(r.first);
    if (i > 0 && first <= keys[2 * i - 1]!) return undefined;
    keys[2 * i] = first;
    keys[2 * i + 1] = Number(r.last);
  }
  return { ranges, keys };
}

/**
 * The canonical ranges of single addresses, as mergeRanges would give them: IPv4 addresses are sorted and
 * joined as numbers (a peer set of thousands of pods is rebuilt whenever one of them changes, and sorting
 * bigint ranges cost most of it); the keys of an all-IPv4 result are kept in `memo` for v4Keyed. With `previous`
 * (this set's list before a change), equal IPv4 ranges are taken from it instead of allocated: a list of
 * 20,000 pods rebuilt for one of them would otherwise be 20,000 new objects that outlive the young
 * generation, and their old copies garbage for a full collection of the agent's heap.
 */
export function mergeAddresses(
  addresses: readonly Address[],
  previous?: readonly AddressRange[],
  memo?: KeyMemo,
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
  const out = sortedV4Ranges(v4, previous, memo);
  return v6.length > 0 ? [...out, ...mergeRanges(v6)] : out;
}

/**
 * mergeAddresses of IPv4 addresses given as sorted numbers (duplicates allowed), with the same reuse of
 * `previous`; the keys of the result are kept in `memo` for v4Keyed.
 */
export function sortedV4Ranges(
  v4: ArrayLike<number>,
  previous?: readonly AddressRange[],
  memo?: KeyMemo,
): AddressRange[] {
  const count = v4.length;
  const out: AddressRange[] = [];
  const keys = new Float64Array(2 * count);
  const old = previous && v4Keyed(previous, memo)?.keys;
  let j = 0;
  let k = 0;
  for (let i = 0; i < count; ) {
    const first = v4[i++]!;
    let last = first;
    while (i < count && v4[i]! <= last + 1) last = v4[i++]!;
    if (old !== undefined) while (j < old.length && old[j]! < first) j += 2;
    out.push(
      old !== undefined && old[j] === first && old[j + 1] === last
        ? previous![j / 2]!
        : { family: 4, first: BigInt(first), last: BigInt(last) },
    );
    keys[k++] = first;
    keys[k++] = last;
  }
  memo?.set(out, { ranges: out, keys: k === keys.length ? keys : keys.slice(0, k) });
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
