// Typed nftables objects (table, chain, rule): validation at construction, netlink encode/decode, and the
// nft text of each. No I/O: transaction.ts batches them, list.ts reads them back.

import { Attrs, type Writer } from '../netlink/attr.ts';
import {
  NFTA_CHAIN,
  NFTA_EXPR,
  NFTA_HOOK,
  NFTA_LIST_ELEM,
  NFTA_RULE,
  NFTA_TABLE,
} from '../netlink/constants.ts';
import { NftValidationError } from './errors.ts';
import { type EncodeContext, EXPR_DECODERS, type Expr } from './expr/index.ts';
import { type ChainType, type Family, HOOKS, type Hook, hookFromNumber, type Policy } from './family.ts';
import { RenderContext, RenderError } from './render.ts';

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_./-]{0,255}$/;

export function checkName(object: string, what: string, name: string): void {
  if (!NAME_RE.test(name))
    throw new NftValidationError(object, `invalid ${what} ${JSON.stringify(name)}`, what);
}

export class Table {
  readonly kind = 'table';
  readonly family: Family;
  readonly name: string;
  constructor(o: { family: Family; name: string }) {
    this.family = o.family;
    this.name = o.name;
    checkName(this.describe(), 'name', o.name);
  }
  describe(): string {
    return `table ${this.family} ${this.name}`;
  }
  /** "inet t": what follows the verb in nft commands. */
  spec(): string {
    return `${this.family} ${this.name}`;
  }
  encode(w: Writer): void {
    w.str(NFTA_TABLE.NAME, this.name);
    w.u32be(NFTA_TABLE.FLAGS, 0);
  }
  static decode(family: Family, a: Attrs): Table {
    return new Table({ family, name: a.str(NFTA_TABLE.NAME) ?? '' });
  }
  toString(): string {
    return `add table ${this.spec()}`;
  }
}

export interface ChainOptions {
  family: Family;
  table: string;
  name: string;
  /** base chains only: type, hook and priority go together. */
  type?: ChainType;
  hook?: Hook;
  priority?: number;
  policy?: Policy;
}

export class Chain {
  readonly kind = 'chain';
  readonly family: Family;
  readonly table: string;
  readonly name: string;
  readonly type: ChainType | undefined;
  readonly hook: Hook | undefined;
  readonly priority: number | undefined;
  readonly policy: Policy | undefined;
  constructor(o: ChainOptions) {
    this.family = o.family;
    this.table = o.table;
    this.name = o.name;
    const d = this.describe();
    checkName(d, 'table', o.table);
    checkName(d, 'name', o.name);
    const base =
      o.hook !== undefined || o.type !== undefined || o.priority !== undefined || o.policy !== undefined;
    if (base && (o.hook === undefined || o.type === undefined)) {
      throw new NftValidationError(
        d,
        'a base chain needs type and hook (and optionally priority, policy)',
        'hook',
      );
    }
    if (o.hook !== undefined && !(o.hook in HOOKS))
      throw new NftValidationError(d, `unknown hook ${o.hook}`, 'hook');
    if (o.priority !== undefined && (!Number.isInteger(o.priority) || Math.abs(o.priority) > 2 ** 31 - 1)) {
      throw new NftValidationError(d, `priority must be a 32-bit integer, not ${o.priority}`, 'priority');
    }
    this.type = o.type;
    this.hook = o.hook;
    this.priority = base ? (o.priority ?? 0) : undefined;
    // The kernel reports a base chain's policy (accept by default), so keep it explicit for round trips.
    this.policy = base ? (o.policy ?? 'accept') : undefined;
  }
  get isBase(): boolean {
    return this.hook !== undefined;
  }
  describe(): string {
    return `chain ${this.family} ${this.table} ${this.name}`;
  }
  spec(): string {
    return `${this.family} ${this.table} ${this.name}`;
  }
  encode(w: Writer): void {
    w.str(NFTA_CHAIN.TABLE, this.table);
    w.str(NFTA_CHAIN.NAME, this.name);
    if (this.hook === undefined) return;
    w.str(NFTA_CHAIN.TYPE, this.type ?? 'filter');
    // NFTA_CHAIN_POLICY: NF_DROP 0 / NF_ACCEPT 1, u32 big-endian.
    w.u32be(NFTA_CHAIN.POLICY, this.policy === 'drop' ? 0 : 1);
    w.nest(NFTA_CHAIN.HOOK, () => {
      w.u32be(NFTA_HOOK.HOOKNUM, HOOKS[this.hook as Hook]);
      w.s32be(NFTA_HOOK.PRIORITY, this.priority ?? 0);
    });
  }
  static decode(family: Family, a: Attrs): Chain {
    const hook = a.nested(NFTA_CHAIN.HOOK);
    const o: ChainOptions = {
      family,
      table: a.str(NFTA_CHAIN.TABLE) ?? '',
      name: a.str(NFTA_CHAIN.NAME) ?? '',
    };
    if (hook) {
      const h = hookFromNumber(hook.u32be(NFTA_HOOK.HOOKNUM) ?? -1);
      if (h) o.hook = h;
      o.priority = hook.s32be(NFTA_HOOK.PRIORITY) ?? 0;
      o.type = (a.str(NFTA_CHAIN.TYPE) ?? 'filter') as ChainType;
      o.policy = a.u32be(NFTA_CHAIN.POLICY) === 0 ? 'drop' : 'accept';
    }
    return new Chain(o);
  }
  body(): string {
    if (this.hook === undefined) return '';
    return ` { type ${this.type} hook ${this.hook} priority ${this.priority}; policy ${this.policy}; }`;
  }
  toString(): string {
    return `add chain ${this.spec()}${this.body()}`;
  }
}

