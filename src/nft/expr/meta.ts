// meta expression: load packet metadata into a register (NFTA_META_KEY/DREG, u32 big-endian) or set the
// packet mark from a register (NFTA_META_SREG). Only the keys listed in META_KEYS are supported.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import { formatOperand, type OperandType, type RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { DREG: 1, KEY: 2, SREG: 3 } as const;

export type MetaKey = 'protocol' | 'mark' | 'iifname' | 'oifname' | 'nfproto' | 'l4proto';
/** enum nft_meta_keys numbers, value sizes and how the value prints. */
export const META_KEYS: Record<MetaKey, { num: number; len: number; type: OperandType; text: string }> = {
  protocol: { num: 1, len: 2, type: 'ether_type', text: 'meta protocol' },
  mark: { num: 3, len: 4, type: 'mark', text: 'meta mark' },
  iifname: { num: 6, len: 16, type: 'ifname', text: 'iifname' },
  oifname: { num: 7, len: 16, type: 'ifname', text: 'oifname' },
  nfproto: { num: 15, len: 1, type: 'nfproto', text: 'meta nfproto' },
  l4proto: { num: 16, len: 1, type: 'inet_proto', text: 'meta l4proto' },
};

export class Meta implements Expr {
  readonly name = 'meta';
  readonly key: MetaKey;
  readonly dreg: number | undefined;
  readonly sreg: number | undefined;
  constructor(o: { key: MetaKey; dreg?: number; sreg?: number }) {
    this.key = o.key;
    this.dreg = o.dreg;
    this.sreg = o.sreg;
    if ((o.dreg === undefined) === (o.sreg === undefined))
      throw new NftValidationError('meta expression', 'needs exactly one of dreg, sreg', 'dreg');
  }

  encode(w: Writer): void {
    w.u32be(A.KEY, META_KEYS[this.key].num);
    if (this.dreg !== undefined) w.u32be(A.DREG, this.dreg);
    if (this.sreg !== undefined) w.u32be(A.SREG, this.sreg);
  }

  static decode(a: Attrs): Meta {
    const num = a.u32be(A.KEY);
    const key = (Object.keys(META_KEYS) as MetaKey[]).find((k) => META_KEYS[k].num === num);
    if (!key) throw new NftValidationError('meta expression', `unsupported key ${num}`, 'key');
    const dreg = a.u32be(A.DREG);
    const sreg = a.u32be(A.SREG);
    return new Meta({
      key,
      ...(dreg !== undefined ? { dreg } : {}),
      ...(sreg !== undefined ? { sreg } : {}),
    });
  }

  render(ctx: RenderContext): void {
    const k = META_KEYS[this.key];
    if (this.dreg !== undefined) {
      ctx.load(this.dreg, { text: k.text, type: k.type, len: k.len });
      return;
    }
    const v = ctx.get(this.sreg ?? 0, `${k.text} set`);
    ctx.emit(`${k.text} set ${v.constant ? formatOperand(k.type, v.constant) : v.text}`);
  }
}
