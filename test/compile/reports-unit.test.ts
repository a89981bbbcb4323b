// Drop report rules in the compiled table (semantics 16; ../shared/scenarios/README.md "Denied connections
// in the log"): where they go, the one per-node limit, the per-namespace opt-out, and that the reconciler's
// diffs and verify handle them (fake kernel fed the real batch bytes).
import t from 'tap';
import { reportOptions } from '../../src/agent/options.ts';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import {
  DesiredCache,
  type DesiredState,
  desiredState,
  QUIET_SUFFIX,
  REPORT_CHAIN,
  REPORT_CHAINS,
  type ReportOptions,
} from '../../src/compile/desired.ts';
import { fullTransaction } from '../../src/compile/diff.ts';
import { MIN_BATCH_BYTES, programBatches } from '../../src/compile/program.ts';
import { canonicalLines, compareTable } from '../../src/compile/verify.ts';
import { parsePrefix } from '../../src/nflog/report.ts';
import { normalizeNamespace } from '../../src/policy/normalize.ts';
import { PlanCache, Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { FakeKernel } from '../agent/_fixtures.ts';
import { pod, policy, state } from '../policy/builders.ts';

const REPORTS: ReportOptions = { group: 100, rate: 20, per: 'second', burst: 5 };

const cluster = (): ClusterState =>
  state({
    pods: [pod('x/web', { app: 'web' }), pod('x/db', { app: 'db' }), pod('y/open', { app: 'open' })],
    policies: [
      // x/web: ingress on port 80 only; x/db: ingress from web only, egress denied entirely.
      policy('x/web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80 }] }] }),
      policy('x/db', {
        podSelector: { matchLabels: { app: 'db' } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
      }),
      // y/open: isolated, but one rule allows everything: no drop, so no report (point 3).
      policy('y/all', { podSelector: {}, ingress: [{}] }),
    ],
  });

const text = (d: DesiredState) => fullTransaction(d, { replace: false }).toString().split('\n');

t.test('report rules go right before every isolation drop, and nowhere else (point 16)', async (t) => {
  const plan = new Planner(cluster()).planNode('n1');
  const off = desiredState(plan);
  const on = desiredState(plan, undefined, { reports: REPORTS });
  t.notOk(off.chains.has(REPORT_CHAIN), 'off: no report chain');
  t.notOk(
    text(off).some((l) => / log |limit /.test(l)),
    'off: no log or limit rule anywhere (the table of before)',
  );
  let reported = 0;
  for (const [name, chain] of on.chains) {
    if (chain.base || (REPORT_CHAINS as readonly string[]).includes(name)) continue;
    const before = off.chains.get(name)!;
    const last = before.rules[before.rules.length - 1]!;
    if (last.kind === 'final' && last.verdict === 'drop') {
      reported++;
      t.same(chain.rules.slice(0, -3), before.rules.slice(0, -1), `${name}: its allows unchanged, first`);
      const [gate, log, drop] = chain.rules.slice(-3);
      t.same(gate, { kind: 'report-gate', chain: REPORT_CHAIN }, `${name}: the limit gate`);
      t.equal(log?.kind, 'report');
      const prefix = log?.kind === 'report' ? parsePrefix(log.prefix) : undefined;
      t.same(
        prefix,
        { direction: name.startsWith('in-') ? 'ingress' : 'egress', kind: 'deny', id: name },
        `${name}: the prefix names the chain`,
      );
      t.same(drop, last, `${name}: the drop stays last`);
    } else t.same(chain, before, `${name}: no drop, no report`);
  }
  t.equal(reported, 3, 'x/web ingress, x/db ingress and egress');
  const lines = text(on);
  t.ok(lines.includes('add limit inet tollgate reports-20-second-5 { rate over 20/second burst 5 packets }'));
  t.ok(lines.includes('add rule inet tollgate reports limit name "reports-20-second-5" counter drop'));
  t.equal(lines.filter((l) => l.includes('limit rate')).length, 0, 'no bucket of its own in any rule');
  t.equal(lines.filter((l) => l.startsWith('add limit')).length, 1, 'one limit for the whole node');
  t.ok(lines.some((l) => /ct state new log prefix "tg:i:d:in-[0-9a-f]{12}" group 100$/.test(l)));
});

t.test('an unchanged chain keeps its object from build to build (the diff skips it)', async (t) => {
  const st = cluster();
  const planCache = new PlanCache();
  const cache = new DesiredCache();
  const build = () => desiredState(new Planner(st, planCache).planNode('n1'), cache, { reports: REPORTS });
  const a = build();
  const b = build();
  for (const [name, c] of a.chains) if (name !== 'forward') t.equal(b.chains.get(name), c, name);
});

t.test('namespaces annotated tollgate.dev/drop-reports: "off" get chains without reports', async (t) => {
  const st = state({
    pods: [pod('x/a', { app: 'a' }), pod('y/a', { app: 'a' })],
    policies: [
      policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] }),
      policy('y/deny', { podSelector: {}, policyTypes: ['Ingress'] }),
    ],
  });
  const plan = new Planner(st).planNode('n1');
  const shared = desiredState(plan, undefined, { reports: REPORTS });
  t.equal(
    shared.podChains.get('x/a')?.ingress,
    shared.podChains.get('y/a')?.ingress,
    'the same structure shares a chain across namespaces',
  );
  const d = desiredState(plan, undefined, { reports: { ...REPORTS, quietNamespaces: new Set(['y']) } });
  const loud = d.podChains.get('x/a')!.ingress!;
  const quiet = d.podChains.get('y/a')!.ingress!;
  t.equal(quiet, `${loud}${QUIET_SUFFIX}`, 'the opted-out namespace has a chain of its own');
  t.ok(d.chains.get(loud)!.rules.some((r) => r.kind === 'report'));
  t.notOk(d.chains.get(quiet)!.rules.some((r) => r.kind === 'report' || r.kind === 'report-gate'));
});

