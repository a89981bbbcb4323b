// Test helper: what a table of our compiled shape does with a new connection's first packet, read from its
// rules' nft statements and its sets' elements (as the kernel or the FakeNft lists them). Knows only
// the statements the compiler writes (a rule it cannot read throws, so a new shape is noticed); never a
// model of the policy: it reads the table, whatever the table says.
import type { Element, NamedSet, Rule, Ruleset } from '../../src/nft/index.ts';

export interface Packet {
  family: 4 | 6;
  saddr: bigint;
  daddr: bigint;
  protocol: 'tcp' | 'udp' | 'sctp' | 'icmp';
  dport: number;
}

const PROTO_NUMBERS = { tcp: 6, udp: 17, sctp: 132, icmp: 1 } as const;

type Verdict = 'accept' | 'drop' | 'return' | { jump: string } | { goto: string };

function addressBytes(family: 4 | 6, v: bigint): Buffer {
  const b = Buffer.alloc(family === 4 ? 4 : 16);
  if (family === 4) b.writeUInt32BE(Number(v));
  else {
    b.writeBigUInt64BE(v >> 64n);
    b.writeBigUInt64BE(v & 0xffff_ffff_ffff_ffffn, 8);
  }
  return b;
}

function fieldValue(p: Packet, field: string): Buffer | undefined {
  const m = /^(ip6?) ([sd]addr)$/.exec(field);
  if (m) {
    if ((m[1] === 'ip') !== (p.family === 4)) return undefined;
    return addressBytes(p.family, m[2] === 'saddr' ? p.saddr : p.daddr);
  }
  if (field === 'meta l4proto') return Buffer.from([PROTO_NUMBERS[p.protocol]]);
  if (field === 'th dport') {
    if (p.protocol === 'icmp') return undefined;
    const b = Buffer.alloc(2);
    b.writeUInt16BE(p.dport);
    return b;
  }
  throw new Error(`evaluator: unknown field ${field}`);
}

const within = (e: Element, key: Buffer[]) =>
  e.fields.every((f, i) => Buffer.compare(f.from, key[i]!) <= 0 && Buffer.compare(key[i]!, f.to) <= 0);

