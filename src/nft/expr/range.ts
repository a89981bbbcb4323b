// range expression: sreg within [from, to] (NFTA_RANGE_SREG/OP u32 big-endian; FROM/TO as NFTA_DATA_VALUE in
// the register's byte order). nft 1.0.x itself emits cmp >=/<= pairs; this is for decoding newer rulesets.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { formatOperand, type RenderContext } from '../render.ts';
import { encodeValueData } from '../verdict.ts';
import { type Expr, requiredValues } from './expr.ts';

const A = { SREG: 1, OP: 2, FROM: 3, TO: 4 } as const;

export class Range implements Expr {
  readonly name = 'range';
  readonly sreg: number;
  readonly op: 'eq' | 'neq';
  readonly from: Buffer;
  readonly to: Buffer;
  constructor(o: { sreg: number; op?: 'eq' | 'neq'; from: Buffer; to: Buffer }) {
    this.sreg = o.sreg;
    this.op = o.op ?? 'eq';
    this.from = o.from;
    this.to = o.to;
  }

  encode(w: Writer): void {
    w.u32be(A.SREG, this.sreg);
    w.u32be(A.OP, this.op === 'eq' ? 0 : 1);
    encodeValueData(w, A.FROM, this.from);
    encodeValueData(w, A.TO, this.to);
  }

  static decode(a: Attrs): Range {
    const { from, to } = requiredValues(a, 'range expression', { from: A.FROM, to: A.TO });
    return new Range({ sreg: a.u32be(A.SREG) ?? 0, op: a.u32be(A.OP) === 1 ? 'neq' : 'eq', from, to });
  }

  render(ctx: RenderContext): void {
    const v = ctx.get(this.sreg, 'range');
    const neg = this.op === 'neq' ? '!= ' : '';
    ctx.emit(`${v.text} ${neg}${formatOperand(v.type, this.from)}-${formatOperand(v.type, this.to)}`);
  }
}
