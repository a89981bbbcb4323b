// The contract every kernel expression file implements (google/nftables `expr/` style): encode its
// NFTA_EXPR_DATA attributes, decode them, and print itself into a RenderContext. No I/O.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import { decodeValueData } from '../verdict.ts';

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

/**
 * The NFTA_DATA_VALUE bytes under each of `attrs` of a decoded expression, copied out of the message; a
 * validation error naming the expression and the first of them when any is missing.
 */
export function requiredValues<K extends string>(
  a: Attrs,
  expr: string,
  attrs: Record<K, number>,
): Record<K, Buffer> {
  const out = {} as Record<K, Buffer>;
  for (const [key, attr] of Object.entries(attrs) as [K, number][]) {
    const value = decodeValueData(a.nested(attr));
    if (!value) {
      const names = Object.keys(attrs);
      throw new NftValidationError(expr, `malformed: needs ${names.join(' and ')}`, names[0]!);
    }
    out[key] = Buffer.from(value);
  }
  return out;
}
