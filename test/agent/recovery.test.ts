// The reconciler never wedges on a table changed behind its back: a diff the kernel rejects (ENOENT for
// an object someone deleted) is followed, in the same sync, by a program from what the kernel lists; a
// failed commit makes the next sync start from the kernel; verify() also restores the last complete
// program while syncs fail. On the FakeNft (the same batch bytes the kernel gets); the kernel
// versions of these cases are in test/agent/kernel-recovery.test.ts.
import t from 'tap';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { BASE_CHAIN, TABLE } from '../../src/compile/desired.ts';
import { compareTable } from '../../src/compile/verify.ts';
import type { FakeTable } from '../../src/nft/index.ts';
import { pod, policy, state } from '../policy/builders.ts';
import { basePods, dbPolicy, FakeKernel } from './_fixtures.ts';

/** api1 relabelled: its addresses leave the peer sets (element deletes). */
const api1Retired = () => {
  const pods = basePods();
  pods[1] = pod('x/api1', { role: 'retired' }, { node: 'n2', ip: '10.244.2.30', ip6: 'fd00:10:244:2::30' });
  return state({ pods, policies: [dbPolicy] });
};
/** A policy added (a new chain, sets and map elements). */
const webIsolated = () =>
  state({
    pods: basePods(),
    policies: [dbPolicy, policy('x/web', { podSelector: { matchLabels: { role: 'web' } }, ingress: [] })],
  });

async function start() {
  const kernel = new FakeKernel();
  const r = new NodeReconciler('n1', kernel);
  await r.sync(state({ pods: basePods(), policies: [dbPolicy] }));
  return { kernel, fake: kernel.fake, r };
}

/** The kernel's table equals what the reconciler last programmed completely. */
async function converged(kernel: FakeKernel, r: NodeReconciler): Promise<string | undefined> {
  const c = compareTable(r.lastComplete!, await kernel.readTable());
  return c.equal ? undefined : c.detail;
}
/** Sets of our table holding an element whose key bytes contain `hex` (10.244.2.30 = 0af4021e). */
const setsWith = (m: Map<string, FakeTable>, hex: string) =>
  [...m.get(`inet ${TABLE}`)!.sets.values()].filter((s) =>
    [...s.elements.keys()].some((k) => k.includes(hex)),
  );

/** Another process's changes to our table, with the change that makes the next diff meet them. */
const tampers: Array<[string, (m: Map<string, FakeTable>) => void, () => ReturnType<typeof state>]> = [
  ['the table deleted', (m) => m.delete(`inet ${TABLE}`), webIsolated],
  [
    'a peer set flushed',
    (m) => {
      for (const s of setsWith(m, '0af4021e')) s.elements.clear();
    },
    api1Retired,
  ],
  [
    'one element deleted',
    (m) => {
      const [s] = setsWith(m, '0af4021e');
      const key = [...s!.elements.keys()].find((k) => k.includes('0af4021e'))!;
      s!.elements.delete(key);
    },
    api1Retired,
  ],
];

for (const [what, tamper, change] of tampers) {
  t.test(`${what}, then a change: the same sync converges from the kernel's listing`, async (t) => {
    const { kernel, fake, r } = await start();
    fake.tamper(tamper);
    t.not(await converged(kernel, r), undefined, 'the kernel differs from the record');
    const res = await r.sync(change());
    t.equal(res.from, 'kernel', 'programmed from what the kernel lists');
    t.match(res.recovered, /ENOENT/, "the diff's error is reported");
    t.equal(await converged(kernel, r), undefined, 'the table is what the policies say');
    const next = await r.sync(change());
    t.equal(next.kind, 'none', 'and the record is trusted again');
  });
}

t.test('the forward chain flushed, then a change: verify() finds and repairs it', async (t) => {
  const { kernel, fake, r } = await start();
  fake.tamper((m) => {
    const ours = m.get(`inet ${TABLE}`)!;
    ours.rules = ours.rules.filter((x) => x.chain !== BASE_CHAIN);
  });
  t.notMatch(fake.dump(), new RegExp(`add rule inet ${TABLE} ${BASE_CHAIN} `), 'the forward chain is empty');
  await r.sync(webIsolated());
  const v = await r.verify();
  t.ok(v.drift && v.repaired, `repaired: ${v.detail}`);
  t.equal(await converged(kernel, r), undefined);
});

t.test('after a failed commit the next sync starts from the kernel', async (t) => {
  const { kernel, fake, r } = await start();
  fake.failNext = 2; // the diff, and the program from the kernel that follows it in the same sync
  await t.rejects(r.sync(webIsolated()), /EIO/);
  t.equal(r.current, undefined, 'the record is forgotten');
  const res = await r.sync(webIsolated());
  t.equal(res.from, 'kernel');
  t.equal(await converged(kernel, r), undefined);
});

t.test('verify() while syncs fail: restores the last complete program, and trusts it again', async (t) => {
  const { kernel, fake, r } = await start();
  const good = r.lastComplete;
  fake.failNext = 10;
  await t.rejects(r.sync(webIsolated()), /EIO/);
  fake.tamper((m) => m.delete(`inet ${TABLE}`));
  fake.failNext = 0;
  const v = await r.verify();
  t.ok(v.drift && v.repaired, `repaired: ${v.detail}`);
  t.equal(r.lastComplete, good);
  t.equal(await converged(kernel, r), undefined, 'the last complete program is back');
  t.equal(r.current, good, 'read back equal: diffs may start from it again');
});

t.test('verify() after a failed batch that changed nothing: no replace, the record is trusted', async (t) => {
  const { fake, r } = await start();
  fake.failNext = 2;
  await t.rejects(r.sync(webIsolated()));
  const before = fake.committed.length;
  t.same(await r.verify(), { drift: false, repaired: false });
  t.equal(fake.committed.length, before, 'nothing sent');
  t.equal((await r.sync(webIsolated())).from, 'programmed', 'a diff again');
});
