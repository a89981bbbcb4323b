// Registry of the expression files: decodes NFTA_EXPR_NAME + NFTA_EXPR_DATA into the right class.
// Adding an expression means adding its file and one line here; nothing else.

import type { Attrs } from '../../netlink/attr.ts';
import { Bitwise } from './bitwise.ts';
import { Cmp } from './cmp.ts';
import { Counter } from './counter.ts';
import { Ct } from './ct.ts';
import type { Expr } from './expr.ts';
import { Immediate } from './immediate.ts';
import { Limit } from './limit.ts';
import { Log } from './log.ts';
import { Lookup } from './lookup.ts';
import { Meta } from './meta.ts';
import { ObjRef } from './objref.ts';
import { Payload } from './payload.ts';
import { Range } from './range.ts';
import { Reject } from './reject.ts';

export const EXPR_DECODERS: Record<string, (a: Attrs) => Expr> = {
  payload: Payload.decode,
  meta: Meta.decode,
  cmp: Cmp.decode,
  bitwise: Bitwise.decode,
  lookup: Lookup.decode,
  ct: Ct.decode,
  immediate: Immediate.decode,
  counter: Counter.decode,
  log: Log.decode,
  limit: Limit.decode,
  reject: Reject.decode,
  range: Range.decode,
  objref: ObjRef.decode,
};

export type { EncodeContext, Expr } from './expr.ts';
export { OBJECT_TYPES, type ObjectType } from './objref.ts';
export { Bitwise, Cmp, Counter, Ct, Immediate, Limit, Log, Lookup, Meta, ObjRef, Payload, Range, Reject };
