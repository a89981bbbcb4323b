// counter expression: packet and byte counters (NFTA_COUNTER_BYTES/PACKETS, u64 big-endian). nft sends no
// attributes for a fresh counter, so zero values are omitted on encode too.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import type { RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { BYTES: 1, PACKETS: 2 } as const;

export class Counter implements Expr {
  readonly name = 'counter';
  readonly packets: bigint;
  readonly bytes: bigint;
  constructor(o: { packets?: bigint; bytes?: bigint } = {}) {
    this.packets = o.packets ?? 0n;
    this.bytes = o.bytes ?? 0n;
  }

  encode(w: Writer): void {
    if (this.packets === 0n && this.bytes === 0n) return;
    w.u64be(A.BYTES, this.bytes);
    w.u64be(A.PACKETS, this.packets);
  }

  static decode(a: Attrs): Counter {
    return new Counter({ packets: a.u64be(A.PACKETS) ?? 0n, bytes: a.u64be(A.BYTES) ?? 0n });
  }

  render(ctx: RenderContext): void {
    ctx.emit(
      this.packets === 0n && this.bytes === 0n
        ? 'counter'
        : `counter packets ${this.packets} bytes ${this.bytes}`,
    );
  }
}
