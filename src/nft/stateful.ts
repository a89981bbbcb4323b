// Named stateful objects of a table (NFT_MSG_NEWOBJ/DELOBJ): today the limit object, one token bucket that
// every rule naming it (`limit name "x"`, expr/objref.ts) draws from. Validation, encode/decode and nft
// text only; transaction.ts batches them, list.ts reads them back.

import type { Attrs, Writer } from '../netlink/attr.ts';
import { NFT_OBJECT, NFTA_OBJ } from '../netlink/constants.ts';
import { NftValidationError } from './errors.ts';
import { Limit, type LimitUnit } from './expr/limit.ts';
import type { Family } from './family.ts';
import { checkName } from './objects.ts';

export interface LimitObjectOptions {
  family: Family;
  table: string;
  name: string;
  /** Packets per `per`; the kernel's bucket holds `burst` packets on top. */
  rate: number;
  per?: LimitUnit;
  burst: number;
  /** `rate over`: the reference matches only what exceeds the rate (NFT_LIMIT_F_INV). */
  over?: boolean;
}

/** A limit object in packets (the only kind tollgate writes; bytes limits are refused on decode). */
export class LimitObject {
  readonly kind = 'limit';
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  /** The bucket's parameters: the same NFTA_LIMIT_* attributes as a limit expression's. */
  readonly limit: Limit;
  constructor(o: LimitObjectOptions) {
    this.family = o.family;
    this.table = o.table;
    this.name = o.name;
    const d = this.describe();
    checkName(d, 'table', o.table);
    checkName(d, 'name', o.name);
    // The kernel turns a packet limit's burst 0 into its default of 5: refused rather than read back changed.
    if (o.burst === 0)
      throw new NftValidationError(d, 'burst 0: the kernel would make it 5; give 1 or more packets', 'burst');
    try {
      this.limit = new Limit({ rate: o.rate, per: o.per ?? 'second', burst: o.burst, over: o.over ?? false });
    } catch (e) {
      if (e instanceof NftValidationError) throw new NftValidationError(d, e.message, e.field, { cause: e });
      throw e;
    }
  }
  describe(): string {
    return `limit ${this.family} ${this.table} ${this.name}`;
  }
  spec(): string {
    return `${this.family} ${this.table} ${this.name}`;
  }
  /** NEWOBJ attributes in libnftnl's order: table, name, type, data. */
  encode(w: Writer): void {
    w.str(NFTA_OBJ.TABLE, this.table);
    w.str(NFTA_OBJ.NAME, this.name);
    w.u32be(NFTA_OBJ.TYPE, NFT_OBJECT.LIMIT);
    w.nest(NFTA_OBJ.DATA, () => this.limit.encode(w));
  }
  /** DELOBJ names the object by table, name and type (the kernel needs the type to find it). */
  encodeKey(w: Writer): void {
    w.str(NFTA_OBJ.TABLE, this.table);
    w.str(NFTA_OBJ.NAME, this.name);
    w.u32be(NFTA_OBJ.TYPE, NFT_OBJECT.LIMIT);
  }
  static decode(family: Family, a: Attrs): LimitObject {
    const name = a.str(NFTA_OBJ.NAME) ?? '';
    const table = a.str(NFTA_OBJ.TABLE) ?? '';
    const l = Limit.decode(a.nested(NFTA_OBJ.DATA) ?? a);
    if (l.type !== 'packets')
      throw new NftValidationError(
        `limit ${family} ${table} ${name}`,
        'a bytes limit (not supported)',
        'type',
      );
    return new LimitObject({ family, table, name, rate: l.rate, per: l.per, burst: l.burst, over: l.over });
  }
  /** The object's type in NFTA_OBJ_TYPE of a dump: what a listing decodes (others are not ours). */
  static isLimit(a: Attrs): boolean {
    return a.u32be(NFTA_OBJ.TYPE) === NFT_OBJECT.LIMIT;
  }
  /** `{ rate over 20/second burst 5 packets }`: the burst always written, so nft's default never applies. */
  body(): string {
    const l = this.limit;
    return `{ rate ${l.over ? 'over ' : ''}${l.rate}/${l.per} burst ${l.burst} packets }`;
  }
  toString(): string {
    return `add limit ${this.spec()} ${this.body()}`;
  }
}