/** NFTNL_UDATA_RULE_COMMENT inside NFTA_RULE_USERDATA: type u8, len u8, NUL-terminated string. */
const UDATA_RULE_COMMENT = 0;

export interface RuleOptions {
  family: Family;
  table: string;
  chain: string;
  exprs: Expr[];
  comment?: string;
  /** kernel handle: set on rules read back, required by replace and delete. */
  handle?: number;
}

export class Rule {
  readonly kind = 'rule';
  readonly family: Family;
  readonly table: string;
  readonly chain: string;
  readonly exprs: readonly Expr[];
  readonly comment: string | undefined;
  readonly handle: number | undefined;
  /** The rule's statement text (without "add rule family table chain"), computed once. */
  readonly text: string;
  constructor(o: RuleOptions) {
    this.family = o.family;
    this.table = o.table;
    this.chain = o.chain;
    this.exprs = [...o.exprs];
    this.comment = o.comment;
    this.handle = o.handle;
    const d = this.describe();
    checkName(d, 'table', o.table);
    checkName(d, 'chain', o.chain);
    if (o.exprs.length === 0)
      throw new NftValidationError(d, 'a rule needs at least one expression', 'exprs');
    if (o.comment !== undefined && (/["\\\n]/.test(o.comment) || Buffer.byteLength(o.comment) > 128)) {
      throw new NftValidationError(
        d,
        'comment: no quotes, backslashes or newlines, at most 128 bytes',
        'comment',
      );
    }
    try {
      this.text = renderExprs(o.family, this.exprs);
    } catch (e) {
      if (e instanceof RenderError) throw new NftValidationError(d, e.message, 'exprs', { cause: e });
      throw e;
    }
  }
  describe(): string {
    const refs: string[] = [];
    for (const e of this.exprs) {
      const v = (e as { verdict?: { kind: string; chain?: string } }).verdict;
      if (v?.chain) refs.push(`${v.kind} ${v.chain}`);
      const set = (e as { set?: unknown }).set;
      if (e.name === 'lookup' && typeof set === 'string') refs.push(`@${set}`);
    }
    const handle = this.handle !== undefined ? ` handle ${this.handle}` : '';
    const uses = refs.length > 0 ? ` (uses ${refs.join(', ')})` : '';
    return `rule in chain ${this.family} ${this.table} ${this.chain}${handle}${uses}`;
  }
  withHandle(handle: number): Rule {
    return new Rule({ ...this.options(), handle });
  }
  options(): RuleOptions {
    return {
      family: this.family,
      table: this.table,
      chain: this.chain,
      exprs: [...this.exprs],
      ...(this.comment !== undefined ? { comment: this.comment } : {}),
      ...(this.handle !== undefined ? { handle: this.handle } : {}),
    };
  }
  statement(): string {
    return this.comment === undefined ? this.text : `${this.text} comment "${this.comment}"`;
  }
  encode(w: Writer, ctx?: EncodeContext, withHandle = false): void {
    w.str(NFTA_RULE.TABLE, this.table);
    w.str(NFTA_RULE.CHAIN, this.chain);
    if (withHandle && this.handle !== undefined) w.u64be(NFTA_RULE.HANDLE, this.handle);
    w.nest(NFTA_RULE.EXPRESSIONS, () => {
      for (const e of this.exprs) {
        w.nest(NFTA_LIST_ELEM, () => {
          w.str(NFTA_EXPR.NAME, e.name);
          w.nest(NFTA_EXPR.DATA, () => e.encode(w, ctx));
        });
      }
    });
    if (this.comment !== undefined) {
      const s = Buffer.from(`${this.comment}\0`);
      w.bytesAttr(NFTA_RULE.USERDATA, Buffer.concat([Buffer.from([UDATA_RULE_COMMENT, s.length]), s]));
    }
  }
  static decode(family: Family, a: Attrs): Rule {
    const exprs: Expr[] = [];
    const table = a.str(NFTA_RULE.TABLE) ?? '';
    const chain = a.str(NFTA_RULE.CHAIN) ?? '';
    const list = a.get(NFTA_RULE.EXPRESSIONS);
    for (const item of list ? Attrs.list(list) : []) {
      const e = Attrs.parse(item);
      const name = e.str(NFTA_EXPR.NAME) ?? '';
      const dec = EXPR_DECODERS[name];
      if (!dec)
        throw new NftValidationError(
          `rule in chain ${family} ${table} ${chain}`,
          `unsupported expression "${name}"`,
        );
      exprs.push(dec(e.nested(NFTA_EXPR.DATA) ?? new Attrs()));
    }
    const o: RuleOptions = { family, table, chain, exprs };
    const handle = a.u64be(NFTA_RULE.HANDLE);
    if (handle !== undefined) o.handle = Number(handle);
    const ud = a.get(NFTA_RULE.USERDATA);
    if (ud) {
      for (let p = 0; p + 2 <= ud.length; ) {
        const t = ud[p] ?? 0;
        const l = ud[p + 1] ?? 0;
        if (t === UDATA_RULE_COMMENT) o.comment = ud.toString('utf8', p + 2, p + 2 + l).replace(/\0.*$/s, '');
        p += 2 + l;
      }
    }
    return new Rule(o);
  }
  toString(): string {
    return `add rule ${this.family} ${this.table} ${this.chain} ${this.statement()}`;
  }
}

export function renderExprs(family: Family, exprs: readonly Expr[]): string {
  const ctx = new RenderContext(family);
  ctx.pending = [...exprs];
  for (let e = ctx.pending.shift(); e; e = ctx.pending.shift()) e.render(ctx);
  if (ctx.out.length === 0) throw new RenderError('the rule has no statement (only loads)');
  return ctx.out.join(' ');
}
