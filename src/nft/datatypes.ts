// nft datatypes usable as set keys, map data and rule operands: their kernel ids, sizes, byte order,
// parsing of user text and printing in the syntax `nft -f` accepts. Pure functions, no I/O.

import { isIPv6 } from 'node:net';
import { HOST_IS_LE } from '../netlink/attr.ts';
import { formatIpv6Groups } from '../util/ipv6.ts';

export type KeyTypeName = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service' | 'mark' | 'ifname';
export type DataTypeName = KeyTypeName | 'verdict';

/** nft's enum byteorder, as stored in the set userdata (NFTNL_UDATA_SET_KEYBYTEORDER). */
export const UDATA_BYTEORDER = { invalid: 0, host: 1, big: 2 } as const;

export interface DataType {
  readonly name: KeyTypeName;
  /** datatype id in NFTA_SET_KEY_TYPE / NFTA_SET_DATA_TYPE (nft's enum datatypes). */
  readonly id: number;
  /** bytes in a register / key. */
  readonly len: number;
  /** byte order of the value in registers and set keys: network (big) or the host's. */
  readonly byteorder: 'big' | 'host';
  /** what nft records in the set userdata for this type (listing depends on it). */
  readonly udataByteorder: number;
  /** whether ranges and prefixes make sense (ordered by memcmp, i.e. big-endian values). */
  readonly ordered: boolean;
  parse(text: string): Buffer;
  format(value: Buffer): string;
}

import { ValueError } from './errors.ts';

export { ValueError };

function ipv4Parse(text: string): Buffer {
  // Hand-rolled: element lists of 100k addresses make isIPv4 + split measurable.
  const out = Buffer.allocUnsafe(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + (c - 48);
      digits++;
    } else if (c === 46 && digits > 0 && value <= 255 && part < 4) {
      out[part++] = value;
      value = 0;
      digits = 0;
    } else {
      part = -1;
      break;
    }
  }
  if (part !== 4) throw new ValueError(`not an IPv4 address: ${JSON.stringify(text)}`);
  return out;
}

