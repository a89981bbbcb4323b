// verify() against the fake programmer (an in-memory nf_tables fed the real batch bytes) and the canonical
// comparison itself: what counts as drift, what does not (handles, counters, element order), repairs.
import t from 'tap';
import type { Programmer } from '../../src/agent/programmer.ts';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { chainObject, setObject, tableObject } from '../../src/compile/ruleset.ts';
import { canonicalLines, compareTable, elementTexts, expectedRuleset } from '../../src/compile/verify.ts';
import { Counter, m, NamedSet, Rule, type Ruleset, Transaction } from '../../src/nft/index.ts';
import { FakeKernel } from '../agent/_fixtures.ts';
import { changingSteps, podChain, removedElement, scenarioStates } from './_scenarios.ts';

const db = scenarioStates('seed-db-only-from-api');
const last = db.steps[db.steps.length - 1]!;

t.test(
  'the expected objects compare equal to themselves, whatever the kernel legitimately changes',
  async (t) => {
    const exp = expectedRuleset(last.desired);
    t.same(compareTable(last.desired, exp), { equal: true, detail: undefined, missing: [], extra: [] });
    t.ok(
      canonicalLines(exp).some((l) => l.includes('counter drop')),
      'rules with counters are compared',
    );
    // What a kernel would list: handles on rules, counters that counted, sets listed in another order
    // with their elements reversed.
    const listed: Ruleset = {
      tables: exp.tables,
      chains: [...exp.chains].reverse(),
      sets: [...exp.sets].reverse().map((s) => {
        const copy = new NamedSet({
          family: s.family,
          table: s.table,
          name: s.name,
          key: s.key.map((k) => k.name) as never,
          ...(s.data === 'verdict' ? { data: 'verdict' as const } : {}),
          flags: [...s.flags],
        });
        copy.elements.push(...[...s.elements].reverse());
        return copy;
      }),
      rules: exp.rules.map(
        (r, i) =>
          new Rule({
            ...r.options(),
            handle: 100 + i,
            exprs: r.exprs.map((e) => (e instanceof Counter ? new Counter({ packets: 7n, bytes: 420n }) : e)),
          }),
      ),
    };
    t.ok(
      listed.rules.some((r) => r.text.includes('counter packets 7')),
      'the counters really carry values',
    );
    t.equal(compareTable(last.desired, listed).equal, true);
  },
);

t.test('differences are found and summarised', async (t) => {
  const exp = expectedRuleset(last.desired);
  t.match(compareTable(last.desired, undefined), { equal: false, detail: 'table missing' });
  const chain = podChain(last.desired)!;
  const extraRule = new Rule({ family: 'inet', table: 'tollgate', chain, exprs: [m.verdict('accept')] });
  const inserted = { ...exp, rules: [extraRule, ...exp.rules] };
  const r = compareTable(last.desired, inserted);
  t.equal(r.equal, false);
  t.same(r.extra, [`add rule inet tollgate ${chain} accept`]);
  t.match(r.detail, /0 missing, 1 unexpected: \+ add rule inet tollgate .* accept/);
  const lastOfChain = exp.rules.filter((x) => x.chain === chain).at(-1)!;
  const reordered = { ...exp, rules: [lastOfChain, ...exp.rules.filter((x) => x !== lastOfChain)] };
  t.match(compareTable(last.desired, reordered), { equal: false, detail: 'rules in a different order' });
  const fewer = { ...exp, chains: exp.chains.filter((c) => c.name !== chain) };
  t.match(compareTable(last.desired, fewer).missing, [`add chain inet tollgate ${chain}`]);
});

t.test('with the fake: syncs step by step, verify finds nothing and sends nothing', async (t) => {
  const fake = new FakeKernel();
  const rec = new NodeReconciler(db.nodeName, fake);
  t.same(await rec.verify(), { drift: false, repaired: false, detail: 'nothing programmed yet' });
  for (const s of changingSteps(db.steps)) {
    const sync = await rec.sync(s.state);
    const sent = fake.fake.committed.length;
    t.same(await rec.verify(), { drift: false, repaired: false }, `step ${s.step} (${sync.kind})`);
    t.equal(fake.fake.committed.length, sent, 'verify sent nothing');
    // The incremental table equals a fresh full program of the same state.
    const fresh = new FakeKernel();
    await new NodeReconciler(db.nodeName, fresh).sync(s.state);
    t.same(canonicalLines((await fake.readTable())!), canonicalLines((await fresh.readTable())!));
  }
});

