// Updates are incremental: typical cluster changes become a handful of element messages, not chain or
// table rewrites, and leave the table (FakeNft's dump) changed in exactly the lines the change concerns.
// The fake gets the same batch bytes as the kernel; the lab tests prove those batches in a real kernel.
import t from 'tap';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { pod, policy, state } from '../policy/builders.ts';
import { basePods, dbPolicy, FakeKernel } from './_fixtures.ts';

async function start() {
  const kernel = new FakeKernel();
  const r = new NodeReconciler('n1', kernel);
  const first = await r.sync(state({ pods: basePods(), policies: [dbPolicy] }));
  const fake = kernel.fake;
  let before = fake.dump();
  /** The table's lines that the last sync added and removed (each sorted). */
  const changed = () => {
    const after = fake.dump();
    const was = new Set(before.split('\n'));
    const is = new Set(after.split('\n'));
    before = after;
    return {
      added: [...is].filter((l) => !was.has(l)).sort(),
      removed: [...was].filter((l) => !is.has(l)).sort(),
    };
  };
  return { fake, r, first, changed };
}

/** Message types of the last batch, e.g. ['NEWSETELEM', 'NEWSETELEM']. */
const lastTypes = (fake: FakeKernel['fake']): string[] => fake.committed.at(-1)!.types;

