// FakeNft against the kernel's rules, without root: batches apply whole or not at all, refusals are the
// kernel's errnos (typed, naming the message and object), a stale generation is ERESTART, a batch over the
// cap never reaches the model, and dump() is canonical nft text. test/nft/fake-kernel.test.ts holds the
// same batches against a real kernel.
import t from 'tap';
import { NetlinkError } from '../../src/netlink/errors.ts';
import {
  Chain,
  commitWithRetry,
  FakeNft,
  m,
  NamedSet,
  Rule,
  Table,
  Transaction,
} from '../../src/nft/index.ts';
import { isAlreadyExists, isNotFound } from '../../src/util/errors.ts';
import { CORPUS } from './_corpus.ts';

const table = new Table({ family: 'inet', name: 't' });
const chain = new Chain({ family: 'inet', table: 't', name: 'c' });
const set = new NamedSet({ family: 'inet', table: 't', name: 's', key: 'ipv4_addr', flags: ['interval'] });
const rule = () =>
  new Rule({
    family: 'inet',
    table: 't',
    chain: 'c',
    exprs: [m.match('meta nfproto', 'ipv4'), m.inSet('ip saddr', 's'), m.verdict('accept')].flat(),
  });
const base = () => new Transaction().add(table).add(chain).add(set).add(rule());

/** The rejection, checked to be a NetlinkError with that errno name. */
async function refused(p: Promise<unknown>, errno: string): Promise<NetlinkError> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(e instanceof NetlinkError)) throw new TypeError(`expected a NetlinkError ${errno}, got ${String(e)}`);
  if (e.errnoName !== errno) throw new TypeError(`expected ${errno}, got ${e.message}`);
  return e;
}

t.test('a batch applies whole; dump() prints the table as canonical nft lines', async (t) => {
  const fake = new FakeNft();
  const r = await base().addElements(set, ['10.0.0.0/8', '192.168.1.1']).run(fake);
  t.same(r, { genid: 2, messages: 5, bytes: r.bytes });
  t.equal(
    fake.dump(),
    [
      'add table inet t',
      'add chain inet t c',
      'add set inet t s { type ipv4_addr; flags interval; }',
      'add element inet t s { 10.0.0.0/8 }',
      'add element inet t s { 192.168.1.1 }',
      'add rule inet t c meta nfproto ipv4 ip saddr @s accept',
      '',
    ].join('\n'),
  );
  t.same(fake.committed[0]!.types, ['NEWTABLE', 'NEWCHAIN', 'NEWSET', 'NEWRULE', 'NEWSETELEM']);
  t.match(fake.committed[0]!.text, /^add table inet t\nadd chain inet t c\n/, 'the log is decoded bytes');
  t.equal(fake.dump({ table: 'other' }), '', 'a filter that matches nothing');
});

t.test('a failing message rejects the whole batch: nothing of it is applied', async (t) => {
  const fake = new FakeNft();
  await base().run(fake);
  const before = fake.dump();
  const gen = await fake.getGeneration();
  const missing = new Rule({
    family: 'inet',
    table: 't',
    chain: 'nope',
    exprs: [m.verdict('accept')].flat(),
  });
  const e = await refused(new Transaction().addElements(set, ['10.1.0.1']).add(missing).run(fake), 'ENOENT');
  t.ok(isNotFound(e));
  t.match(
    e.message,
    /^NEWRULE for rule in chain inet t nope failed: ENOENT/,
    'names the message and the object',
  );
  t.equal(fake.dump(), before, 'the element of the same batch was not added');
  t.equal(await fake.getGeneration(), gen, 'no generation step');
  t.equal(fake.committed.length, 1, 'nothing logged');
});