function parseCidr(family: 4 | 6, text: string): [Buffer, Buffer] {
  const [addr, len] = text.split('/');
  const bits = family === 4 ? 32 : 128;
  const prefix = len === undefined ? bits : Number(len);
  let v: bigint;
  if (family === 4) v = addr!.split('.').reduce((n, x) => (n << 8n) | BigInt(Number(x)), 0n);
  else {
    const [head, tail] = addr!.split('::');
    const hs = head ? head.split(':') : [];
    const ts = tail !== undefined && tail !== '' ? tail.split(':') : [];
    const groups = [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
    v = groups.reduce((n, g) => (n << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
  }
  const host = (1n << BigInt(bits - prefix)) - 1n;
  return [addressBytes(family, v & ~host), addressBytes(family, v | host)];
}

export class TableEvaluator {
  private readonly sets = new Map<string, NamedSet>();
  private readonly rules = new Map<string, Rule[]>();
  private readonly bases: string[];

  constructor(r: Ruleset | undefined) {
    for (const s of r?.sets ?? []) this.sets.set(s.name, s);
    for (const x of r?.rules ?? []) {
      const list = this.rules.get(x.chain) ?? [];
      list.push(x);
      this.rules.set(x.chain, list);
    }
    this.bases = (r?.chains ?? []).filter((c) => c.isBase && c.hook === 'forward').map((c) => c.name);
  }

  /** Every hooked chain must let the packet through (a drop anywhere is final). */
  allows(p: Packet): boolean {
    for (const b of this.bases) if (this.run(b, p, 0) === 'drop') return false;
    return true;
  }

  private lookup(name: string, key: Buffer[]): Element | undefined {
    const s = this.sets.get(name);
    if (!s) throw new Error(`evaluator: rule names missing set ${name}`);
    return s.elements.find((e) => within(e, key));
  }

  private run(chain: string, p: Packet, depth: number): 'accept' | 'drop' | undefined {
    if (depth > 16) throw new Error('evaluator: jump loop');
    for (const rule of this.rules.get(chain) ?? []) {
      const v = this.rule(rule, p);
      if (v === undefined) continue;
      if (v === 'accept' || v === 'drop') return v;
      if (v === 'return') return undefined;
      // goto: the target's end (or return) ends this chain too.
      if ('goto' in v) return this.run(v.goto, p, depth + 1);
      const r = this.run(v.jump, p, depth + 1);
      if (r !== undefined) return r;
    }
    return undefined;
  }

  /** The rule's verdict for the packet, or undefined when it does not match. */
  private rule(rule: Rule, p: Packet): Verdict | undefined {
    let s = rule.text;
    while (s.length > 0) {
      const step = this.step(s, p);
      if (step === undefined) throw new Error(`evaluator: cannot read rule "${rule.text}" at "${s}"`);
      if (step.verdict !== undefined || step.miss) return step.miss ? undefined : step.verdict;
      s = s.slice(step.length);
    }
    return undefined;
  }

  /** One statement at the start of `s`: how long it is, and whether it misses or ends with a verdict. */
  private step(s: string, p: Packet): { length: number; miss?: boolean; verdict?: Verdict } | undefined {
    const at = (re: RegExp) => re.exec(s);
    const ct = at(/^ct state \S+\s*/);
    // A new connection is neither established nor invalid.
    if (ct) return { length: ct[0].length, miss: true };
    const nfproto = at(/^meta nfproto (ipv4|ipv6)\s*/);
    if (nfproto) return { length: nfproto[0].length, miss: (nfproto[1] === 'ipv4') !== (p.family === 4) };
    // The base chain's neighbour-discovery accept: no packet here is ICMPv6 (new connections only).
    const l4 = at(/^meta l4proto ([a-z0-9]+)(?!\s*\.)\s*/);
    if (l4) return { length: l4[0].length, miss: l4[1] !== p.protocol };
    const icmpv6 = at(/^icmpv6 type \S+\s*/);
    if (icmpv6) return { length: icmpv6[0].length, miss: true };
    const lookup = at(
      /^((?:ip6? [sd]addr|meta l4proto|th dport)(?: \. (?:ip6? [sd]addr|meta l4proto|th dport))*) (!= )?@(\S+)\s*/,
    );
    if (lookup) {
      const key = lookup[1]!.split(' . ').map((f) => fieldValue(p, f));
      if (key.some((k) => k === undefined)) return { length: 0, miss: true };
      const hit = this.lookup(lookup[3]!, key as Buffer[]) !== undefined;
      return { length: lookup[0].length, miss: hit === (lookup[2] !== undefined) };
    }
    const vmap = at(/^(ip6? [sd]addr) vmap @(\S+)\s*/);
    if (vmap) {
      const k = fieldValue(p, vmap[1]!);
      const d = (k && this.lookup(vmap[2]!, [k]))?.data as { kind: string; chain?: string } | undefined;
      if (!d) return { length: 0, miss: true };
      if (d.kind === 'jump') return { length: 0, verdict: { jump: d.chain! } };
      if (d.kind === 'goto') return { length: 0, verdict: { goto: d.chain! } };
      if (d.kind === 'accept' || d.kind === 'drop' || d.kind === 'return')
        return { length: 0, verdict: d.kind };
      throw new Error(`evaluator: map verdict ${d.kind}`);
    }
    const match = at(/^(ip6? [sd]addr) ([0-9a-f.:]+(?:\/\d+)?)\s*/);
    if (match) {
      const k = fieldValue(p, match[1]!);
      if (k === undefined) return { length: 0, miss: true };
      const [lo, hi] = parseCidr(p.family, match[2]!);
      return { length: match[0].length, miss: Buffer.compare(lo, k) > 0 || Buffer.compare(k, hi) > 0 };
    }
    const counter = at(/^counter\s*/);
    if (counter) return { length: counter[0].length };
    const final = at(/^(accept|drop|return)$/);
    if (final) return { length: 0, verdict: final[1] as Verdict };
    const jump = at(/^jump (\S+)$/);
    if (jump) return { length: 0, verdict: { jump: jump[1]! } };
    return undefined;
  }
}
