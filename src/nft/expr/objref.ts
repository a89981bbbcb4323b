// objref expression: applies a named stateful object of the rule's table (NFTA_OBJREF_IMM_TYPE u32
// big-endian, NFTA_OBJREF_IMM_NAME string), e.g. `limit name "x"`. Only immediate references by name; the
// set-keyed form (NFTA_OBJREF_SET_*) is not written by tollgate and is refused on decode.

import type { Attrs, Writer } from '../../netlink/attr.ts';
import { NFT_OBJECT } from '../../netlink/constants.ts';
import { NftValidationError } from '../errors.ts';
import type { RenderContext } from '../render.ts';
import type { Expr } from './expr.ts';

const A = { IMM_TYPE: 1, IMM_NAME: 2, SET_SREG: 3, SET_NAME: 4 } as const;

/** The object types an objref can name here, by their nft keyword. */
export const OBJECT_TYPES = { limit: NFT_OBJECT.LIMIT, counter: NFT_OBJECT.COUNTER } as const;
export type ObjectType = keyof typeof OBJECT_TYPES;

export class ObjRef implements Expr {
  readonly name = 'objref';
  readonly type: ObjectType;
  /** The object's name in the rule's table. */
  readonly object: string;
  constructor(o: { type: ObjectType; object: string }) {
    this.type = o.type;
    this.object = o.object;
    if (!(o.type in OBJECT_TYPES))
      throw new NftValidationError(
        'objref expression',
        `unknown object type ${JSON.stringify(o.type)}`,
        'type',
      );
    if (o.object.length === 0 || /["\\\n]/.test(o.object))
      throw new NftValidationError('objref expression', `object name ${JSON.stringify(o.object)}`, 'object');
  }

  encode(w: Writer): void {
    w.u32be(A.IMM_TYPE, OBJECT_TYPES[this.type]);
    // libnftnl writes the name without its NUL (mnl_attr_put_str); the kernel takes either.
    w.bytesAttr(A.IMM_NAME, Buffer.from(this.object));
  }

  static decode(a: Attrs): ObjRef {
    const code = a.u32be(A.IMM_TYPE);
    const type = (Object.keys(OBJECT_TYPES) as ObjectType[]).find((k) => OBJECT_TYPES[k] === code);
    const object = a.str(A.IMM_NAME);
    if (type === undefined || object === undefined)
      throw new NftValidationError(
        'objref expression',
        a.get(A.SET_NAME) !== undefined
          ? 'a set-keyed object reference (not supported)'
          : `object type ${code}: not one tollgate reads`,
        'type',
      );
    return new ObjRef({ type, object });
  }

  render(ctx: RenderContext): void {
    ctx.emit(`${this.type} name "${this.object}"`);
  }
}
