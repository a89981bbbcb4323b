// Reads the kernel's ruleset back (GET* dumps) and decodes it into the same typed objects we send, so an
// agent can adopt or repair its table after a restart. Read-only: never changes the ruleset.

import { Attrs, type Writer } from '../netlink/attr.ts';
import { NFT_MSG, NFTA_OBJ, NFTA_RULE, NFTA_SET, NFTA_SET_ELEM_LIST } from '../netlink/constants.ts';
import { NFGENMSG_LEN, type NlMessage } from '../netlink/message.ts';
import type { NfnlSocket } from '../netlink/socket.ts';
import { isNotFound } from '../util/errors.ts';
import { FAMILIES, type Family, familyFromNumber } from './family.ts';
import { Chain, Rule, Table } from './objects.ts';
import { type KernelElement, NamedSet } from './set.ts';
import { LimitObject } from './stateful.ts';

export interface Ruleset {
  tables: Table[];
  chains: Chain[];
  sets: NamedSet[];
  rules: Rule[];
  /** Named limit objects (absent: none, as in a listing made before objects existed). */
  objects?: LimitObject[];
}

export interface ListFilter {
  family?: Family;
  table?: string;
  /** Rule dumps only (with a table): the rules of this chain. */
  chain?: string;
}

function attrsOf(m: NlMessage): Attrs {
  return Attrs.parse(m.payload, NFGENMSG_LEN);
}

function each<T>(msgs: NlMessage[], decode: (f: Family, a: Attrs) => T): T[] {
  const out: T[] = [];
  for (const m of msgs) {
    const f = familyFromNumber(m.family);
    if (f) out.push(decode(f, attrsOf(m)));
  }
  return out;
}

export async function listTables(sock: NfnlSocket, filter: ListFilter = {}): Promise<Table[]> {
  const fam = filter.family ? FAMILIES[filter.family] : 0;
  const tables = each(await sock.dump(NFT_MSG.GETTABLE, fam), Table.decode);
  return tables.filter((t) => filter.table === undefined || t.name === filter.table);
}

export async function listChains(sock: NfnlSocket, filter: ListFilter = {}): Promise<Chain[]> {
  const fam = filter.family ? FAMILIES[filter.family] : 0;
  const chains = each(await sock.dump(NFT_MSG.GETCHAIN, fam), Chain.decode);
  return chains.filter((c) => filter.table === undefined || c.table === filter.table);
}

export async function listRules(sock: NfnlSocket, filter: ListFilter = {}): Promise<Rule[]> {
  const fam = filter.family ? FAMILIES[filter.family] : 0;
  const { table, chain } = filter;
  const fill =
    table === undefined
      ? undefined
      : (w: Writer) => {
          w.str(NFTA_RULE.TABLE, table);
          if (chain !== undefined) w.str(NFTA_RULE.CHAIN, chain);
        };
  return each(await sock.dump(NFT_MSG.GETRULE, fam, fill), Rule.decode);
}

/**
 * The limit objects (GETOBJ dump, filtered by table). Objects of other types are not tollgate's and not
 * decoded: they enforce nothing without a rule naming them, and a rule that names one fails its decode.
 */
export async function listObjects(sock: NfnlSocket, filter: ListFilter = {}): Promise<LimitObject[]> {
  const fam = filter.family ? FAMILIES[filter.family] : 0;
  const fill = filter.table ? (w: Writer) => w.str(NFTA_OBJ.TABLE, filter.table as string) : undefined;
  const out: LimitObject[] = [];
  for (const m of await sock.dump(NFT_MSG.GETOBJ, fam, fill)) {
    const family = familyFromNumber(m.family);
    const a = attrsOf(m);
    if (family && LimitObject.isLimit(a)) out.push(LimitObject.decode(family, a));
  }
  return out.filter((o) => filter.table === undefined || o.table === filter.table);
}