function ipv6Parse(text: string): Buffer {
  if (!isIPv6(text)) throw new ValueError(`not an IPv6 address: ${JSON.stringify(text)}`);
  let s = text;
  const out = Buffer.alloc(16);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4?.[1]) {
    const b = ipv4Parse(v4[1]);
    s = `${s.slice(0, -v4[1].length)}${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

function ipv6Format(b: Buffer): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  return formatIpv6Groups(g);
}

const PROTO_NAMES: Record<string, number> = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
};
const PROTO_BY_NUM: Record<number, string> = Object.fromEntries(
  Object.entries(PROTO_NAMES).map(([k, v]) => [v, k]),
);

/** A decimal of at most 15 digits, or NaN: the common case of intParse without a regular expression. */
function decimal(text: string): number {
  if (text.length === 0 || text.length > 15) return Number.NaN;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return Number.NaN;
    n = n * 10 + c;
  }
  return n;
}

function intParse(text: string, max: number, what: string): number {
  let n = decimal(text);
  if (Number.isNaN(n))
    n = /^0x[0-9a-f]+$/i.test(text)
      ? Number.parseInt(text, 16)
      : /^\d+$/.test(text)
        ? Number(text)
        : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new ValueError(`not a valid ${what}: ${JSON.stringify(text)}`);
  return n;
}

/**
 * An unsigned integer of `len` (2 or 4) bytes in network (big) or host byte order, as registers hold it.
 * From Node's shared pool, every byte written: a port of each of 100k element texts makes Buffer.alloc
 * and the generic writeUIntBE measurable.
 */
function uintBytes(n: number, len: 2 | 4, order: 'big' | 'host'): Buffer {
  const b = Buffer.allocUnsafe(len);
  const le = order === 'host' && HOST_IS_LE;
  if (len === 2) {
    if (le) b.writeUInt16LE(n, 0);
    else b.writeUInt16BE(n, 0);
  } else if (le) b.writeUInt32LE(n, 0);
  else b.writeUInt32BE(n, 0);
  return b;
}

function readUint(b: Buffer, len: number, order: 'big' | 'host'): number {
  return order === 'host' && HOST_IS_LE ? b.readUIntLE(0, len) : b.readUIntBE(0, len);
}

export function protoNumber(text: string): number {
  return PROTO_NAMES[text] ?? intParse(text, 255, 'inet_proto');
}
export function protoName(n: number): string {
  return PROTO_BY_NUM[n] ?? String(n);
}

export const DATATYPES: Record<KeyTypeName, DataType> = {
  ipv4_addr: {
    name: 'ipv4_addr',
    id: 7,
    len: 4,
    byteorder: 'big',
    udataByteorder: UDATA_BYTEORDER.big,
    ordered: true,
    parse: ipv4Parse,
    format: (b) => Array.from(b.subarray(0, 4)).join('.'),
  },
  ipv6_addr: {
    name: 'ipv6_addr',
    id: 8,
    len: 16,
    byteorder: 'big',
    udataByteorder: UDATA_BYTEORDER.big,
    ordered: true,
    parse: ipv6Parse,
    format: ipv6Format,
  },
  inet_proto: {
    name: 'inet_proto',
    id: 12,
    len: 1,
    byteorder: 'big',
    udataByteorder: UDATA_BYTEORDER.invalid,
    ordered: true,
    parse: (t) => Buffer.from([protoNumber(t)]),
    format: (b) => protoName(b.readUInt8(0)),
  },
  inet_service: {
    name: 'inet_service',
    id: 13,
    len: 2,
    byteorder: 'big',
    udataByteorder: UDATA_BYTEORDER.big,
    ordered: true,
    parse: (t) => uintBytes(intParse(t, 0xffff, 'inet_service (port)'), 2, 'big'),
    format: (b) => String(readUint(b, 2, 'big')),
  },
  mark: {
    name: 'mark',
    id: 19,
    len: 4,
    // The packet mark is a host-endian u32 in registers, so mark keys and cmp data are host order.
    byteorder: 'host',
    udataByteorder: UDATA_BYTEORDER.host,
    ordered: false,
    parse: (t) => uintBytes(intParse(t, 0xffffffff, 'mark'), 4, 'host'),
    format: (b) => `0x${readUint(b, 4, 'host').toString(16).padStart(8, '0')}`,
  },
  ifname: {
    name: 'ifname',
    id: 41,
    len: 16,
    byteorder: 'host',
    udataByteorder: UDATA_BYTEORDER.host,
    ordered: false,
    parse: (t) => {
      const s = t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
      if (s.length === 0 || Buffer.byteLength(s) > 15 || /["\s\\*]/.test(s)) {
        throw new ValueError(`not a valid interface name: ${JSON.stringify(t)}`);
      }
      const b = Buffer.alloc(16);
      b.write(s);
      return b;
    },
    format: (b) => {
      const nul = b.indexOf(0);
      return JSON.stringify(b.toString('utf8', 0, nul < 0 ? b.length : nul));
    },
  },
};

export const VERDICT_TYPE_ID = 1;

export function dataType(name: string): DataType {
  const t = (DATATYPES as Record<string, DataType>)[name];
  if (!t) throw new ValueError(`unknown datatype ${JSON.stringify(name)}`);
  return t;
}

export function dataTypeById(id: number): DataType | undefined {
  return Object.values(DATATYPES).find((t) => t.id === id);
}

/** Concatenated key types are encoded as one id: 6 bits per component, the first in the highest bits. */
export const TYPE_BITS = 6;
export function concatTypeId(types: readonly DataType[]): number {
  let id = 0;
  for (const t of types) id = id * (1 << TYPE_BITS) + t.id;
  return id;
}
export function splitConcatTypeId(id: number): DataType[] | undefined {
  const out: DataType[] = [];
  while (id > 0) {
    const t = dataTypeById(id % (1 << TYPE_BITS));
    if (!t) return undefined;
    out.unshift(t);
    id = Math.floor(id / (1 << TYPE_BITS));
  }
  return out;
}

/** In registers each concatenation component starts on a 32-bit boundary (NFT_REG32_SIZE). */
export const padLen = (n: number): number => (n + 3) & ~3;

/** An inclusive range of one field; from === to for a single value. */
export interface FieldRange {
  from: Buffer;
  to: Buffer;
}

/** The range of prefix base/bits; `from` is `base` itself when its host bits are clear (parsed, unshared). */
function prefixRange(base: Buffer, bits: number): FieldRange {
  let clear = true;
  // Every byte of `to` (and of `from` below) is written: no copy of base first.
  const to = Buffer.allocUnsafe(base.length);
  for (let i = 0; i < base.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    if ((base[i]! & mask) !== base[i]) clear = false;
    to[i] = (base[i]! & mask) | (~mask & 0xff);
  }
  if (clear) return { from: base, to };
  const from = Buffer.allocUnsafe(base.length);
  for (let i = 0; i < from.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    from[i] = base[i]! & (keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff);
  }
  return { from, to };
}

/** Parses "v", "a-b" or (for addresses) "a/len" into an inclusive range. */
export function parseFieldRange(t: DataType, text: string | number): FieldRange {
  const s = String(text).trim();
  const slash = s.indexOf('/');
  if (slash > 0 && (t.name === 'ipv4_addr' || t.name === 'ipv6_addr')) {
    const base = t.parse(s.slice(0, slash));
    const bits = intParse(s.slice(slash + 1), t.len * 8, 'prefix length');
    const r = prefixRange(base, bits);
    if (r.from !== base)
      throw new ValueError(`${s}: host bits set (did you mean ${t.format(r.from)}/${bits}?)`);
    return r;
  }
  const dash = t.name === 'ifname' ? -1 : s.indexOf('-', 1);
  if (dash > 0) {
    if (!t.ordered) throw new ValueError(`${t.name} values cannot be ranges: ${s}`);
    const from = t.parse(s.slice(0, dash).trim());
    const to = t.parse(s.slice(dash + 1).trim());
    if (Buffer.compare(from, to) > 0) throw new ValueError(`${s}: range start is above its end`);
    return { from, to };
  }
  const v = t.parse(s);
  return { from: v, to: v };
}

/** The prefix length if [from, to] is exactly one prefix, else undefined. */
export function rangePrefix(r: FieldRange): number | undefined {
  const n = r.from.length * 8;
  let bits = 0;
  while (bits < n) {
    const byte = bits >> 3;
    const bit = 7 - (bits & 7);
    const f = ((r.from[byte] ?? 0) >> bit) & 1;
    const t = ((r.to[byte] ?? 0) >> bit) & 1;
    if (f !== t) break;
    bits++;
  }
  for (let b = bits; b < n; b++) {
    const byte = b >> 3;
    const bit = 7 - (b & 7);
    if ((((r.from[byte] ?? 0) >> bit) & 1) !== 0 || (((r.to[byte] ?? 0) >> bit) & 1) !== 1) return undefined;
  }
  return bits;
}

/** Text of a range the way nft prints it: "v", "a/len" for address prefixes, else "a-b". */
export function formatFieldRange(t: DataType, r: FieldRange): string {
  if (r.from.equals(r.to)) return t.format(r.from);
  if (t.name === 'ipv4_addr' || t.name === 'ipv6_addr') {
    const p = rangePrefix(r);
    if (p !== undefined) return `${t.format(r.from)}/${p}`;
  }
  return `${t.format(r.from)}-${t.format(r.to)}`;
}

/** Big-endian +1; returns undefined on overflow (the range ends at the maximum value). */
export function increment(b: Buffer): Buffer | undefined {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] !== 0xff) {
      out[i] = (out[i] ?? 0) + 1;
      return out;
    }
    out[i] = 0;
  }
  return undefined;
}

export function decrement(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] !== 0) {
      out[i] = (out[i] ?? 0) - 1;
      return out;
    }
    out[i] = 0xff;
  }
  return out;
}