t.test('the annotation survives normalization; other values keep reports on', async (t) => {
  const ns = (v: string) =>
    normalizeNamespace({ metadata: { name: 'q', annotations: { 'tollgate.dev/drop-reports': v } } });
  t.equal(ns('off').dropReportsOff, true);
  t.equal(ns('on').dropReportsOff, undefined);
});

t.test('flags: defaults, off, and bad values name the flag', async (t) => {
  t.same(reportOptions({}), REPORTS);
  t.equal(reportOptions({ 'drop-reports': 'off' }), undefined);
  t.same(reportOptions({ 'drop-report-rate': '3/minute', 'drop-report-burst': '1', 'nflog-group': '7' }), {
    group: 7,
    rate: 3,
    per: 'minute',
    burst: 1,
  });
  // The kernel makes a packet limit's burst 0 a burst of 5 (what the limit object would read back as).
  t.throws(() => reportOptions({ 'drop-report-burst': '0' }), /--drop-report-burst .* from 1/);
  t.throws(() => reportOptions({ 'drop-reports': 'yes' }), /--drop-reports must be on or off/);
  t.throws(() => reportOptions({ 'drop-report-rate': '0/second' }), /--drop-report-rate/);
  t.throws(() => reportOptions({ 'drop-report-rate': '20' }), /--drop-report-rate/);
  t.throws(() => reportOptions({ 'drop-report-burst': '-1' }), /--drop-report-burst/);
  t.throws(() => reportOptions({ 'nflog-group': '70000' }), /--nflog-group/);
});

t.test('reconciler with reports: diffs converge to a fresh program, verify sees no drift', async (t) => {
  const fake = new FakeKernel();
  const rec = new NodeReconciler('n1', fake, {}, undefined, { reports: REPORTS });
  const st = cluster();
  await rec.sync(st);
  t.same(await rec.verify(), { drift: false, repaired: false });
  const listed = canonicalLines((await fake.readTable())!);
  t.ok(listed.some((l) => l.includes('jump reports')) && listed.some((l) => l.includes('log prefix')));
  // Opting namespace x out renames its chains (a diff), and the table equals a fresh program again.
  const quietX: ClusterState = {
    ...st,
    namespaces: new Map(
      [...st.namespaces].map(([n, ns]) => [n, n === 'x' ? { ...ns, dropReportsOff: true as const } : ns]),
    ),
  };
  const r = await rec.sync(quietX);
  t.equal(r.kind, 'diff');
  t.same(await rec.verify(), { drift: false, repaired: false });
  const fresh = new FakeKernel();
  await new NodeReconciler('n1', fresh, {}, undefined, { reports: REPORTS }).sync(quietX);
  t.same(canonicalLines((await fake.readTable())!), canonicalLines((await fresh.readTable())!));
  t.notOk(
    canonicalLines((await fake.readTable())!).some((l) => l.includes('log prefix')),
    'every isolated pod is in x: no report rule left',
  );
});