t.test('the first sync replaces the whole table in one batch', async (t) => {
  const { fake, first } = await start();
  t.equal(first.kind, 'full');
  t.equal(fake.committed.length, 1);
  const table = fake.dump();
  t.match(table, /^add table inet tollgate\nadd chain inet tollgate forward \{ type filter hook forward /);
  t.match(
    table,
    /add element inet tollgate ingress4 \{ 10\.244\.1\.20 : jump in-[0-9a-f]+ \}/,
    'db isolated',
  );
  t.match(
    table,
    /add element inet tollgate in-[0-9a-f]+-c4 \{ 10\.244\.2\.30 \. tcp \. 5432 \}/,
    'api1 its peer',
  );
  t.notMatch(table, /ingress4 \{ 10\.244\.1\.40/, 'web not isolated');
  const types = lastTypes(fake);
  t.equal(types[0], 'NEWTABLE');
  t.equal(types[1], 'DELTABLE', 'an existing table is replaced atomically');
  t.ok(types.includes('NEWCHAIN') && types.includes('NEWRULE') && types.includes('NEWSET'));
});

t.test('a new peer pod joining a selected set: element adds only', async (t) => {
  const { fake, r, changed } = await start();
  const res = await r.sync(
    state({
      pods: [
        ...basePods(),
        pod('x/api2', { role: 'api' }, { node: 'n2', ip: '10.244.2.31', ip6: 'fd00:10:244:2::31' }),
      ],
      policies: [dbPolicy],
    }),
  );
  t.equal(res.kind, 'diff');
  // 10.244.2.31 joins next to 10.244.2.30: the old element stays valid and is kept, the new address is
  // added beside it (no merged range is replaced: deletes are costly in the kernel's concatenated sets).
  t.same(lastTypes(fake), ['NEWSETELEM', 'NEWSETELEM'], 'element messages only, no chains or rules');
  const { added, removed } = changed();
  t.match(added, [
    /^add element inet tollgate in-[0-9a-f]+-c4 \{ 10\.244\.2\.31 \. tcp \. 5432 \}$/,
    /^add element inet tollgate in-[0-9a-f]+-c6 \{ fd00:10:244:2::31 \. tcp \. 5432 \}$/,
  ]);
  t.equal(added.length, 2, 'the table gained the two peer elements');
  t.same(removed, [], 'and lost nothing');
  t.equal(res.counts?.chainsRewritten, 0);
  t.equal(res.counts?.elementsAdded, 2);
});

t.test('a label change that removes a peer: element deletes only', async (t) => {
  const { fake, r, changed } = await start();
  const pods = basePods();
  pods[1] = pod('x/api1', { role: 'retired' }, { node: 'n2', ip: '10.244.2.30', ip6: 'fd00:10:244:2::30' });
  const res = await r.sync(state({ pods, policies: [dbPolicy] }));
  t.equal(res.kind, 'diff');
  t.same(
    lastTypes(fake),
    ['DELSETELEM', 'DELSETELEM'],
    'one element message per family set, even when a set empties',
  );
  const { added, removed } = changed();
  t.same(added, []);
  t.match(removed, [/ \{ 10\.244\.2\.30 \. tcp \. 5432 \}$/, / \{ fd00:10:244:2::30 \. tcp \. 5432 \}$/]);
  t.equal(removed.length, 2, 'only the peer elements of api1 are gone');
  t.equal(res.counts?.chainsRewritten, 0);
  t.equal(res.counts?.elementsDeleted, 2);
});

t.test('a local pod added that no policy selects: two element messages (local sets)', async (t) => {
  const { fake, r, changed } = await start();
  const res = await r.sync(
    state({
      pods: [
        ...basePods(),
        pod('x/new', { role: 'batch' }, { node: 'n1', ip: '10.244.1.50', ip6: 'fd00:10:244:1::50' }),
      ],
      policies: [dbPolicy],
    }),
  );
  t.same(lastTypes(fake), ['NEWSETELEM', 'NEWSETELEM']);
  t.same(changed(), {
    added: [
      'add element inet tollgate local4 { 10.244.1.50 }',
      'add element inet tollgate local6 { fd00:10:244:1::50 }',
    ],
    removed: [],
  });
  t.equal(res.counts?.elementsAdded, 2);
});

t.test('a local pod that a policy isolates: local sets and dispatch map elements only', async (t) => {
  const { fake, r, changed } = await start();
  const res = await r.sync(
    state({
      pods: [
        ...basePods(),
        pod('x/db2', { role: 'db' }, { node: 'n1', ip: '10.244.1.21', ip6: 'fd00:10:244:1::21' }),
      ],
      policies: [dbPolicy],
    }),
  );
  t.same(
    lastTypes(fake),
    ['NEWSETELEM', 'NEWSETELEM', 'NEWSETELEM', 'NEWSETELEM'],
    'the new replica reuses the chain of its twin',
  );
  const chain = /ingress4 \{ 10\.244\.1\.20 : jump (in-[0-9a-f]+) \}/.exec(fake.dump())?.[1];
  const { added, removed } = changed();
  t.same(removed, []);
  t.same(added, [
    `add element inet tollgate ingress4 { 10.244.1.21 : jump ${chain} }`,
    `add element inet tollgate ingress6 { fd00:10:244:1::21 : jump ${chain} }`,
    'add element inet tollgate local4 { 10.244.1.21 }',
    'add element inet tollgate local6 { fd00:10:244:1::21 }',
  ]);
  t.equal(res.counts?.chainsAdded, 0);
});

t.test('a policy added: only its own chain, sets, rules and map elements', async (t) => {
  const { fake, r, changed } = await start();
  const webPolicy = policy('x/web', {
    podSelector: { matchLabels: { role: 'web' } },
    ingress: [{ ports: [{ port: 443 }] }],
  });
  const res = await r.sync(state({ pods: basePods(), policies: [dbPolicy, webPolicy] }));
  t.equal(res.counts?.chainsAdded, 1);
  t.equal(res.counts?.chainsRewritten, 0, 'no existing chain is rewritten');
  t.equal(res.counts?.chainsDeleted, 0);
  const types = lastTypes(fake);
  t.notOk(types.includes('DELTABLE') || types.includes('NEWTABLE'));
  t.ok(types.length <= 8, `${types.length} messages: ${types.join(', ')}`);
  const { added, removed } = changed();
  t.same(removed, [], 'nothing of the old table goes');
  const chain = /^add chain inet tollgate (in-[0-9a-f]+)$/m.exec(added.join('\n'))?.[1];
  t.ok(chain, 'one new chain');
  t.ok(
    added.every((l) => l.includes(` ${chain}`) || / \{ 10\.244\.1\.40 | \{ fd00:10:244:1::40 /.test(l)),
    `every new line is the new chain's or web's dispatch element: ${added.join('; ')}`,
  );
  t.match(added.join('\n'), /-p \{ tcp \. 443 \}/, 'its port');
});

t.test('a change that does not concern this node sends nothing', async (t) => {
  const { fake, r } = await start();
  const res = await r.sync(
    state({
      pods: [
        ...basePods(),
        pod('y/other', { role: 'web' }, { node: 'n2', ip: '10.244.2.60', ip6: 'fd00:10:244:2::60' }),
      ],
      policies: [dbPolicy],
    }),
  );
  t.equal(res.kind, 'none');
  t.equal(fake.committed.length, 1, 'no second batch');
});

t.test('a policy deleted: its chain and sets go, nothing else', async (t) => {
  const { fake, r, changed } = await start();
  const res = await r.sync(state({ pods: basePods(), policies: [] }));
  t.equal(res.counts?.chainsDeleted, 1);
  t.equal(res.counts?.chainsRewritten, 0);
  const types = lastTypes(fake);
  t.ok(types.includes('DELCHAIN') && types.includes('DELSET'));
  t.notOk(types.includes('DELTABLE'));
  const { added, removed } = changed();
  t.same(added, []);
  t.notMatch(fake.dump(), /in-[0-9a-f]+|10\.244\.2\.30|fd00:10:244:1::20 :/, 'no trace of the policy');
  t.ok(removed.length > 0 && removed.every((l) => /in-[0-9a-f]+/.test(l)), removed.join('; '));
});
