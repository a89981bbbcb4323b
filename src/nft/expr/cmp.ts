// cmp expression: compare a register with constant data (NFTA_CMP_SREG/OP u32 big-endian, NFTA_CMP_DATA as
// NFTA_DATA_VALUE bytes in the register's own byte order). Prints as "<operand> [op] <value>".

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import { formatOperand, formatPrefix, maskPrefix, type RegValue, type RenderContext } from '../render.ts';
import { decodeValueData, encodeValueData } from '../verdict.ts';
import type { Expr } from './expr.ts';

const A = { SREG: 1, OP: 2, DATA: 3 } as const;

export type CmpOp = 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte';
export const CMP_OPS: Record<CmpOp, number> = { eq: 0, neq: 1, lt: 2, lte: 3, gt: 4, gte: 5 };
const OP_TEXT: Record<CmpOp, string> = { eq: '', neq: '!= ', lt: '< ', lte: '<= ', gt: '> ', gte: '>= ' };

export class Cmp implements Expr {
  readonly name = 'cmp';
  readonly sreg: number;
  readonly op: CmpOp;
  readonly data: Buffer;
  constructor(o: { sreg: number; op: CmpOp; data: Buffer }) {
    this.sreg = o.sreg;
    this.op = o.op;
    this.data = o.data;
  }

  encode(w: Writer): void {
    w.u32be(A.SREG, this.sreg);
    w.u32be(A.OP, CMP_OPS[this.op]);
    encodeValueData(w, A.DATA, this.data);
  }

  static decode(a: Attrs): Cmp {
    const num = a.u32be(A.OP);
    const op = (Object.keys(CMP_OPS) as CmpOp[]).find((k) => CMP_OPS[k] === num);
    const data = decodeValueData(a.nested(A.DATA));
    if (!op || !data) throw new NftValidationError('cmp expression', 'malformed: needs op and data', 'data');
    return new Cmp({ sreg: a.u32be(A.SREG) ?? 0, op, data: Buffer.from(data) });
  }

  render(ctx: RenderContext): void {
    const v = ctx.get(this.sreg, 'cmp');
    // nft writes "X a-b" as cmp >= a followed by cmp <= b on the same register.
    const next = ctx.pending[0];
    if (this.op === 'gte' && next instanceof Cmp && next.op === 'lte' && next.sreg === this.sreg && !v.mask) {
      ctx.pending.shift();
      ctx.emit(`${v.text} ${formatOperand(v.type, this.data)}-${formatOperand(v.type, next.data)}`);
      return;
    }
    ctx.emit(`${v.text} ${renderValue(v, this.op, this.data)}`);
    if (this.op === 'eq') {
      if (v.text === 'meta nfproto') ctx.nfproto = this.data.readUInt8(0);
      if (v.text === 'meta l4proto' || v.text === 'ip protocol' || v.text === 'ip6 nexthdr') {
        ctx.l4proto = this.data.readUInt8(0);
      }
    }
  }
}

function renderValue(v: RegValue, op: CmpOp, data: Buffer): string {
  const isAddr = v.type === 'ipv4_addr' || v.type === 'ipv6_addr';
  if (v.mask) {
    const zero = data.every((b) => b === 0);
    if (v.type === 'ct_state' && op === 'neq' && zero) return formatOperand('ct_state', v.mask);
    const bits = maskPrefix(v.mask);
    if (isAddr && bits !== undefined && (op === 'eq' || op === 'neq')) {
      return `${OP_TEXT[op]}${formatPrefix(v.type, data, v.len, bits)}`;
    }
    return `& ${formatOperand(v.type, v.mask)} ${op === 'eq' ? '== ' : OP_TEXT[op]}${formatOperand(v.type, data)}`;
  }
  if (v.fieldLen !== undefined && isAddr && (op === 'eq' || op === 'neq')) {
    return `${OP_TEXT[op]}${formatPrefix(v.type, data, v.fieldLen, v.len * 8)}`;
  }
  return `${OP_TEXT[op]}${formatOperand(v.type, data)}`;
}
