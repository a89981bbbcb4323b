// Test corpus: rulesets covering every object, expression and flag the library supports, built with the
// public API. Used by the kernel equivalence/round-trip tests and the golden tests. Builds objects only.

import {
  Chain,
  type Expr,
  type Family,
  Limit,
  LimitObject,
  m,
  NamedSet,
  type NftObject,
  ObjRef,
  Range,
  Rule,
  type SetOptions,
  Table,
  Transaction,
} from '../../src/nft/index.ts';

export interface CorpusCase {
  tx: Transaction;
  objects: NftObject[];
}

class Builder {
  readonly tx = new Transaction();
  readonly objects: NftObject[] = [];
  readonly family: Family;
  readonly table: string;
  constructor(family: Family, table: string) {
    this.family = family;
    this.table = table;
    this.add(new Table({ family, name: table }));
  }
  add<T extends NftObject>(o: T): T {
    this.tx.add(o);
    this.objects.push(o);
    return o;
  }
  chain(
    name: string,
    base?: Omit<ConstructorParameters<typeof Chain>[0], 'family' | 'table' | 'name'>,
  ): Chain {
    return this.add(new Chain({ family: this.family, table: this.table, name, ...base }));
  }
  set(o: Omit<SetOptions, 'family' | 'table'>): NamedSet {
    return this.add(new NamedSet({ family: this.family, table: this.table, ...o }));
  }
  rule(chain: string, ...exprs: Array<Expr | Expr[]>): Rule {
    return this.add(new Rule({ family: this.family, table: this.table, chain, exprs: exprs.flat() }));
  }
}

