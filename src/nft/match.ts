// Small builders that produce the exact expression sequences nft generates for common matches and
// statements ("ip saddr 10.0.0.0/8", "ip saddr . th dport @s", "ct state established,related", verdicts).
// Pure functions; the expressions themselves live in expr/.

import { HOST_IS_LE } from '../netlink/attr.ts';
import { dataType, type KeyTypeName, padLen, ValueError } from './datatypes.ts';
import type { CmpOp } from './expr/cmp.ts';
import {
  Bitwise,
  Cmp,
  Counter,
  Ct,
  type Expr,
  Immediate,
  Log,
  Lookup,
  Meta,
  Payload,
  Reject,
} from './expr/index.ts';
import type { LogOptions } from './expr/log.ts';
import { META_KEYS, type MetaKey } from './expr/meta.ts';
import { PAYLOAD_FIELDS } from './expr/payload.ts';
import { ICMP_CODES, ICMPV6_CODES, ICMPX_CODES } from './expr/reject.ts';
import { CT_STATE_BITS, type OperandType } from './render.ts';
import { parseVerdict, type Verdict } from './verdict.ts';

export type FieldName =
  | 'ip protocol'
  | 'ip saddr'
  | 'ip daddr'
  | 'ip6 nexthdr'
  | 'ip6 saddr'
  | 'ip6 daddr'
  | 'th sport'
  | 'th dport'
  | 'icmpv6 type'
  | 'meta l4proto'
  | 'meta nfproto'
  | 'meta mark'
  | 'meta protocol'
  | 'iifname'
  | 'oifname'
  | 'ct state'
  | 'ct mark';

interface FieldInfo {
  type: OperandType;
  len: number;
  load(dreg: number, len?: number): Expr;
}

function fieldInfo(name: FieldName): FieldInfo {
  const p = PAYLOAD_FIELDS[name];
  if (p)
    return {
      type: p.type,
      len: p.len,
      load: (dreg, len) => new Payload({ dreg, base: p.base, offset: p.offset, len: len ?? p.len }),
    };
  if (name === 'ct state' || name === 'ct mark') {
    const key = name === 'ct state' ? 'state' : 'mark';
    return { type: key === 'state' ? 'ct_state' : 'mark', len: 4, load: (dreg) => new Ct({ key, dreg }) };
  }
  const metaKey = (name.startsWith('meta ') ? name.slice(5) : name) as MetaKey;
  const m = META_KEYS[metaKey];
  if (!m) throw new ValueError(`unknown field ${name}`);
  return { type: m.type, len: m.len, load: (dreg) => new Meta({ key: metaKey, dreg }) };
}

/** Parses a single operand value into register bytes. */
export function operandValue(type: OperandType, text: string): Buffer {
  switch (type) {
    case 'nfproto': {
      const n = text === 'ipv4' ? 2 : text === 'ipv6' ? 10 : Number.NaN;
      if (Number.isNaN(n)) throw new ValueError(`meta nfproto must be ipv4 or ipv6, not ${text}`);
      return Buffer.from([n]);
    }
    case 'ether_type': {
      const n =
        text === 'ip'
          ? 0x0800
          : text === 'ip6'
            ? 0x86dd
            : text === 'arp'
              ? 0x0806
              : Number.parseInt(text, 16);
      const b = Buffer.alloc(2);
      b.writeUInt16BE(n);
      return b;
    }
    case 'ct_state': {
      let n = 0;
      for (const s of text.split(',')) {
        const bit = CT_STATE_BITS.find(([name]) => name === s.trim())?.[1];
        if (bit === undefined) throw new ValueError(`unknown ct state ${s}`);
        n |= bit;
      }
      return u32host(n);
    }
    case 'raw':
      return Buffer.from(text.replace(/^0x/, ''), 'hex');
    default:
      return dataType(type as KeyTypeName).parse(text);
  }
}

function u32host(n: number): Buffer {
  const b = Buffer.alloc(4);
  if (HOST_IS_LE) b.writeUInt32LE(n >>> 0);
  else b.writeUInt32BE(n >>> 0);
  return b;
}

function prefixMask(len: number, bits: number): Buffer {
  const m = Buffer.alloc(len);
  for (let i = 0; i < len; i++)
    m[i] = bits >= (i + 1) * 8 ? 0xff : bits > i * 8 ? (0xff << (8 - (bits - i * 8))) & 0xff : 0;
  return m;
}

/**
 * "<field> [op] <value>" as nft compiles it: prefixes load only the whole bytes of the prefix (or mask the
 * rest), "a-b" becomes cmp >= a, cmp <= b, ct state flags become bitwise & flags != 0.
 */
