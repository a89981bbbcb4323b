// ct expression: load conntrack state or mark into a register (NFTA_CT_KEY/DREG, u32 big-endian).
// Setting conntrack fields is not supported.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { OperandType, RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { DREG: 1, KEY: 2, DIRECTION: 3 } as const;

export type CtKey = 'state' | 'mark' | 'status';
/** enum nft_ct_keys numbers; state, status and mark are host-endian u32 in the register. */
export const CT_KEYS: Record<CtKey, { num: number; len: number; type: OperandType }> = {
  state: { num: 0, len: 4, type: 'ct_state' },
  status: { num: 2, len: 4, type: 'raw' },
  mark: { num: 3, len: 4, type: 'mark' },
};

export class Ct implements Expr {
  readonly name = 'ct';
  readonly key: CtKey;
  readonly dreg: number;
  constructor(o: { key: CtKey; dreg: number }) {
    this.key = o.key;
    this.dreg = o.dreg;
  }

  encode(w: Writer): void {
    w.u32be(A.KEY, CT_KEYS[this.key].num);
    w.u32be(A.DREG, this.dreg);
  }

  static decode(a: Attrs): Ct {
    const num = a.u32be(A.KEY);
    const key = (Object.keys(CT_KEYS) as CtKey[]).find((k) => CT_KEYS[k].num === num);
    if (!key || a.has(A.DIRECTION))
      throw new NftValidationError('ct expression', `unsupported key ${num}`, 'key');
    return new Ct({ key, dreg: a.u32be(A.DREG) ?? 0 });
  }

  render(ctx: RenderContext): void {
    const k = CT_KEYS[this.key];
    ctx.load(this.dreg, { text: `ct ${this.key}`, type: k.type, len: k.len });
  }
}
