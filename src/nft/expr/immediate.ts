// immediate expression: put a verdict (dreg 0) or constant data into a register (NFTA_IMMEDIATE_DREG u32
// big-endian; DATA as NFTA_DATA_VERDICT or NFTA_DATA_VALUE bytes in the consumer's byte order).

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import {
  decodeValueData,
  decodeVerdictData,
  encodeValueData,
  encodeVerdictData,
  formatVerdict,
  type Verdict,
} from '../verdict.ts';
import type { Expr } from './expr.ts';

const A = { DREG: 1, DATA: 2 } as const;

export class Immediate implements Expr {
  readonly name = 'immediate';
  readonly dreg: number;
  readonly verdict: Verdict | undefined;
  readonly data: Buffer | undefined;
  constructor(o: { verdict: Verdict } | { dreg: number; data: Buffer }) {
    if ('verdict' in o) {
      this.dreg = 0;
      this.verdict = o.verdict;
      this.data = undefined;
    } else {
      if (o.dreg === 0)
        throw new NftValidationError(
          'immediate expression',
          'data cannot go to the verdict register',
          'dreg',
        );
      this.dreg = o.dreg;
      this.data = o.data;
      this.verdict = undefined;
    }
  }

  encode(w: Writer): void {
    w.u32be(A.DREG, this.dreg);
    if (this.verdict) encodeVerdictData(w, A.DATA, this.verdict);
    else encodeValueData(w, A.DATA, this.data ?? Buffer.alloc(0));
  }

  static decode(a: Attrs): Immediate {
    const dreg = a.u32be(A.DREG) ?? 0;
    const data = a.nested(A.DATA);
    if (!data) throw new NftValidationError('immediate expression', 'no data', 'data');
    if (dreg === 0) {
      const verdict = decodeVerdictData(data);
      if (!verdict) throw new NftValidationError('immediate expression', 'unknown verdict', 'verdict');
      return new Immediate({ verdict });
    }
    const value = decodeValueData(data);
    if (!value) throw new NftValidationError('immediate expression', 'no value', 'value');
    return new Immediate({ dreg, data: Buffer.from(value) });
  }

  render(ctx: RenderContext): void {
    if (this.verdict) ctx.emit(formatVerdict(this.verdict));
    else if (this.data)
      ctx.load(this.dreg, {
        text: `0x${this.data.toString('hex')}`,
        type: 'raw',
        len: this.data.length,
        constant: this.data,
      });
  }
}