export function match(field: FieldName, value: string | number, op: CmpOp = 'eq'): Expr[] {
  const f = fieldInfo(field);
  const text = String(value).trim();
  if (f.type === 'ct_state') {
    if (op !== 'eq') throw new ValueError('ct state supports only a positive flag match');
    return [
      f.load(1),
      new Bitwise({ sreg: 1, dreg: 1, mask: operandValue('ct_state', text) }),
      new Cmp({ sreg: 1, op: 'neq', data: Buffer.alloc(4) }),
    ];
  }
  const slash = text.indexOf('/');
  if (slash > 0 && (f.type === 'ipv4_addr' || f.type === 'ipv6_addr')) {
    if (op !== 'eq' && op !== 'neq') throw new ValueError('a prefix match is = or !=');
    const bits = Number(text.slice(slash + 1));
    const addr = operandValue(f.type, text.slice(0, slash));
    if (!Number.isInteger(bits) || bits < 1 || bits > f.len * 8)
      throw new ValueError(`bad prefix length in ${text}`);
    const mask = prefixMask(f.len, bits);
    if (addr.some((b, i) => (b & ~(mask[i] ?? 0)) !== 0)) throw new ValueError(`${text}: host bits set`);
    if (bits === f.len * 8) return [f.load(1), new Cmp({ sreg: 1, op, data: addr })];
    if (bits % 8 === 0)
      return [f.load(1, bits / 8), new Cmp({ sreg: 1, op, data: addr.subarray(0, bits / 8) })];
    return [f.load(1), new Bitwise({ sreg: 1, dreg: 1, mask }), new Cmp({ sreg: 1, op, data: addr })];
  }
  const dash = f.type === 'ifname' ? -1 : text.indexOf('-', 1);
  if (dash > 0 && op === 'eq') {
    const from = operandValue(f.type, text.slice(0, dash));
    const to = operandValue(f.type, text.slice(dash + 1));
    return [
      f.load(1),
      new Cmp({ sreg: 1, op: 'gte', data: from }),
      new Cmp({ sreg: 1, op: 'lte', data: to }),
    ];
  }
  return [f.load(1), new Cmp({ sreg: 1, op, data: operandValue(f.type, text) })];
}

/**
 * Register number for a byte offset in the register file: 16-byte aligned offsets use the 128-bit names
 * (NFT_REG_1..4) as nft and the kernel's dumps do, the rest the 32-bit names (NFT_REG32_00 = 8...).
 */
export function registerAt(off: number): number {
  return off % 16 === 0 ? 1 + off / 16 : 8 + off / 4;
}

/** Loads fields into registers the way nft lays out a (concatenated) key: reg 1, then 32-bit registers. */
export function loadKey(fields: readonly FieldName[]): Expr[] {
  const out: Expr[] = [];
  let off = 0;
  fields.forEach((name) => {
    const f = fieldInfo(name);
    out.push(f.load(registerAt(off)));
    off += padLen(f.len);
  });
  return out;
}

/** "<fields> @set" / "<fields> != @set". */
export function inSet(fields: FieldName | FieldName[], set: string, opts: { invert?: boolean } = {}): Expr[] {
  const fs = Array.isArray(fields) ? fields : [fields];
  return [...loadKey(fs), new Lookup({ set, sreg: 1, invert: opts.invert ?? false })];
}

/** "<fields> vmap @map": the verdict comes from the map (dreg 0). */
export function vmap(fields: FieldName | FieldName[], map: string): Expr[] {
  const fs = Array.isArray(fields) ? fields : [fields];
  return [...loadKey(fs), new Lookup({ set: map, sreg: 1, dreg: 0 })];
}

export function verdict(v: Verdict | string): Expr {
  const parsed = typeof v === 'string' ? parseVerdict(v) : v;
  if (!parsed) throw new ValueError(`not a verdict: ${JSON.stringify(v)}`);
  return new Immediate({ verdict: parsed });
}

export function counter(): Expr {
  return new Counter();
}

export function log(o: LogOptions = {}): Expr {
  return new Log(o);
}

/** reject: "tcp reset", "icmpx <code>", "icmp <code>", "icmpv6 <code>" (ICMP type 0 on the wire). */
export function reject(how = 'icmpx port-unreachable'): Expr {
  if (how === 'tcp reset') return new Reject({ type: 'tcp reset' });
  const [kind, code = 'port-unreachable'] = how.split(/\s+/);
  const table =
    kind === 'icmpx'
      ? ICMPX_CODES
      : kind === 'icmp'
        ? ICMP_CODES
        : kind === 'icmpv6'
          ? ICMPV6_CODES
          : undefined;
  const n = table?.[code];
  if (n === undefined) throw new ValueError(`unknown reject ${JSON.stringify(how)}`);
  return new Reject({ type: kind === 'icmpx' ? 'icmpx' : 'icmp', code: n });
}

/** "meta mark set <value>". */
export function setMark(value: number): Expr[] {
  return [new Immediate({ dreg: 1, data: u32host(value) }), new Meta({ key: 'mark', sreg: 1 })];
}
