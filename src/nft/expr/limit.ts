// limit expression: a token bucket (NFTA_LIMIT_RATE/UNIT u64, BURST/TYPE/FLAGS u32, all big-endian), in
// packets or bytes per unit. nft always sends all five attributes, so encode does too; no state is kept here.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { RATE: 1, UNIT: 2, BURST: 3, TYPE: 4, FLAGS: 5 } as const;
const TYPE = { packets: 0, bytes: 1 } as const;
const F_INV = 1;

/** The unit is the refill period in seconds on the wire (nft's `get_unit`). */
export const LIMIT_UNITS = { second: 1, minute: 60, hour: 3600, day: 86400, week: 604800 } as const;
export type LimitUnit = keyof typeof LIMIT_UNITS;
export type LimitType = keyof typeof TYPE;

/** nft gives a packet limit a burst of 5 when none is written, and omits exactly that value when printing. */
export const DEFAULT_PACKET_BURST = 5;

export interface LimitOptions {
  /** Tokens (packets, or bytes for type "bytes") added per unit. */
  rate: number;
  per?: LimitUnit;
  /** Bucket depth on top of the rate; default 5 for packets, 0 for bytes (as nft). */
  burst?: number;
  type?: LimitType;
  /** `limit rate over`: matches only what exceeds the rate. */
  over?: boolean;
}

const BYTE_UNITS = [
  ['mbytes', 1024 * 1024],
  ['kbytes', 1024],
] as const;

/** nft's byte quantity text: the largest of bytes/kbytes/mbytes that divides the value exactly. */
function byteText(n: number): string {
  for (const [name, size] of BYTE_UNITS) if (n !== 0 && n % size === 0) return `${n / size} ${name}`;
  return `${n} bytes`;
}

export class Limit implements Expr {
  readonly name = 'limit';
  readonly rate: number;
  readonly per: LimitUnit;
  readonly burst: number;
  readonly type: LimitType;
  readonly over: boolean;
  constructor(o: LimitOptions) {
    this.rate = o.rate;
    this.per = o.per ?? 'second';
    this.type = o.type ?? 'packets';
    this.burst = o.burst ?? (this.type === 'packets' ? DEFAULT_PACKET_BURST : 0);
    this.over = o.over ?? false;
    // The kernel divides by the rate and keeps the burst in a u32; 0 or a fraction is a caller's mistake.
    if (!Number.isSafeInteger(this.rate) || this.rate <= 0)
      throw new NftValidationError('limit expression', `rate ${o.rate}: a positive whole number`, 'rate');
    if (!Number.isInteger(this.burst) || this.burst < 0 || this.burst > 0xffffffff)
      throw new NftValidationError('limit expression', `burst ${o.burst}: a whole number 0..2^32-1`, 'burst');
    if (!(this.per in LIMIT_UNITS))
      throw new NftValidationError(
        'limit expression',
        `per ${JSON.stringify(o.per)}: one of second, minute, hour, day, week`,
        'per',
      );
  }

  encode(w: Writer): void {
    w.u64be(A.RATE, this.rate);
    w.u64be(A.UNIT, LIMIT_UNITS[this.per]);
    w.u32be(A.BURST, this.burst);
    w.u32be(A.TYPE, TYPE[this.type]);
    w.u32be(A.FLAGS, this.over ? F_INV : 0);
  }

  static decode(a: Attrs): Limit {
    const unit = Number(a.u64be(A.UNIT) ?? 1n);
    const per = (Object.keys(LIMIT_UNITS) as LimitUnit[]).find((k) => LIMIT_UNITS[k] === unit);
    if (per === undefined)
      throw new NftValidationError(
        'limit expression',
        `unit of ${unit} seconds: not one nft can write`,
        'per',
      );
    return new Limit({
      rate: Number(a.u64be(A.RATE) ?? 0n),
      per,
      burst: a.u32be(A.BURST) ?? 0,
      type: a.u32be(A.TYPE) === TYPE.bytes ? 'bytes' : 'packets',
      over: ((a.u32be(A.FLAGS) ?? 0) & F_INV) !== 0,
    });
  }

  render(ctx: RenderContext): void {
    const over = this.over ? 'over ' : '';
    if (this.type === 'packets') {
      const burst =
        this.burst !== 0 && this.burst !== DEFAULT_PACKET_BURST ? ` burst ${this.burst} packets` : '';
      ctx.emit(`limit rate ${over}${this.rate}/${this.per}${burst}`);
      return;
    }
    const burst = this.burst !== 0 ? ` burst ${byteText(this.burst)}` : '';
    ctx.emit(`limit rate ${over}${byteText(this.rate)}/${this.per}${burst}`);
  }
}
