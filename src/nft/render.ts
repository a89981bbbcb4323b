// Turns a rule's expressions back into nft rule text, the way nft's own delinearization does: loads fill
// registers, comparisons and statements print them. Text only; never encodes or talks to the kernel.

import { type DataType, dataType, protoName } from './datatypes.ts';
import type { Family } from './family.ts';

/** Types an operand can have when printed. */
export type OperandType = DataType['name'] | 'nfproto' | 'ct_state' | 'ether_type' | 'raw';

export interface RegValue {
  /** nft text of the loaded thing, e.g. "ip saddr", "meta l4proto", "@nh,96,32". */
  text: string;
  type: OperandType;
  /** bytes loaded */
  len: number;
  /** full length of the field when only a prefix of it was loaded (byte-aligned prefix match). */
  fieldLen?: number;
  /** mask applied by a bitwise expression (prefix or flags test). */
  mask?: Buffer;
  /** a constant (from immediate) rather than a packet field. */
  constant?: Buffer;
  /** what loaded it: "meta l4proto" etc. used for dependency tracking. */
  seq: number;
}

export const CT_STATE_BITS: Array<[string, number]> = [
  ['invalid', 1],
  ['established', 2],
  ['related', 4],
  ['new', 8],
  ['untracked', 64],
];

export function regOffset(reg: number): number {
  if (reg >= 1 && reg <= 4) return (reg - 1) * 16;
  if (reg >= 8 && reg <= 23) return (reg - 8) * 4;
  throw new RangeError(`invalid data register ${reg}`);
}

import { RenderError } from './errors.ts';

export { RenderError };

export class RenderContext {
  readonly family: Family;
  /** NFPROTO value established by an earlier `meta nfproto` match (inet, bridge). */
  nfproto: number | undefined;
  /** L4 protocol established by an earlier `meta l4proto` / `ip protocol` / `ip6 nexthdr` match. */
  l4proto: number | undefined;
  private readonly regs = new Map<number, RegValue>();
  private seqNo = 0;
  readonly out: string[] = [];
  /** expressions still to render; an expression may consume the next one (cmp >= then <= is a range). */
  pending: Array<{ render(ctx: RenderContext): void }> = [];

  constructor(family: Family) {
    this.family = family;
    this.nfproto = family === 'ip' ? 2 : family === 'ip6' ? 10 : undefined;
  }

  load(reg: number, v: Omit<RegValue, 'seq'>): void {
    this.regs.set(regOffset(reg), { ...v, seq: ++this.seqNo });
  }

  get(reg: number, what: string): RegValue {
    const v = this.regs.get(regOffset(reg));
    if (!v) throw new RenderError(`${what} reads register ${reg} before anything was loaded into it`);
    return v;
  }

  /** nft text of a (possibly concatenated) key starting at `reg`: consecutive loads into adjacent registers. */
  keyText(reg: number, what: string): { text: string; parts: RegValue[] } {
    const first = this.get(reg, what);
    const parts = [first];
    let off = regOffset(reg) + ((first.len + 3) & ~3);
    for (;;) {
      const next = this.regs.get(off);
      const prev = parts[parts.length - 1]!;
      if (!next || next.seq !== prev.seq + 1) break;
      parts.push(next);
      off += (next.len + 3) & ~3;
    }
    return { text: parts.map((p) => p.text).join(' . '), parts };
  }

  emit(text: string): void {
    this.out.push(text);
  }
}

function hex(b: Buffer): string {
  return `0x${b.toString('hex')}`;
}

/** Formats a value of an operand type as nft input text. */
export function formatOperand(type: OperandType, value: Buffer): string {
  switch (type) {
    case 'raw':
      return hex(value);
    case 'nfproto': {
      const n = value.readUInt8(0);
      return n === 2 ? 'ipv4' : n === 10 ? 'ipv6' : String(n);
    }
    case 'ether_type': {
      const n = value.readUInt16BE(0);
      return n === 0x0800
        ? 'ip'
        : n === 0x86dd
          ? 'ip6'
          : n === 0x0806
            ? 'arp'
            : `0x${n.toString(16).padStart(4, '0')}`;
    }
    case 'ct_state': {
      const n = value.readUInt32LE(0);
      const names = CT_STATE_BITS.filter(([, bit]) => n & bit).map(([name]) => name);
      return names.length > 0 ? names.join(',') : hex(value);
    }
    case 'inet_proto':
      return protoName(value.readUInt8(0));
    default:
      return dataType(type).format(value);
  }
}

/** Value of a partially loaded field (prefix match) printed as "addr/len". */
export function formatPrefix(type: OperandType, value: Buffer, fullLen: number, bits: number): string {
  const full = Buffer.alloc(fullLen);
  value.copy(full, 0, 0, Math.min(value.length, fullLen));
  return `${formatOperand(type, full)}/${bits}`;
}

/** Prefix length of a mask like ff.f0.00.00, or undefined when the mask is not a prefix. */
export function maskPrefix(mask: Buffer): number | undefined {
  let bits = 0;
  let ended = false;
  for (const byte of mask) {
    for (let i = 7; i >= 0; i--) {
      const set = (byte >> i) & 1;
      if (set && ended) return undefined;
      if (set) bits++;
      else ended = true;
    }
  }
  return bits;
}
