// Desired state -> nftables objects of our library (table, chains, sets, rules). Builds objects only;
// programming them is the caller's business (see diff.ts for the transactions).

import type { Expr } from '../nft/index.ts';
import {
  Bitwise,
  Chain,
  Cmp,
  goto,
  jump,
  LimitObject,
  m,
  NamedSet,
  ObjRef,
  Payload,
  Rule,
  Table,
} from '../nft/index.ts';
import type { FieldName } from '../nft/match.ts';
import { InternalError } from '../util/errors.ts';
import {
  type DesiredChain,
  type DesiredLimit,
  type DesiredSet,
  type LookupField,
  type RuleSpec,
  TABLE,
} from './desired.ts';

const FAMILY = 'inet' as const;

export const tableObject = (): Table => new Table({ family: FAMILY, name: TABLE });

export function chainObject(c: DesiredChain): Chain {
  if (c.base) {
    // Filter priority in the forward hook: after kube-proxy's DNAT in prerouting, so Services are
    // judged by backend pod address (point 14). Policy accept: only what the rules drop is dropped.
    return new Chain({
      family: FAMILY,
      table: TABLE,
      name: c.name,
      type: 'filter',
      hook: 'forward',
      priority: 0,
      policy: 'accept',
    });
  }
  return new Chain({ family: FAMILY, table: TABLE, name: c.name });
}

/** The set's definition without elements (elements are added and removed by the diff). */
export function setObject(s: DesiredSet): NamedSet {
  return new NamedSet({
    family: FAMILY,
    table: TABLE,
    name: s.name,
    key: s.key.length === 1 ? s.key[0]! : s.key,
    ...(s.map ? { data: 'verdict' as const } : {}),
    flags: s.interval ? ['interval'] : [],
  });
}

/** A named limit object: `rate over` (its references match what exceeds the rate; see desired.ts). */
export const limitObject = (l: DesiredLimit): LimitObject =>
  new LimitObject({
    family: FAMILY,
    table: TABLE,
    name: l.name,
    rate: l.rate,
    per: l.per,
    burst: l.burst,
    over: true,
  });

/** A state's limit objects, by name. */
export const limitObjects = (objects: ReadonlyMap<string, DesiredLimit> | undefined): LimitObject[] =>
  [...(objects?.values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1)).map(limitObject);

/** The TCP flags test of a syn-only rule: `& (fin|syn|rst|ack)` then `!= syn`. */
const SYN_MASK = Buffer.from([0x17]);
const SYN = Buffer.from([0x02]);

const nfproto = (family: 4 | 6 | undefined): Expr[] =>
  family === undefined ? [] : m.match('meta nfproto', family === 4 ? 'ipv4' : 'ipv6');

const addrField = (family: 4 | 6, field: 'saddr' | 'daddr'): FieldName =>
  `${family === 4 ? 'ip' : 'ip6'} ${field}` as FieldName;

function lookupFields(
  family: 4 | 6 | undefined,
  field: 'saddr' | 'daddr',
  fields: LookupField[],
): FieldName[] {
  return fields.map((f) => {
    if (f === 'l4proto') return 'meta l4proto';
    if (f === 'dport') return 'th dport';
    if (family === undefined) throw new InternalError('an address lookup needs a family');
    return addrField(family, field);
  });
}

function ruleExprs(spec: RuleSpec): Expr[] {
  switch (spec.kind) {
    case 'ct':
      return [
        ...m.match('ct state', spec.states),
        ...(spec.counter ? [m.counter()] : []),
        m.verdict(spec.verdict),
      ];
    case 'unknown-local': {
      const f = addrField(spec.family, spec.field);
      return [
        ...nfproto(spec.family),
        ...m.match(f, spec.cidr),
        ...m.inSet(f, spec.knownSet, { invert: true }),
        m.counter(),
        m.verdict('drop'),
      ];
    }
    case 'syn-only':
      return [
        ...nfproto(spec.family),
        ...m.match(addrField(spec.family, spec.field), spec.cidr),
        ...m.match('ct state', 'new'),
        ...m.match('meta l4proto', 'tcp'),
        // tcp flags & (fin|syn|rst|ack) != syn: one byte at offset 13 of the TCP header.
        new Payload({ dreg: 1, base: 'th', offset: 13, len: 1 }),
        new Bitwise({ sreg: 1, dreg: 1, mask: SYN_MASK }),
        new Cmp({ sreg: 1, op: 'neq', data: SYN }),
        m.counter(),
        m.verdict('drop'),
      ];
    case 'dispatch':
      return [...nfproto(spec.family), ...m.vmap(addrField(spec.family, spec.field), spec.map)];
    case 'neighbour-discovery':
      // ND messages are untracked by conntrack: without this rule an isolated pod could not resolve or
      // answer its same-node neighbours' addresses, so allowed IPv6 traffic between them failed.
      return [
        ...nfproto(6),
        ...m.match('meta l4proto', 'icmpv6'),
        ...m.match('icmpv6 type', '0x87-0x88'),
        m.verdict('accept'),
      ];
    case 'lookup':
      return [
        ...nfproto(spec.family),
        ...m.inSet(lookupFields(spec.family, spec.field, spec.fields), spec.set),
        m.verdict(spec.verdict),
      ];
    case 'tier': {
      const addr = spec.family === undefined ? undefined : addrField(spec.family, spec.field);
      return [
        ...nfproto(spec.family),
        ...(spec.addresses && addr ? m.inSet(addr, spec.addresses) : []),
        ...(spec.addressPorts && addr ? m.inSet([addr, 'meta l4proto', 'th dport'], spec.addressPorts) : []),
        ...(spec.ports ? m.inSet(['meta l4proto', 'th dport'], spec.ports) : []),
        m.verdict(spec.verdict),
      ];
    }
    case 'final':
      return [...(spec.counter ? [m.counter()] : []), m.verdict(spec.verdict)];
    case 'report-gate':
      return [...m.match('ct state', 'new'), m.verdict(jump(spec.chain))];
    case 'report':
      return [...m.match('ct state', 'new'), m.log({ prefix: spec.prefix, group: spec.group })];
    case 'report-audit-gate':
      return [
        ...m.match('ct state', 'new'),
        new ObjRef({ type: 'limit', object: spec.limit }),
        m.verdict(goto(spec.chain)),
      ];
    case 'report-limit':
      return [new ObjRef({ type: 'limit', object: spec.limit }), m.counter(), m.verdict('drop')];
  }
}

/** Whether a rule read back is a syn-only rule (the base chain's drop of new pod TCP without a bare SYN). */
export function isSynOnlyRule(r: Rule): boolean {
  const i = r.exprs.findIndex((e) => e instanceof Bitwise && e.mask.equals(SYN_MASK));
  const next = r.exprs[i + 1];
  return i >= 0 && next instanceof Cmp && next.op === 'neq' && next.data.equals(SYN);
}

export function ruleObjects(c: DesiredChain): Rule[] {
  return c.rules.map(
    (spec) =>
      new Rule({
        family: FAMILY,
        table: TABLE,
        chain: c.name,
        exprs: ruleExprs(spec),
        ...(spec.kind === 'final' && spec.comment ? { comment: spec.comment } : {}),
      }),
  );
}

/** A stable text of a chain's rules: equal texts mean the chain need not be rewritten. */
export function chainRulesText(c: DesiredChain): string {
  return JSON.stringify(c.rules);
}
