// Test cases that run the same way on FakeNft and on a real kernel (test/nft/fake-kernel.test.ts): a setup
// batch, then a batch that must succeed or fail; the outcome is the error's errno and message type, and the
// ruleset afterwards as canonical nft lines. Builds transactions and runs them; knows no namespace.
import {
  Chain,
  canonicalLines,
  LimitObject,
  m,
  NamedSet,
  NetlinkError,
  type NftConnection,
  ObjRef,
  Rule,
  Table,
  Transaction,
} from '../../src/nft/index.ts';
import { CORPUS } from './_corpus.ts';

export interface FakeCase {
  name: string;
  setup: () => Transaction;
  change?: () => Transaction;
}

const table = new Table({ family: 'inet', name: 't' });
const chain = new Chain({ family: 'inet', table: 't', name: 'c' });
const set = new NamedSet({ family: 'inet', table: 't', name: 's', key: 'ipv4_addr', flags: ['interval'] });
const lookup = new Rule({
  family: 'inet',
  table: 't',
  chain: 'c',
  exprs: [m.match('meta nfproto', 'ipv4'), m.inSet('ip saddr', 's'), m.verdict('accept')].flat(),
});
const base = () =>
  new Transaction().add(table).add(chain).add(set).add(lookup).addElements(set, ['10.0.0.0/8']);

// A limit object and a rule naming it (issue 18: the node's one report bucket).
const limit = (name: string, rate = 20) =>
  new LimitObject({ family: 'inet', table: 't', name, rate, burst: 5, over: true });
const naming = (name: string) =>
  new Rule({
    family: 'inet',
    table: 't',
    chain: 'c',
    exprs: [new ObjRef({ type: 'limit', object: name }), m.counter(), m.verdict('drop')].flat(),
  });
const withLimit = () => base().add(limit('l')).add(naming('l'));

export const FAKE_CASES: FakeCase[] = [
  ...Object.keys(CORPUS).map((name) => ({ name: `corpus ${name}`, setup: () => CORPUS[name]!().tx })),
  {
    name: 'a rule in a missing chain (and an element before it in the batch)',
    setup: base,
    change: () =>
      new Transaction()
        .addElements(set, ['192.168.0.1'])
        .add(new Rule({ family: 'inet', table: 't', chain: 'nope', exprs: [m.verdict('accept')].flat() })),
  },
  { name: 'create an existing chain', setup: base, change: () => new Transaction().create(chain) },
  { name: 'delete a set a rule uses', setup: base, change: () => new Transaction().delete(set) },
  {
    name: 'delete a missing element',
    setup: base,
    change: () => new Transaction().deleteElements(set, ['10.9.9.9']),
  },
  {
    name: 'a rule naming a missing limit object',
    setup: withLimit,
    change: () => new Transaction().add(naming('nope')),
  },
  {
    name: 'delete a limit object a rule uses',
    setup: withLimit,
    change: () => new Transaction().delete(limit('l')),
  },
  {
    name: 'create an existing limit object',
    setup: withLimit,
    change: () => new Transaction().create(limit('l')),
  },
  {
    name: 'add an existing limit object with another rate (kept as it is)',
    setup: withLimit,
    change: () => new Transaction().add(limit('l', 50)),
  },
  {
    name: 'switch to a new limit object: add it, rewrite the chain, delete the old one, in one batch',
    setup: withLimit,
    change: () =>
      new Transaction().add(limit('l2', 50)).flush(chain).add(lookup).add(naming('l2')).delete(limit('l')),
  },
  {
    name: 'flush a set and a chain, add a chain',
    setup: base,
    change: () =>
      new Transaction()
        .flush(set)
        .flush(chain)
        .add(new Chain({ family: 'inet', table: 't', name: 'd' })),
  },
];

export interface CaseOutcome {
  error?: { errnoName: string | undefined; messageType: string | undefined } | string;
  lines: string[];
}

/** Runs a case on `conn` (whose ruleset must hold none of the case's tables) and lists the result. */
export async function runCase(conn: NftConnection, c: FakeCase): Promise<CaseOutcome> {
  await c.setup().run(conn);
  let error: CaseOutcome['error'];
  try {
    if (c.change) await c.change().run(conn);
  } catch (e) {
    error = e instanceof NetlinkError ? { errnoName: e.errnoName, messageType: e.messageType } : String(e);
  }
  return { ...(error === undefined ? {} : { error }), lines: canonicalLines(await conn.listRuleset()) };
}

/** Deletes every table `conn` lists (between cases). */
export async function clear(conn: NftConnection): Promise<void> {
  const tx = new Transaction();
  for (const t of await conn.listTables()) tx.delete(t);
  if (tx.size > 0) await tx.run(conn);
}

/** The canonical lines of a ruleset that `nft -f FILE` loaded, listed back through `conn`. */
export async function listedLines(conn: NftConnection): Promise<string[]> {
  return canonicalLines(await conn.listRuleset());
}