t.test("the kernel's refusals: EEXIST, ENOENT, EBUSY", async (t) => {
  const fake = new FakeNft();
  await base().run(fake);
  t.ok(
    isAlreadyExists(await refused(new Transaction().create(chain).run(fake), 'EEXIST')),
    'create existing',
  );
  await new Transaction().add(chain).run(fake); // add keeps an existing chain
  await refused(new Transaction().delete(set).run(fake), 'EBUSY'); // a rule looks it up
  await refused(new Transaction().deleteElements(set, ['10.9.9.9']).run(fake), 'ENOENT');
  const jumper = new Rule({ family: 'inet', table: 't', chain: 'c', exprs: [m.verdict('jump d')].flat() });
  await refused(new Transaction().add(jumper).run(fake), 'ENOENT'); // no chain d
  const d = new Chain({ family: 'inet', table: 't', name: 'd' });
  await new Transaction().add(d).add(jumper).run(fake);
  await refused(new Transaction().delete(d).run(fake), 'EBUSY'); // jumped to
  await refused(new Transaction().delete(new Table({ family: 'ip', name: 't' })).run(fake), 'ENOENT');
  await new Transaction().delete(table).run(fake);
  t.equal(fake.dump(), '', 'a table delete takes everything in it');
});

t.test('a stale generation is ERESTART; commitWithRetry rebuilds against the new one', async (t) => {
  const fake = new FakeNft();
  await base().run(fake);
  await refused(new Transaction().add(chain).run(fake, { genid: 1 }), 'ERESTART');
  let attempts = 0;
  // Another process commits between our read of the generation and our batch, once.
  const r = await commitWithRetry(fake, async () => {
    if (attempts++ === 0) await new Transaction().addElements(set, ['10.5.0.1']).run(fake);
    return new Transaction().addElements(set, ['10.6.0.1']);
  });
  t.equal(r.attempts, 2);
  t.match(fake.dump(), /\{ 10\.5\.0\.1 \}\n.*\{ 10\.6\.0\.1 \}/);
});

t.test('a batch over the cap fails as the socket does and never reaches the model', async (t) => {
  const tx = base().addElements(
    set,
    Array.from({ length: 200 }, (_, i) => `10.7.${i}.1`),
  );
  const bytes = tx.encode().buf.length;
  const fake = new FakeNft({ maxBatchBytes: bytes - 1 });
  const e = await tx.run(fake).catch((error: unknown) => error);
  t.match(e, { code: 'E_NETLINK_TOO_LARGE' });
  t.equal(fake.dump(), '');
  await new FakeNft({ maxBatchBytes: bytes }).commit(tx.encode());
});

t.test('injected failures: the socket, a refused message, another process right after us', async (t) => {
  const fake = new FakeNft({ portId: 7 });
  t.equal(fake.portId, 7);
  fake.failNext = 1;
  t.match(
    await base()
      .run(fake)
      .catch((e: unknown) => e),
    { code: 'E_NETLINK_IO', message: /EIO/ },
  );
  fake.refuse = { match: /^NEWSET set inet t s$/, errno: 'ENOSPC' };
  const e = await refused(base().run(fake), 'ENOSPC');
  t.match(e.message, /^NEWSET for set inet t s failed: ENOSPC/);
  t.equal(fake.dump(), '');
  fake.refuse = undefined;
  fake.afterCommit = (f) => f.tamper((tables) => tables.get('inet t')!.rules.splice(0));
  const r = await base().run(fake);
  t.equal(await fake.getGeneration(), r.genid + 1, 'the other commit moved the generation');
  t.notMatch(fake.dump(), /add rule/, 'and took the rule away');
});

t.test('listRuleset answers ENOENT for a missing table, as the kernel dumps do', async (t) => {
  const fake = new FakeNft();
  await refused(fake.listRuleset({ family: 'inet', table: 't' }), 'ENOENT');
  t.same(await fake.listTables({ table: 't' }), []);
  await base().run(fake);
  const r = await fake.listRuleset({ family: 'inet', table: 't' });
  t.same([r.tables.length, r.chains.length, r.sets.length, r.rules.length], [1, 1, 1, 1]);
  t.ok(r.rules[0]!.handle !== undefined, 'rules carry handles');
});

for (const name of Object.keys(CORPUS)) {
  t.test(`every object of the ${name} corpus survives the fake`, async (t) => {
    const c = CORPUS[name]!();
    const fake = new FakeNft();
    await c.tx.run(fake);
    const text = fake.dump();
    const lines = text.trimEnd().split('\n');
    t.equal(
      lines.filter((l) => l.startsWith('add rule ')).length,
      c.objects.filter((o) => o instanceof Rule).length,
    );
    t.equal(
      lines.filter((l) => /^add (set|map) /.test(l)).length,
      c.objects.filter((o) => o instanceof NamedSet).length,
    );
  });
}
