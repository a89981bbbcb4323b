// The contract every kernel expression file implements (google/nftables `expr/` style): encode its
// NFTA_EXPR_DATA attributes, decode them, and print itself into a RenderContext. No I/O.

import type { Writer } from '../../netlink/attr.ts';
import type { RenderContext } from '../render.ts';

export interface EncodeContext {
  /** NFTA_SET_ID of a set created earlier in the same batch (lets the kernel resolve it before commit). */
  setId(name: string): number | undefined;
}

export interface Expr {
  /** NFTA_EXPR_NAME, e.g. "payload". */
  readonly name: string;
  /** Writes the attributes that go inside NFTA_EXPR_DATA. */
  encode(w: Writer, ctx?: EncodeContext): void;
  /** Prints itself (or updates the register state) as nft rule text. */
  render(ctx: RenderContext): void;
}
