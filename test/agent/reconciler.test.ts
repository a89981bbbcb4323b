// Updates are incremental: typical cluster changes become a handful of element messages, not chain or
// table rewrites. Counted on the batches the reconciler hands to a fake programmer (the same batches the
// kernel gets); the lab tests prove those batches are right in a real kernel.
import t from 'tap';
import { FakeProgrammer } from '../../src/agent/programmer.ts';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { messageTypeName } from '../../src/netlink/constants.ts';
import { pod, policy, state } from '../policy/builders.ts';
import { basePods, dbPolicy } from './_fixtures.ts';

async function start() {
  const fake = new FakeProgrammer();
  const r = new NodeReconciler('n1', fake);
  const first = await r.sync(state({ pods: basePods(), policies: [dbPolicy] }));
  return { fake, r, first };
}

/** Message types of the last batch, e.g. ['NEWSETELEM', 'NEWSETELEM']. */
function lastTypes(fake: FakeProgrammer): string[] {
  const tx = fake.transactions.at(-1)!;
  return tx.encode().entries.map((e) => messageTypeName(e.type));
}

t.test('the first sync replaces the whole table in one batch', async (t) => {
  const { fake, first } = await start();
  t.equal(first.kind, 'full');
  t.equal(fake.transactions.length, 1);
  const types = lastTypes(fake);
  t.equal(types[0], 'NEWTABLE');
  t.equal(types[1], 'DELTABLE', 'an existing table is replaced atomically');
  t.ok(types.includes('NEWCHAIN') && types.includes('NEWRULE') && types.includes('NEWSET'));
});

t.test('a new peer pod joining a selected set: element adds only', async (t) => {
  const { fake, r } = await start();
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
  t.equal(res.counts?.chainsRewritten, 0);
  t.equal(res.counts?.elementsAdded, 2);
});

t.test('a label change that removes a peer: element deletes only', async (t) => {
  const { fake, r } = await start();
  const pods = basePods();
  pods[1] = pod('x/api1', { role: 'retired' }, { node: 'n2', ip: '10.244.2.30', ip6: 'fd00:10:244:2::30' });
  const res = await r.sync(state({ pods, policies: [dbPolicy] }));
  t.equal(res.kind, 'diff');
  t.same(
    lastTypes(fake),
    ['DELSETELEM', 'DELSETELEM'],
    'one element message per family set, even when a set empties',
  );
  t.equal(res.counts?.chainsRewritten, 0);
  t.equal(res.counts?.elementsDeleted, 2);
});

t.test('a local pod added that no policy selects: two element messages (local sets)', async (t) => {
  const { fake, r } = await start();
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
  t.equal(res.counts?.elementsAdded, 2);
});

t.test('a local pod that a policy isolates: local sets and dispatch map elements only', async (t) => {
  const { fake, r } = await start();
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
  t.equal(res.counts?.chainsAdded, 0);
});

t.test('a policy added: only its own chain, sets, rules and map elements', async (t) => {
  const { fake, r } = await start();
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
  t.equal(fake.transactions.length, 1, 'no second batch');
});

t.test('a policy deleted: its chain and sets go, nothing else', async (t) => {
  const { fake, r } = await start();
  const res = await r.sync(state({ pods: basePods(), policies: [] }));
  t.equal(res.counts?.chainsDeleted, 1);
  t.equal(res.counts?.chainsRewritten, 0);
  const types = lastTypes(fake);
  t.ok(types.includes('DELCHAIN') && types.includes('DELSET'));
  t.notOk(types.includes('DELTABLE'));
});
