// reject expression: answer with an ICMP/ICMPv6/ICMPx error or a TCP reset (NFTA_REJECT_TYPE u32 big-endian,
// NFTA_REJECT_ICMP_CODE u8). The printed form depends on the family and the protocol context.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import { type RenderContext, RenderError } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { TYPE: 1, ICMP_CODE: 2 } as const;
export const REJECT_TYPE = { icmp: 0, 'tcp reset': 1, icmpx: 2 } as const;
export type RejectType = keyof typeof REJECT_TYPE;

export const ICMP_CODES: Record<string, number> = {
  'net-unreachable': 0,
  'host-unreachable': 1,
  'prot-unreachable': 2,
  'port-unreachable': 3,
  'net-prohibited': 9,
  'host-prohibited': 10,
  'admin-prohibited': 13,
};
export const ICMPV6_CODES: Record<string, number> = {
  'no-route': 0,
  'admin-prohibited': 1,
  'addr-unreachable': 3,
  'port-unreachable': 4,
  'policy-fail': 5,
  'reject-route': 6,
};
export const ICMPX_CODES: Record<string, number> = {
  'no-route': 0,
  'port-unreachable': 1,
  'host-unreachable': 2,
  'admin-prohibited': 3,
};

const nameOf = (table: Record<string, number>, code: number) =>
  Object.entries(table).find(([, v]) => v === code)?.[0] ?? String(code);

export class Reject implements Expr {
  readonly name = 'reject';
  readonly type: RejectType;
  readonly code: number;
  constructor(o: { type: RejectType; code?: number }) {
    this.type = o.type;
    this.code = o.code ?? 0;
  }

  encode(w: Writer): void {
    w.u32be(A.TYPE, REJECT_TYPE[this.type]);
    w.u8(A.ICMP_CODE, this.code);
  }

  static decode(a: Attrs): Reject {
    const t = a.u32be(A.TYPE);
    const type = (Object.keys(REJECT_TYPE) as RejectType[]).find((k) => REJECT_TYPE[k] === t);
    if (!type) throw new NftValidationError('reject expression', `unknown type ${t}`, 'type');
    return new Reject({ type, code: a.u8(A.ICMP_CODE) ?? 0 });
  }

  render(ctx: RenderContext): void {
    if (this.type === 'tcp reset') {
      // nft would insert its own `meta l4proto tcp` at the start of the rule otherwise.
      if (ctx.l4proto !== 6)
        throw new RenderError('reject with tcp reset needs a preceding tcp protocol match');
      ctx.emit('reject with tcp reset');
      return;
    }
    if (this.type === 'icmpx') {
      // nft refuses "abstracted ICMP" outside inet/bridge tables, although the kernel would take it.
      if (ctx.family !== 'inet' && ctx.family !== 'bridge') {
        throw new RenderError(
          `reject with icmpx needs an inet or bridge table; use icmp/icmpv6 in ${ctx.family}`,
        );
      }
      ctx.emit(`reject with icmpx ${nameOf(ICMPX_CODES, this.code)}`);
      return;
    }
    if (ctx.nfproto === 2) ctx.emit(`reject with icmp ${nameOf(ICMP_CODES, this.code)}`);
    else if (ctx.nfproto === 10) ctx.emit(`reject with icmpv6 ${nameOf(ICMPV6_CODES, this.code)}`);
    else
      throw new RenderError('reject with icmp needs an ip or ip6 table, or a preceding meta nfproto match');
  }
}