/** Sets and maps with their elements. */
export async function listSets(sock: NfnlSocket, filter: ListFilter = {}): Promise<NamedSet[]> {
  const fam = filter.family ? FAMILIES[filter.family] : 0;
  const fill = filter.table ? (w: Writer) => w.str(NFTA_SET.TABLE, filter.table as string) : undefined;
  const out: NamedSet[] = [];
  for (const m of await sock.dump(NFT_MSG.GETSET, fam, fill)) {
    const family = familyFromNumber(m.family);
    if (!family) continue;
    const a = attrsOf(m);
    if (((a.u32be(NFTA_SET.FLAGS) ?? 0) & 1) !== 0) continue; // anonymous sets belong to their rule
    const bare = NamedSet.decode(family, a);
    const msgs = await sock.dump(
      NFT_MSG.GETSETELEM,
      FAMILIES[family],
      (w) => {
        w.str(NFTA_SET_ELEM_LIST.TABLE, bare.table);
        w.str(NFTA_SET_ELEM_LIST.SET, bare.name);
      },
      bare.describe(),
    );
    const kes: KernelElement[] = [];
    for (const em of msgs) {
      const list = attrsOf(em).get(NFTA_SET_ELEM_LIST.ELEMENTS);
      if (!list) continue;
      for (const item of Attrs.list(list)) kes.push(NamedSet.decodeKernelElement(Attrs.parse(item)));
    }
    out.push(NamedSet.decode(family, a, bare.elementsFromKernel(kes)));
  }
  return out;
}

/**
 * A consistent snapshot: the listing takes several dumps (tables, chains, sets and each set's elements,
 * rules), and another process may commit in between (a set deleted between listing it and dumping its
 * elements answers ENOENT). The generation is read before and after; if it moved, or a dump hit an
 * object that just went away, the whole listing is taken again.
 */
export async function listRuleset(
  sock: NfnlSocket,
  filter: ListFilter = {},
  attempts = 10,
): Promise<Ruleset> {
  for (let attempt = 1; ; attempt++) {
    // After a collision, wait a little longer each time (a few ms, jittered) so that a burst of another
    // process's commits can pass instead of hitting every retry in lockstep.
    if (attempt > 1) await new Promise((r) => setTimeout(r, Math.random() * 2 * attempt));
    const before = await sock.getGeneration();
    try {
      const ruleset = {
        tables: await listTables(sock, filter),
        chains: await listChains(sock, filter),
        sets: await listSets(sock, filter),
        objects: await listObjects(sock, filter),
        rules: await listRules(sock, filter),
      };
      if ((await sock.getGeneration()) === before || attempt >= attempts) return ruleset;
    } catch (error) {
      const vanished = isNotFound(error);
      if (!vanished || attempt >= attempts) throw error;
    }
  }
}

/** nft script that recreates a ruleset read back (tables, chains, sets with elements, objects, rules). */
export function rulesetToString(r: Ruleset): string {
  const lines = [
    ...r.tables.map((t) => t.toString()),
    ...r.chains.map((c) => c.toString()),
    ...r.sets.map((s) => s.toString()),
    ...(r.objects ?? []).map((o) => o.toString()),
    ...r.rules.map((x) => x.toString()),
  ];
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** A rule's statement with counter values blanked: traffic changes them, not us. */
function ruleText(r: Rule): string {
  return r.statement().replace(/\bcounter packets \d+ bytes \d+/g, 'counter');
}

/**
 * One canonical line per object: the table, chains, sets and limit objects sorted by name (a set's
 * elements sorted by their text), then every chain's rules in their order. Handles never appear; counters print bare.
 * `setName` renames sets, in their lines and where rules reference them (`@name`): a caller for whom a
 * set's name is history rather than meaning (compile/verify.ts) compares under the names it chooses.
 */
export function canonicalLines(r: Ruleset, setName: (name: string) => string = (name) => name): string[] {
  const byName = <T extends { name: string }>(xs: readonly T[], key = (x: T) => x.name): T[] =>
    [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const lines: string[] = [];
  for (const t of byName(r.tables)) lines.push(t.toString());
  for (const c of byName(r.chains)) lines.push(c.toString());
  for (const s of byName(r.sets, (x) => setName(x.name))) {
    const elements = s.elements.map((e) => s.formatElement(e)).sort();
    const spec = `${s.family} ${s.table} ${setName(s.name)}`;
    lines.push(`add ${s.kind} ${spec} ${s.body()}`);
    for (const e of elements) lines.push(`add element ${spec} { ${e} }`);
  }
  for (const o of byName(r.objects ?? [])) lines.push(o.toString());
  const rename = (text: string) => text.replace(/@(\S+)/g, (_all, name: string) => `@${setName(name)}`);
  const chainNames = byName(r.chains).map((c) => c.name);
  for (const name of new Set([...chainNames, ...r.rules.map((x) => x.chain)])) {
    for (const x of r.rules.filter((y) => y.chain === name))
      lines.push(`add rule ${x.family} ${x.table} ${x.chain} ${rename(ruleText(x))}`);
  }
  return lines;
}