function inetCase(b: Builder): void {
  b.chain('c1');
  b.chain('in', { type: 'filter', hook: 'input', priority: 0, policy: 'drop' });
  b.set({
    name: 's4',
    key: 'ipv4_addr',
    flags: ['interval'],
    elements: ['10.0.0.0/8', '192.168.1.1', '172.16.0.1-172.16.0.9'],
  });
  b.set({
    name: 'c3',
    key: ['ipv4_addr', 'inet_proto', 'inet_service'],
    elements: ['10.0.0.1 . tcp . 80', '10.0.0.2 . udp . 53'],
  });
  b.set({
    name: 'ci',
    key: ['ipv4_addr', 'inet_service'],
    flags: ['interval'],
    elements: ['10.0.0.0/8 . 80-90', '192.168.0.1 . 443'],
  });
  b.set({
    name: 'vm',
    key: 'ipv4_addr',
    data: 'verdict',
    elements: ['10.0.0.1 : accept', '10.0.0.2 : jump c1', '10.0.0.3 : goto c1', '10.0.0.4 : drop'],
  });
  b.set({
    name: 'cvm',
    key: ['ipv4_addr', 'inet_service'],
    data: 'verdict',
    elements: ['10.1.0.1 . 22 : accept'],
  });
  b.set({ name: 'mk', key: 'mark', elements: ['0x1', '0xff00'] });
  b.set({ name: 'ifs', key: 'ifname', elements: ['eth0', 'veth-a.1'] });
  b.set({
    name: 'to',
    key: 'ipv6_addr',
    flags: ['timeout'],
    timeout: 3_600_000,
    elements: [{ key: '::1', timeout: 30_000 }, '2001:db8::5'],
  });
  b.set({ name: 'k', key: 'inet_proto', flags: ['constant'], elements: ['tcp', 'udp', '132'] });
  b.rule('in', m.match('ct state', 'established,related'), m.verdict('accept'));
  b.rule('in', m.match('ct state', 'invalid'), m.counter(), m.verdict('drop'));
  b.rule('in', m.match('meta l4proto', 'tcp'), m.match('th dport', 22), m.counter(), m.verdict('accept'));
  b.rule('in', m.match('meta l4proto', 'tcp'), m.match('th dport', '1000-2000'), m.verdict('accept'));
  b.rule('in', m.match('meta nfproto', 'ipv4'), m.match('ip saddr', '10.0.0.0/8'), m.verdict('jump c1'));
  b.rule('in', m.match('meta nfproto', 'ipv4'), m.match('ip saddr', '10.16.0.0/12'), m.verdict('goto c1'));
  b.rule(
    'in',
    m.match('meta nfproto', 'ipv4'),
    m.inSet(['ip saddr', 'meta l4proto', 'th dport'], 'c3'),
    m.log({ prefix: 'hi ', group: 3 }),
    m.verdict('drop'),
  );
  b.rule('in', m.match('meta nfproto', 'ipv4'), m.inSet(['ip daddr', 'th dport'], 'ci'), m.verdict('accept'));
  b.rule(
    'in',
    m.match('meta nfproto', 'ipv4'),
    m.inSet('ip saddr', 's4', { invert: true }),
    m.verdict('continue'),
  );
  b.rule('in', m.match('meta nfproto', 'ipv4'), m.vmap('ip saddr', 'vm'));
  b.rule('in', m.match('meta nfproto', 'ipv4'), m.vmap(['ip daddr', 'th dport'], 'cvm'));
  b.rule('in', m.match('meta mark', 5), m.reject());
  b.rule('in', m.match('meta l4proto', 'tcp'), m.match('iifname', 'eth0'), m.reject('tcp reset'));
  b.rule('in', m.match('meta nfproto', 'ipv6'), m.reject('icmpv6 admin-prohibited'));
  // The base chain's neighbour-discovery accept (compile/desired.ts).
  b.rule(
    'in',
    m.match('meta nfproto', 'ipv6'),
    m.match('meta l4proto', 'icmpv6'),
    m.match('icmpv6 type', '0x87-0x88'),
    m.verdict('accept'),
  );
  b.rule('in', m.reject('icmpx admin-prohibited'));
  b.rule('in', m.inSet('meta mark', 'mk'), m.verdict('return'));
  b.rule(
    'in',
    m.inSet('oifname', 'ifs'),
    m.inSet('meta l4proto', 'k'),
    m.log({ prefix: 'x' }),
    m.verdict('accept'),
  );
  b.rule('in', m.match('meta nfproto', 'ipv6'), m.inSet('ip6 saddr', 'to'), m.log(), m.verdict('drop'));
  b.rule('c1', m.match('ct mark', 7, 'neq'), m.setMark(0x2a));
  b.rule('c1', m.match('meta protocol', 'ip6'), m.log({ level: 'info' }));
  b.rule('c1', m.match('meta l4proto', 'udp'), m.match('th sport', 53, 'lt'), m.log({ group: 2 }));
  // Drop reports (issue 18): a rate-limited nflog report of a new connection before its drop.
  b.rule(
    'c1',
    m.match('ct state', 'new'),
    new Limit({ rate: 20, burst: 5 }),
    m.log({ prefix: 'tg:x', group: 7 }),
    m.verdict('drop'),
  );
  b.rule('c1', new Limit({ rate: 10, per: 'hour', burst: 2, over: true }), m.counter());
  // One bucket shared by several rules (issue 18): a named limit object and the rules naming it.
  b.add(
    new LimitObject({ family: 'inet', table: b.table, name: 'reports-20', rate: 20, burst: 5, over: true }),
  );
  b.add(new LimitObject({ family: 'inet', table: b.table, name: 'slow', rate: 3, per: 'minute', burst: 1 }));
  b.rule('c1', new ObjRef({ type: 'limit', object: 'reports-20' }), m.counter(), m.verdict('drop'));
  b.rule(
    'c1',
    m.match('ct state', 'new'),
    new ObjRef({ type: 'limit', object: 'slow' }),
    m.log({ group: 7 }),
  );
}

