// The node's drop report limit as one named limit object (issue 18): deny and audit chains name the same
// bucket, and a changed limit is a new object that every program kind (one-batch diff, staged diff, full
// replace from a listing, staged replace) creates before the rules naming it and deletes after the last
// rule naming the old one is gone. Fake kernel fed the real batch bytes (it refuses a rule naming a missing
// object, ENOENT, and the delete of a used one, EBUSY, as the kernel does).
import t from 'tap';
import { type DesiredState, desiredState, type ReportOptions } from '../../src/compile/desired.ts';
import { fullTransaction } from '../../src/compile/diff.ts';
import { MIN_BATCH_BYTES, programBatches } from '../../src/compile/program.ts';
import { compareTable } from '../../src/compile/verify.ts';
import { Planner } from '../../src/policy/plan.ts';
import { FakeKernel } from '../agent/_fixtures.ts';
import { pod, policy, state } from '../policy/builders.ts';

const REPORTS: ReportOptions = { group: 100, rate: 20, per: 'second', burst: 5 };
const FASTER: ReportOptions = { ...REPORTS, rate: 50, burst: 10 };

const audited = (spec: Record<string, unknown>, key: string) => {
  const p = policy(key, spec) as ReturnType<typeof policy> & { metadata: Record<string, unknown> };
  p.metadata.annotations = { 'tollgate.dev/audit': 'true' };
  return p;
};

// x/web: denied ingress except 80; x/try: audited ingress and egress (would-deny in both directions).
// `more` web pods: a change large enough that a program under the smallest cap must be staged.
const planOf = (more: number) =>
  new Planner(
    state({
      pods: [
        pod('x/web', { app: 'web' }, { ip: '10.244.1.2', ip6: 'fd00:10:244:1::2' }),
        pod('x/try', { app: 'try' }, { ip: '10.244.1.3', ip6: 'fd00:10:244:1::3' }),
        ...Array.from({ length: more }, (_, i) =>
          pod(`x/web-${i}`, { app: 'web' }, { ip: `10.244.1.${10 + i}`, ip6: `fd00:10:244:1::1:${i}` }),
        ),
      ],
      policies: [
        policy('x/web', {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ ports: [{ port: 80 }] }],
        }),
        audited(
          {
            podSelector: { matchLabels: { app: 'try' } },
            policyTypes: ['Ingress', 'Egress'],
            ingress: [],
            egress: [],
          },
          'x/try',
        ),
      ],
    }),
  ).planNode('n1');
const plan = planOf(0);
const bigPlan = planOf(200);

const on = (reports: ReportOptions, p = plan): DesiredState => desiredState(p, undefined, { reports });
const lines = (d: DesiredState) => fullTransaction(d, { replace: false }).toString().split('\n');

t.test('one object; the deny gate and both audit gates name it', async (t) => {
  const l = lines(on(REPORTS));
  t.same(
    l.filter((x) => x.startsWith('add limit')),
    ['add limit inet tollgate reports-20-second-5 { rate over 20/second burst 5 packets }'],
  );
  const names = l
    .filter((x) => x.includes('limit name "reports-20-second-5"'))
    .map((x) => x.replace(/ (in|eg)-[0-9a-f]{12} /, ' CHAIN '))
    .sort();
  t.same(
    names,
    [
      'add rule inet tollgate CHAIN ct state new limit name "reports-20-second-5" goto reports-accept',
      'add rule inet tollgate CHAIN ct state new limit name "reports-20-second-5" goto reports-return',
      'add rule inet tollgate reports limit name "reports-20-second-5" counter drop',
    ],
    'the ingress and egress audit gates and the deny gate',
  );
  t.ok(l.includes('add rule inet tollgate reports-accept counter accept'));
  t.ok(l.includes('add rule inet tollgate reports-return counter return'));
  t.notOk(
    l.some((x) => /limit rate/.test(x)),
    'no rule has a bucket of its own',
  );
  t.ok(
    l.indexOf(l.find((x) => x.startsWith('add limit'))!) < l.findIndex((x) => x.startsWith('add rule')),
    'the object before every rule',
  );
});

t.test(
  'a changed limit: a new object, the old one deleted after its rules, in every program kind',
  async (t) => {
    const a = on(REPORTS);
    const objects = async (k: FakeKernel) =>
      ((await k.readTable())?.objects ?? []).map((o) => o.toString()).sort();
    const want = ['add limit inet tollgate reports-50-second-10 { rate over 50/second burst 10 packets }'];
    for (const [what, cap] of [
      ['one batch', undefined],
      ['staged', MIN_BATCH_BYTES],
    ] as const) {
      const opts = cap ? { maxBatchBytes: cap } : {};
      const b = on(FASTER, cap ? bigPlan : plan);
      // From our record (a diff).
      let k = new FakeKernel();
      for (const tx of programBatches({ kernel: undefined }, a).batches) await k.commit(tx);
      const diff = programBatches({ programmed: a }, b, opts);
      t.equal(diff.kind, 'diff');
      if (cap) t.ok(diff.staged, `${what}: staged (${diff.batches.length} batches)`);
      for (const tx of diff.batches) await k.commit(tx);
      t.same(compareTable(b, await k.readTable()).detail, undefined, `${what} diff: the new table`);
      t.same(await objects(k), want, `${what} diff: only the new object is left`);
      // From the kernel's listing (a replace), with the old object in it.
      k = new FakeKernel();
      for (const tx of programBatches({ kernel: undefined }, a).batches) await k.commit(tx);
      const full = programBatches({ kernel: await k.readTable() }, b, opts);
      t.equal(full.kind, 'full');
      for (const tx of full.batches) await k.commit(tx);
      t.same(compareTable(b, await k.readTable()).detail, undefined, `${what} replace: the new table`);
      t.same(await objects(k), want, `${what} replace: only the new object is left`);
      // Reports off: the object goes with its rules.
      const off = desiredState(plan);
      for (const tx of programBatches({ programmed: b }, off, opts).batches) await k.commit(tx);
      t.same(await objects(k), [], `${what}: reports off, no object`);
      t.same(compareTable(off, await k.readTable()).detail, undefined);
    }
  },
);

t.test('verify sees a limit object changed or removed behind our back', async (t) => {
  const a = on(REPORTS);
  const k = new FakeKernel();
  for (const tx of programBatches({ kernel: undefined }, a).batches) await k.commit(tx);
  const listed = (await k.readTable())!;
  t.same(compareTable(a, listed).detail, undefined);
  const other = { ...listed, objects: [] };
  t.match(compareTable(a, other).missing, [
    'add limit inet tollgate reports-20-second-5 { rate over 20/second burst 5 packets }',
  ]);
});
