// payload expression: load bytes from a packet header into a register (NFTA_PAYLOAD_*, all u32 big-endian).
// Loading only; writing packet bytes (payload set, checksums) is not supported here.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NFPROTO } from '../../netlink/constants.ts';
import { NftValidationError } from '../errors.ts';
import type { OperandType, RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { DREG: 1, BASE: 2, OFFSET: 3, LEN: 4 } as const;
export const PAYLOAD_BASE = { ll: 0, nh: 1, th: 2 } as const;
export type PayloadBase = keyof typeof PAYLOAD_BASE;

export interface PayloadField {
  /** nft text, e.g. "ip saddr" */
  text: string;
  base: PayloadBase;
  offset: number;
  len: number;
  type: OperandType;
  /** NFPROTO the field needs in inet/bridge tables (nft would add `meta nfproto` otherwise). */
  nfproto?: number;
}

const FIELDS: PayloadField[] = [
  { text: 'ip protocol', base: 'nh', offset: 9, len: 1, type: 'inet_proto', nfproto: NFPROTO.IPV4 },
  { text: 'ip saddr', base: 'nh', offset: 12, len: 4, type: 'ipv4_addr', nfproto: NFPROTO.IPV4 },
  { text: 'ip daddr', base: 'nh', offset: 16, len: 4, type: 'ipv4_addr', nfproto: NFPROTO.IPV4 },
  { text: 'ip6 nexthdr', base: 'nh', offset: 6, len: 1, type: 'inet_proto', nfproto: NFPROTO.IPV6 },
  { text: 'ip6 saddr', base: 'nh', offset: 8, len: 16, type: 'ipv6_addr', nfproto: NFPROTO.IPV6 },
  { text: 'ip6 daddr', base: 'nh', offset: 24, len: 16, type: 'ipv6_addr', nfproto: NFPROTO.IPV6 },
  // Before th sport: a one-byte load at the transport header's start is the ICMPv6 type, not a port prefix.
  { text: 'icmpv6 type', base: 'th', offset: 0, len: 1, type: 'raw' },
  { text: 'th sport', base: 'th', offset: 0, len: 2, type: 'inet_service' },
  { text: 'th dport', base: 'th', offset: 2, len: 2, type: 'inet_service' },
];

/** The known fields by their nft text, in the order a load is matched against them. */
export const PAYLOAD_FIELDS: Record<string, PayloadField> = Object.fromEntries(
  FIELDS.map((f) => [f.text, f]),
);

export class Payload implements Expr {
  readonly name = 'payload';
  readonly dreg: number;
  readonly base: PayloadBase;
  readonly offset: number;
  readonly len: number;
  constructor(o: { dreg: number; base: PayloadBase; offset: number; len: number }) {
    this.dreg = o.dreg;
    this.base = o.base;
    this.offset = o.offset;
    this.len = o.len;
  }

  encode(w: Writer): void {
    w.u32be(A.DREG, this.dreg);
    w.u32be(A.BASE, PAYLOAD_BASE[this.base]);
    w.u32be(A.OFFSET, this.offset);
    w.u32be(A.LEN, this.len);
  }

  static decode(a: Attrs): Payload {
    const baseNum = a.u32be(A.BASE) ?? 0;
    const base = (Object.keys(PAYLOAD_BASE) as PayloadBase[]).find((k) => PAYLOAD_BASE[k] === baseNum);
    if (!base || a.has(6 /* NFTA_PAYLOAD_SREG */))
      throw new NftValidationError('payload expression', `unsupported base ${baseNum}`, 'base');
    return new Payload({
      dreg: a.u32be(A.DREG) ?? 0,
      base,
      offset: a.u32be(A.OFFSET) ?? 0,
      len: a.u32be(A.LEN) ?? 0,
    });
  }

  /** The known field this load reads (whole, or a leading prefix of it), if any. */
  field(): PayloadField | undefined {
    return FIELDS.find((f) => f.base === this.base && f.offset === this.offset && this.len <= f.len);
  }

  render(ctx: RenderContext): void {
    const f = this.field();
    // Print the field name only where nft would not add a protocol dependency of its own; otherwise the
    // raw form (@base,offset,len) keeps the text loading back to exactly these expressions.
    const usable = f && (f.nfproto === undefined || ctx.nfproto === f.nfproto) && ctx.family !== 'bridge';
    if (f && usable) {
      ctx.load(this.dreg, {
        text: f.text,
        type: f.type,
        len: this.len,
        ...(this.len < f.len ? { fieldLen: f.len } : {}),
      });
    } else {
      ctx.load(this.dreg, {
        text: `@${this.base},${this.offset * 8},${this.len * 8}`,
        type: 'raw',
        len: this.len,
      });
    }
  }
}
