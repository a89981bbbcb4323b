// bitwise expression (boolean form): dreg = (sreg & mask) ^ xor over len bytes (NFTA_BITWISE_*; registers
// and LEN u32 big-endian, MASK/XOR as NFTA_DATA_VALUE in the register's byte order). Shifts are unsupported.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import { encodeValueData } from '../verdict.ts';
import { type Expr, requiredValues } from './expr.ts';

const A = { SREG: 1, DREG: 2, LEN: 3, MASK: 4, XOR: 5, OP: 6 } as const;

export class Bitwise implements Expr {
  readonly name = 'bitwise';
  readonly sreg: number;
  readonly dreg: number;
  readonly mask: Buffer;
  readonly xor: Buffer;
  constructor(o: { sreg: number; dreg: number; mask: Buffer; xor?: Buffer }) {
    this.sreg = o.sreg;
    this.dreg = o.dreg;
    this.mask = o.mask;
    this.xor = o.xor ?? Buffer.alloc(o.mask.length);
    if (this.xor.length !== this.mask.length)
      throw new NftValidationError('bitwise expression', 'mask and xor differ in length', 'xor');
  }

  get len(): number {
    return this.mask.length;
  }

  encode(w: Writer): void {
    w.u32be(A.SREG, this.sreg);
    w.u32be(A.DREG, this.dreg);
    w.u32be(A.LEN, this.len);
    encodeValueData(w, A.MASK, this.mask);
    encodeValueData(w, A.XOR, this.xor);
  }

  static decode(a: Attrs): Bitwise {
    if ((a.u32be(A.OP) ?? 0) !== 0)
      throw new NftValidationError('bitwise expression', 'unsupported operation (shift)', 'op');
    const { mask, xor } = requiredValues(a, 'bitwise expression', { mask: A.MASK, xor: A.XOR });
    return new Bitwise({ sreg: a.u32be(A.SREG) ?? 0, dreg: a.u32be(A.DREG) ?? 0, mask, xor });
  }

  render(ctx: RenderContext): void {
    const v = ctx.get(this.sreg, 'bitwise');
    if (this.xor.some((b) => b !== 0)) {
      ctx.load(this.dreg, {
        ...v,
        text: `${v.text} & 0x${this.mask.toString('hex')} ^ 0x${this.xor.toString('hex')}`,
        type: 'raw',
      });
      return;
    }
    ctx.load(this.dreg, { ...v, mask: this.mask });
  }
}