t.test('with the fake: drift behind the reconciler is detected and repaired in one batch', async (t) => {
  const d = last.desired;
  const chain = podChain(d)!;
  const local4 = d.sets.get('local4')!;
  const someone = (tx: Transaction) => (p: Programmer) => p.commit(tx);
  const drifts: Array<[string, (p: Programmer) => Promise<unknown>, RegExp]> = [
    [
      'an element deleted',
      someone(new Transaction().deleteElements(setObject(local4), [elementTexts(local4)[0]!])),
      /1 missing, 0 unexpected: - add element inet tollgate local4/,
    ],
    [
      'an element added',
      someone(new Transaction().addElements(setObject(local4), ['10.244.1.250'])),
      /\+ add element inet tollgate local4 \{ 10\.244\.1\.250 \}/,
    ],
    [
      'an accept rule at the top of a pod chain',
      someone(
        new Transaction().insert(
          new Rule({ family: 'inet', table: 'tollgate', chain, exprs: [m.verdict('accept')] }),
        ),
      ),
      /\+ add rule inet tollgate \S+ accept/,
    ],
    [
      'a chain flushed',
      someone(new Transaction().flush(chainObject(d.chains.get(chain)!))),
      /missing, 0 unexpected/,
    ],
    ['the table deleted', someone(new Transaction().delete(tableObject())), /^table missing$/],
  ];
  for (const [what, drift, detail] of drifts) {
    const fake = new FakeKernel();
    const rec = new NodeReconciler(db.nodeName, fake);
    await rec.sync(last.state);
    const good = canonicalLines((await fake.readTable())!);
    await drift(fake);
    const sent = fake.fake.committed.length;
    const r = await rec.verify();
    t.match(r, { drift: true, repaired: true, detail }, what);
    t.equal(fake.fake.committed.length, sent + 1, `${what}: one repair batch`);
    t.match(fake.fake.committed.at(-1)!.text, /^add table inet tollgate\ndelete table inet tollgate\n/);
    t.same(canonicalLines((await fake.readTable())!), good, `${what}: table as before`);
    t.same(await rec.verify(), { drift: false, repaired: false }, `${what}: clean afterwards`);
  }
});

t.test('a failed repair is reported, not thrown', async (t) => {
  const fake = new FakeKernel();
  const rec = new NodeReconciler(db.nodeName, fake);
  await rec.sync(last.state);
  await fake.commit(new Transaction().delete(tableObject()));
  fake.fake.refuse = { match: /^NEWTABLE/, errno: 'EPERM' };
  t.match(await rec.verify(), {
    drift: true,
    repaired: false,
    detail: /^table missing; repair failed: NEWTABLE for table inet tollgate failed: EPERM/,
  });
});

t.test(
  'with the fake: a rejected diff names the object and converges from the kernel in the same sync',
  async (t) => {
    const steps = changingSteps(db.steps);
    let pair: [number, { set: string; element: string }] | undefined;
    for (let i = 1; i < steps.length && !pair; i++) {
      const gone = removedElement(steps[i - 1]!.desired, steps[i]!.desired);
      if (gone) pair = [i, gone];
    }
    if (!pair) throw new Error('no step of the scenario deletes an element');
    const [i, gone] = pair;
    const prev = steps[i - 1]!;
    const fake = new FakeKernel();
    const rec = new NodeReconciler(db.nodeName, fake);
    await rec.sync(prev.state);
    await fake.commit(
      new Transaction().deleteElements(setObject(prev.desired.sets.get(gone.set)!), [gone.element]),
    );
    const r = await rec.sync(steps[i]!.state);
    t.match(
      r.recovered,
      new RegExp(`^DELSETELEM for elements of (set|map) inet tollgate ${gone.set} failed: ENOENT`),
      "the diff's error names the object",
    );
    t.equal(r.from, 'kernel', 'then programmed from what the kernel lists');
    t.same(
      canonicalLines((await fake.readTable())!),
      canonicalLines(expectedRuleset(steps[i]!.desired)),
      'the table is the new state',
    );
    t.same(await rec.verify(), { drift: false, repaired: false });
  },
);