function ipCase(b: Builder): void {
  b.chain('c');
  b.chain('fw', { type: 'filter', hook: 'forward', priority: -100, policy: 'accept' });
  b.chain('out', { type: 'filter', hook: 'output', priority: 10 });
  b.set({ name: 'ports', key: 'inet_service', flags: ['interval'], elements: ['22', '80-89', '8000-8999'] });
  b.set({
    name: 'dm',
    key: 'ipv4_addr',
    data: 'mark',
    flags: ['interval'],
    elements: ['10.0.0.0/24 : 0x1', '10.0.1.1 : 0x2'],
  });
  b.set({
    name: 'everything',
    key: 'ipv4_addr',
    flags: ['interval'],
    elements: ['0.0.0.0/1', '200.0.0.0-255.255.255.255'],
  });
  b.rule('fw', m.match('ip protocol', 'tcp'), m.inSet('th dport', 'ports'), m.verdict('accept'));
  b.rule('fw', m.match('ip saddr', '10.16.0.0/12'), m.reject('icmp port-unreachable'));
  b.rule('fw', m.match('ip daddr', '10.1.2.3', 'neq'), m.verdict('goto c'));
  b.rule('fw', m.match('th dport', 53), m.verdict('drop'));
  b.rule('fw', m.match('ip protocol', 'tcp'), m.reject('tcp reset'));
  b.rule(
    'fw',
    m.match('ip saddr', '192.168.0.0/16', 'neq'),
    m.inSet('ip daddr', 'everything'),
    m.reject('icmp admin-prohibited'),
  );
  b.rule('out', m.match('ct state', 'new'), m.counter());
  b.rule('out', m.setMark(7));
  b.rule('out', m.match('meta mark', 7), m.verdict('return'));
  b.rule('out', new Limit({ rate: 1024, type: 'bytes', burst: 100 }), m.verdict('accept'));
  b.rule('out', new Limit({ rate: 3, per: 'minute' }), m.verdict('accept'));
  // The range expression (newer nft emits it; nft 1.0.x prints the same text for cmp >= / <=).
  b.rule(
    'c',
    m.loadKey(['th dport']),
    new Range({ sreg: 1, from: Buffer.from([0, 10]), to: Buffer.from([0, 20]) }),
    m.verdict('accept'),
  );
}

function ip6Case(b: Builder): void {
  b.chain('o', { type: 'filter', hook: 'output', priority: 0, policy: 'accept' });
  b.chain('pre', { type: 'filter', hook: 'prerouting', priority: -300 });
  b.set({
    name: 'a6',
    key: 'ipv6_addr',
    flags: ['interval'],
    elements: ['2001:db8::/32', 'fe80::1', '::ffff:0:0/96'],
  });
  b.set({
    name: 'cc',
    key: ['ipv6_addr', 'ifname'],
    flags: ['interval'],
    elements: ['2001:db8::/64 . "eth0"', '::1 . lo'],
  });
  b.set({
    name: 'v6m',
    key: ['ipv6_addr', 'inet_proto', 'inet_service'],
    data: 'verdict',
    elements: ['2001:db8::1 . tcp . 443 : accept'],
  });
  b.rule('o', m.inSet('ip6 saddr', 'a6', { invert: true }), m.reject('icmpv6 admin-prohibited'));
  b.rule('o', m.match('ip6 nexthdr', 'udp'), m.match('th sport', 53), m.verdict('accept'));
  b.rule('o', m.inSet(['ip6 daddr', 'oifname'], 'cc'), m.counter(), m.verdict('accept'));
  b.rule('o', m.match('ip6 daddr', '2001:db8:1::/48'), m.verdict('drop'));
  b.rule('o', m.match('ip6 daddr', '2001:db8:2::/60'), m.verdict('drop'));
  b.rule('o', new Limit({ rate: 7, per: 'day', burst: 1 }), m.log({ group: 1 }));
  b.rule('pre', m.match('meta l4proto', 'tcp'), m.vmap(['ip6 saddr', 'meta l4proto', 'th dport'], 'v6m'));
  b.rule('pre', m.match('iifname', 'lo', 'neq'), m.match('ip6 saddr', '::1'), m.verdict('drop'));
}

export const CORPUS: Record<string, () => CorpusCase> = {
  inet: () => {
    const b = new Builder('inet', 'tollgate');
    inetCase(b);
    return b;
  },
  ip: () => {
    const b = new Builder('ip', 't4');
    ipCase(b);
    return b;
  },
  ip6: () => {
    const b = new Builder('ip6', 't6');
    ip6Case(b);
    return b;
  },
  all: () => {
    // Three families in one atomic transaction.
    const b = new Builder('inet', 'tollgate');
    inetCase(b);
    const b4 = new Builder('ip', 't4');
    ipCase(b4);
    const b6 = new Builder('ip6', 't6');
    ip6Case(b6);
    for (const o of [...b4.objects, ...b6.objects]) b.add(o);
    return b;
  },
};
