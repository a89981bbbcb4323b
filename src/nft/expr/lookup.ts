// lookup expression: is the key in register sreg (possibly a concatenation over adjacent 32-bit registers)
// in a named set; with dreg, fetch the mapped data (dreg 0 = verdict map). NFTA_LOOKUP_* u32 big-endian.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import type { EncodeContext, Expr } from './expr.ts';

const A = { SET: 1, SREG: 2, DREG: 3, SET_ID: 4, FLAGS: 5 } as const;
const NFT_LOOKUP_F_INV = 1;

export class Lookup implements Expr {
  readonly name = 'lookup';
  readonly set: string;
  readonly sreg: number;
  readonly dreg: number | undefined;
  readonly invert: boolean;
  /** bytes of the mapped data for data maps (printing only). */
  readonly dataLen: number;
  constructor(o: { set: string; sreg: number; dreg?: number; invert?: boolean; dataLen?: number }) {
    this.set = o.set;
    this.sreg = o.sreg;
    this.dreg = o.dreg;
    this.invert = o.invert ?? false;
    this.dataLen = o.dataLen ?? 4;
    if (this.invert && this.dreg !== undefined)
      throw new NftValidationError('lookup expression', 'a map lookup cannot be inverted', 'invert');
  }

  encode(w: Writer, ctx?: EncodeContext): void {
    w.u32be(A.SREG, this.sreg);
    if (this.dreg !== undefined) w.u32be(A.DREG, this.dreg);
    w.str(A.SET, this.set);
    const id = ctx?.setId(this.set);
    if (id !== undefined) w.u32be(A.SET_ID, id);
    if (this.invert) w.u32be(A.FLAGS, NFT_LOOKUP_F_INV);
  }

  static decode(a: Attrs): Lookup {
    const set = a.str(A.SET);
    if (!set) throw new NftValidationError('lookup expression', 'no set name', 'set');
    const dreg = a.u32be(A.DREG);
    return new Lookup({
      set,
      sreg: a.u32be(A.SREG) ?? 0,
      ...(dreg !== undefined ? { dreg } : {}),
      invert: ((a.u32be(A.FLAGS) ?? 0) & NFT_LOOKUP_F_INV) !== 0,
    });
  }

  render(ctx: RenderContext): void {
    const { text } = ctx.keyText(this.sreg, `lookup @${this.set}`);
    if (this.dreg === undefined) ctx.emit(`${text} ${this.invert ? '!= ' : ''}@${this.set}`);
    else if (this.dreg === 0) ctx.emit(`${text} vmap @${this.set}`);
    else ctx.load(this.dreg, { text: `${text} map @${this.set}`, type: 'raw', len: this.dataLen });
  }
}