const audited = (spec: Record<string, unknown>, key: string) => {
  const p = policy(key, spec) as ReturnType<typeof policy> & { metadata: Record<string, unknown> };
  p.metadata.annotations = { 'tollgate.dev/audit': 'true' };
  return p;
};

t.test('audit mode (point 25): a would-deny report, then accept; enforced isolation wins', async (t) => {
  const st = state({
    pods: [pod('x/a', { app: 'a' }), pod('x/b', { app: 'b' })],
    policies: [
      audited({ podSelector: {}, policyTypes: ['Ingress'], ingress: [{ ports: [{ port: 80 }] }] }, 'x/try'),
      // x/b is isolated by an enforced policy too: the audit policy changes nothing for it.
      policy('x/b-only-443', {
        podSelector: { matchLabels: { app: 'b' } },
        ingress: [{ ports: [{ port: 443 }] }],
      }),
    ],
  });
  const plan = new Planner(st).planNode('n1');
  const a = plan.pods.find((p) => p.key === 'x/a')!;
  t.equal(a.ingress, undefined, 'the audit policy isolates nothing');
  t.same(a.auditIngress?.isolatedBy, ['x/try']);
  t.equal(
    plan.pods.find((p) => p.key === 'x/b')!.auditIngress,
    undefined,
    'enforced isolation: no audit plan',
  );
  for (const reports of [undefined, REPORTS]) {
    const d = desiredState(plan, undefined, reports ? { reports } : {});
    const chain = d.chains.get(d.podChains.get('x/a')!.ingress!)!;
    const last = chain.rules[chain.rules.length - 1]!;
    t.match(last, { kind: 'final', verdict: 'accept' }, 'an audit chain never drops');
    t.notOk(chain.rules.some((r) => r.kind === 'final' && r.verdict === 'drop'));
    const report = chain.rules.find((r) => r.kind === 'report');
    if (reports === undefined) t.equal(report, undefined, 'reports off: no report rule');
    else {
      t.same(report, { kind: 'report', group: 100, prefix: (report as { prefix: string }).prefix });
      const at = chain.rules.indexOf(report!);
      t.same(
        chain.rules[at - 1],
        { kind: 'report-audit-gate', limit: 'reports-20-second-5', chain: 'reports-accept' },
        "right before the log: the node's bucket, over it counted and accepted unlogged",
      );
      t.same(report?.kind === 'report' && parsePrefix(report.prefix), {
        direction: 'ingress',
        kind: 'would-deny',
        id: chain.name,
      });
      t.notOk(
        chain.rules.some((r) => r.kind === 'report-gate'),
        'no dropping gate: it would drop over the limit',
      );
      const b = d.chains.get(d.podChains.get('x/b')!.ingress!)!;
      t.match(b.rules[b.rules.length - 1], { kind: 'final', verdict: 'drop' }, 'x/b is enforced');
      t.not(chain.name, b.name);
      t.ok(text(d).some((l) => /ct state new log prefix "tg:i:w:in-[0-9a-f]{12}" group 100$/.test(l)));
    }
  }
});

t.test('staged programs (small batch caps) carry the report rules through the staging copy', async (t) => {
  const plan = new Planner(cluster()).planNode('n1');
  const off = desiredState(plan);
  const on = desiredState(plan, undefined, { reports: REPORTS });
  for (const [what, start] of [
    ['no table', undefined],
    ['a table without reports', off],
  ] as const) {
    const kernel = new FakeKernel();
    if (start) for (const tx of programBatches({ kernel: undefined }, start).batches) await kernel.commit(tx);
    const program = programBatches({ kernel: await kernel.readTable() }, on, {
      maxBatchBytes: MIN_BATCH_BYTES,
    });
    t.ok(program.staged, `${what}: staged (${program.batches.length} batches)`);
    for (const tx of program.batches) await kernel.commit(tx);
    t.same(compareTable(on, await kernel.readTable()).detail, undefined, `${what}: the table with reports`);
  }
  // And back: a diff from our record turns them off again.
  const kernel = new FakeKernel();
  for (const tx of programBatches({ kernel: undefined }, on).batches) await kernel.commit(tx);
  const back = programBatches({ programmed: on }, off, { maxBatchBytes: MIN_BATCH_BYTES });
  for (const tx of back.batches) await kernel.commit(tx);
  t.same(compareTable(off, await kernel.readTable()).detail, undefined, 'off again: the table of before');
});
