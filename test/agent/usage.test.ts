// Per-policy use on fakes (issue 18): which policies a conntrack entry counts for (every NetworkPolicy
// whose rules allow it, semantics 5; the deciding ClusterNetworkPolicy rule, 20-22; only the directions
// this node enforces, 10), each connection once across passes, denied counts from the drop reports, the
// metric pruned with its policy, one bounded log line per pass, and a failed dump retried and logged once.
import { pino } from 'pino';
import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import type { ConntrackAccess } from '../../src/agent/cut.ts';
import { createMetrics } from '../../src/agent/metrics.ts';
import { policyUsageOptions } from '../../src/agent/options.ts';
import { PolicyUsage, policiesUsed, USAGE_LOG_CAP, USAGE_MESSAGE } from '../../src/agent/usage.ts';
import { agentCommand } from '../../src/cli/agent.ts';
import type { CtEntry } from '../../src/conntrack/entry.ts';
import { ConntrackError } from '../../src/conntrack/errors.ts';
import type { DropReport } from '../../src/nflog/report.ts';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { sampleReport } from '../_drop-reports.ts';
import { runInProcess } from '../cli/_in-process.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { cluster, pod, policy, state } from '../policy/builders.ts';
import { cnp } from '../policy/cluster-builders.ts';
import { tcp } from './_ct.ts';
import { basePods, dbPolicy, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

// x/db (n1) takes 5432 from role=api (x/db) and from anything in x on 5432 (x/db-all); x/web (n1) may
// reach role=api on 80 (x/web-out).
const dbAll = policy('x/db-all', {
  podSelector: { matchLabels: { role: 'db' } },
  ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 5432 }] }],
});
const webEgress = policy('x/web-out', {
  podSelector: { matchLabels: { role: 'web' } },
  policyTypes: ['Egress'],
  egress: [{ to: [{ podSelector: { matchLabels: { role: 'api' } } }], ports: [{ port: 80 }] }],
});
const other = pod('x/other', { role: 'other' }, { node: 'n2', ip: '10.244.2.50' });
const uses = (index: ClusterIndex, node: string, e: CtEntry) =>
  policiesUsed(index, node, e).map((u) => `${u.direction} ${u.policy}`);

t.test(
  'an entry counts for every policy whose rules allow it, in the directions this node enforces',
  async (t) => {
    const index = cluster({ pods: [...basePods(), other], policies: [dbPolicy, dbAll, webEgress] });
    const apiToDb = tcp('10.244.2.30', 40001, '10.244.1.20', 5432);
    t.same(
      uses(index, 'n1', apiToDb),
      ['ingress x/db', 'ingress x/db-all'],
      'both allow it: both are used (point 5)',
    );
    t.same(uses(index, 'n2', apiToDb), [], "n2 enforces api1's egress, which nothing isolates");
    t.same(uses(index, 'n1', tcp('10.244.2.50', 40002, '10.244.1.20', 5432)), ['ingress x/db-all']);
    t.same(
      uses(index, 'n1', tcp('10.244.1.40', 40003, '10.244.2.30', 80)),
      ['egress x/web-out'],
      "web's egress on n1; api1's ingress is n2's",
    );
    t.same(
      uses(index, 'n1', tcp('10.244.1.40', 40004, '10.244.1.20', 5432)),
      ['ingress x/db-all'],
      "both ends local: web's egress to db on 5432 is denied by x/web-out, so not counted; db's ingress is",
    );
    t.same(uses(index, 'n1', tcp('10.244.1.40', 40005, '10.244.2.30', 81)), [], 'denied now: counts nothing');
    t.same(
      uses(index, 'n1', tcp('203.0.113.5', 40006, '10.244.1.40', 80)),
      [],
      'not isolated: no policy is used',
    );
    t.same(
      uses(index, 'n1', tcp('10.244.2.50', 40007, '10.96.0.10', 80, '10.244.1.20', 5432)),
      ['ingress x/db-all'],
      'through a Service: the backend and its port, after DNAT',
    );
    t.same(
      uses(index, 'n1', tcp('fd00:10:244:2::30', 40008, 'fd00:10:244:1::20', 5432)),
      ['ingress x/db', 'ingress x/db-all'],
      'IPv6 as IPv4',
    );
  },
);

t.test('ClusterNetworkPolicies: the deciding Accept counts as cnp/NAME (semantics 20-22)', async (t) => {
  const s = state({ pods: [...basePods(), other], policies: [dbPolicy] });
  const db = { pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: 'db' } } } };
  const web = [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: 'web' } } } }];
  const index = new ClusterIndex({
    ...s,
    clusterPolicies: [
      cnp('open', { tier: 'Admin', priority: 1, subject: db, ingress: [{ action: 'Accept', from: web }] }),
      cnp('floor', { tier: 'Baseline', priority: 1, subject: db, egress: [{ action: 'Accept', to: web }] }),
    ].map(normalizeClusterPolicy),
  });
  t.same(uses(index, 'n1', tcp('10.244.1.40', 40001, '10.244.1.20', 5432)), ['ingress cnp/open']);
  t.same(uses(index, 'n1', tcp('10.244.2.30', 40002, '10.244.1.20', 5432)), ['ingress x/db']);
  t.same(uses(index, 'n1', tcp('10.244.1.20', 40003, '10.244.1.40', 8080)), ['egress cnp/floor']);
});

/** A conntrack table in memory (dumps only) with injectable failures. */
class FakeConntrack implements ConntrackAccess {
  entries: CtEntry[] = [];
  failDumps = 0;
  dumps = 0;
  closed = 0;
  async dump() {
    this.dumps++;
    if (this.failDumps > 0) {
      this.failDumps--;
      throw new ConntrackError('E_CONNTRACK_IO', 'conntrack dump: no answer (injected)');
    }
    return { entries: [...this.entries], undecodable: 0, skipped: 0 };
  }
  async delete(): Promise<never> {
    throw new ConntrackError('E_CONNTRACK_IO', 'usage never deletes');
  }
  close() {
    this.closed++;
  }
}

function usage(index: { current: ClusterIndex }) {
  const ct = new FakeConntrack();
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const metrics = createMetrics();
  const u = new PolicyUsage({
    nodeName: 'n1',
    log,
    metrics,
    index: () => index.current,
    conntrack: () => ct,
    intervalMs: 60_000,
  });
  const series = async () =>
    (await metrics.policyConnections.get()).values
      .map(
        (v) =>
          `${v.labels.namespace}/${v.labels.policy} ${v.labels.direction} ${v.labels.verdict} ${v.value}`,
      )
      .sort();
  return { ct, lines, u, series, usageLines: () => lines.filter((l) => l.msg === USAGE_MESSAGE) };
}

const report = (policies: string[], kind: DropReport['kind'] = 'deny'): DropReport =>
  sampleReport({
    kind,
    node: 'n1',
    src: { address: '10.244.1.40', pod: 'x/web' },
    dst: { address: '10.244.1.20', pod: 'x/db' },
    port: 5432,
    policies,
    at: new Date(0).toISOString(),
  });

t.test(
  'each connection counts once across passes; denied from reports; pruned with its policy',
  async (t) => {
    const index = { current: cluster({ pods: [...basePods(), other], policies: [dbPolicy, dbAll] }) };
    const { ct, u, series, usageLines } = usage(index);
    const a = tcp('10.244.2.30', 40001, '10.244.1.20', 5432);
    ct.entries.push(a);
    t.match(await u.pass(), { examined: 1, new: 1, counted: 2 });
    t.match(
      await u.pass(),
      { examined: 1, new: 0, counted: 0 },
      'the same entry in the next pass: not again',
    );
    t.equal(usageLines().length, 1, 'the pass that changed nothing logs nothing');
    // The same tuple with another id is a new connection (the first one closed, a new one reused the ports).
    ct.entries = [
      { ...a, id: 7 },
      { ...a, orig: { ...a.orig, sport: 40002 }, id: 40002 },
    ];
    t.match(await u.pass(), { examined: 2, new: 2, counted: 4 });
    u.denied(report(['x/db']));
    u.denied(report(['x/db-all'], 'would-deny'));
    await u.pass();
    t.same(await series(), [
      'x/db ingress allowed 3',
      'x/db ingress denied 1',
      'x/db-all ingress allowed 3',
      'x/db-all ingress would-deny 1',
    ]);
    t.match(usageLines().at(-1), {
      usage: [
        { policy: 'x/db', direction: 'ingress', allowed: 3, denied: 1, wouldDeny: 0 },
        { policy: 'x/db-all', direction: 'ingress', allowed: 3, denied: 0, wouldDeny: 1 },
      ],
      more: 0,
    });
    // x/db-all is deleted: its series go (one per live policy, never a leftover).
    index.current = cluster({ pods: [...basePods(), other], policies: [dbPolicy] });
    await u.pass();
    t.same(await series(), ['x/db ingress allowed 3', 'x/db ingress denied 1']);
    t.same(
      u.records().map((r) => r.policy),
      ['x/db'],
    );
  },
);

t.test('a line holds at most USAGE_LOG_CAP records; the rest come in the next lines', async (t) => {
  const index = { current: cluster({ pods: basePods(), policies: [dbPolicy] }) };
  const { u, usageLines } = usage(index);
  const n = USAGE_LOG_CAP + 50;
  const policies = Array.from({ length: n }, (_, i) => policy(`x/p${i}`, { podSelector: {} }));
  index.current = cluster({ pods: basePods(), policies });
  for (let i = 0; i < n; i++) u.denied(report([`x/p${i}`]));
  await u.pass();
  await u.pass();
  const [first, second] = usageLines() as { usage: unknown[]; more: number }[];
  t.equal(first?.usage.length, USAGE_LOG_CAP);
  t.equal(first?.more, 50);
  t.equal(second?.usage.length, 50);
  t.equal(second?.more, 0);
  await u.pass();
  t.equal(usageLines().length, 2, 'nothing left to log');
});

t.test('every policy is logged again after the refresh period, changed or not', async (t) => {
  const index = { current: cluster({ pods: basePods(), policies: [dbPolicy, dbAll] }) };
  const ct = new FakeConntrack();
  const lines: Record<string, unknown>[] = [];
  const u = new PolicyUsage({
    nodeName: 'n1',
    log: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }),
    metrics: createMetrics(),
    index: () => index.current,
    conntrack: () => ct,
    intervalMs: 60_000,
    refreshMs: 0,
  });
  u.denied(report(['x/db']));
  u.denied(report(['x/db-all']));
  await u.pass();
  u.denied(report(['x/db']));
  await u.pass();
  const usageLines = lines.filter((l) => l.msg === USAGE_MESSAGE) as { usage: { policy: string }[] }[];
  t.same(
    usageLines.map((l) => l.usage.map((r) => r.policy)),
    [
      ['x/db', 'x/db-all'],
      ['x/db', 'x/db-all'],
    ],
    'x/db-all again although it did not change',
  );
});

t.test('a pass with many new entries lets the event loop (a sync) run between them', async (t) => {
  const index = { current: cluster({ pods: basePods(), policies: [dbPolicy] }) };
  const { ct, u } = usage(index);
  for (let i = 0; i < 1500; i++) ct.entries.push(tcp('10.244.2.30', 10_000 + i, '10.244.1.20', 5432));
  const pass = u.pass();
  let ranMeanwhile = false;
  setImmediate(() => {
    ranMeanwhile = true;
  });
  t.match(await pass, { new: 1500, counted: 1500 });
  t.ok(ranMeanwhile, 'a callback queued after the pass began ran before it ended');
});

t.test('stopping during a dump is no failure', async (t) => {
  const index = { current: cluster({ pods: basePods(), policies: [dbPolicy] }) };
  const { ct, u, lines } = usage(index);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  ct.dump = async () => {
    await gate;
    throw new ConntrackError('E_CONNTRACK_IO', 'conntrack dump: socket closed');
  };
  const pass = u.pass();
  await new Promise((r) => setImmediate(r));
  u.stop();
  release();
  t.equal(await pass, undefined);
  t.same(
    lines.filter((l) => String(l.msg).startsWith('policy usage')),
    [],
    'nothing logged',
  );
});

t.test('a failed dump is logged once, counted, and the next pass retries on a new socket', async (t) => {
  const index = { current: cluster({ pods: basePods(), policies: [dbPolicy] }) };
  const { ct, u, lines } = usage(index);
  ct.entries.push(tcp('10.244.2.30', 40001, '10.244.1.20', 5432));
  ct.failDumps = 2;
  t.equal(await u.pass(), undefined);
  t.equal(await u.pass(), undefined);
  const errors = lines.filter((l) => String(l.msg).startsWith('policy usage: cannot read'));
  t.equal(errors.length, 1, 'the same failure is logged once');
  t.equal(ct.closed, 2, 'the socket is closed after each failure');
  t.match(u.problem, /no answer/, "shown (the agent's /readyz body)");
  t.match(await u.pass(), { examined: 1, new: 1, counted: 1 }, 'the next pass counts');
  t.equal(u.problem, undefined);
});

t.test('an entry that cannot be judged counts for nothing and undoes nothing else', async (t) => {
  const index = { current: cluster({ pods: basePods(), policies: [dbPolicy] }) };
  const { ct, u, lines, series } = usage(index);
  const good = tcp('10.244.2.30', 40001, '10.244.1.20', 5432);
  // No reply tuple: entryFlow cannot read it (a decoder gap or a bug); it comes after a counted entry.
  const bad = { ...tcp('10.244.2.30', 40002, '10.244.1.20', 5432), reply: undefined } as unknown as CtEntry;
  ct.entries.push(good, bad, { ...bad, id: 99 });
  t.match(await u.pass(), { examined: 3, new: 3, counted: 1, unattributed: 2 });
  t.match(await u.pass(), { examined: 3, new: 0, counted: 0, unattributed: 0 }, 'none of them again');
  t.same(await series(), ['x/db ingress allowed 1'], 'the good entry counted once, not once per pass');
  t.equal(u.problem, undefined, 'conntrack was read: no problem shown');
  const errors = lines.filter((l) => String(l.msg).startsWith('policy usage: cannot judge'));
  t.equal(errors.length, 1, 'the same failure is logged once');
  t.match(errors[0], { entry: '6 10.244.2.30:40002 -> 10.244.1.20:5432' }, 'names the entry');
  t.equal(ct.closed, 0, 'the socket is kept');
});

t.test('the agent counts while it writes the table, and serves the metric', async (t) => {
  const api = new FakeApi();
  api.put(P.ns, 'x', { metadata: { labels: {} } });
  api.put(P.nodes, 'n1', { metadata: { name: 'n1' }, spec: { podCIDRs: ['10.244.1.0/24'] } });
  for (const p of basePods()) api.put(P.pods, p.metadata.name!, p);
  api.put(P.np, 'db', dbPolicy);
  const ct = new FakeConntrack();
  ct.entries.push(tcp('10.244.2.30', 40001, '10.244.1.20', 5432));
  const log = pino({ level: 'silent' });
  const a = new Agent(
    api,
    new FakeKernel(),
    log,
    { ...TEST_AGENT_OPTIONS, policyUsage: { intervalMs: 50 } },
    { conntrack: () => ct },
  );
  t.teardown(() => a.stop());
  await a.start();
  await until(() => a.ready, 'ready');
  await until(() => (a.usage?.records().length ?? 0) > 0, 'a usage pass');
  const text = await a.metrics.registry.getSingleMetricAsString('tollgate_policy_connections_total');
  t.match(
    text,
    /tollgate_policy_connections_total\{namespace="x",policy="db",direction="ingress",verdict="allowed"\} 1/,
  );
  const dumps = ct.dumps;
  await until(() => ct.dumps > dumps + 2, 'more passes on the timer');
  t.match(await a.metrics.registry.getSingleMetricAsString('tollgate_policy_connections_total'), /\} 1\n?$/);
});

t.test(
  '--policy-usage and --policy-usage-interval-ms: on by default every 10 s, bad values name the flag',
  async (t) => {
    t.same(policyUsageOptions({}), { intervalMs: 10_000 });
    t.same(policyUsageOptions({ 'policy-usage-interval-ms': '500' }), { intervalMs: 500 });
    t.equal(policyUsageOptions({ 'policy-usage': 'off' }), undefined);
    t.throws(() => policyUsageOptions({ 'policy-usage': 'yes' }), {
      code: 'E_USAGE',
      message: "--policy-usage must be on or off, not 'yes'",
    });
    for (const bad of ['50', '1.5', 'ten'])
      t.throws(() => policyUsageOptions({ 'policy-usage-interval-ms': bad }), {
        code: 'E_USAGE',
        message: new RegExp(`--policy-usage-interval-ms .*not '${bad}'`),
      });
    const help = await runInProcess(agentCommand, ['--help']);
    t.match(help.stdout, /--policy-usage=on\|off +count new connections per policy/);
    t.match(help.stdout, /--policy-usage-interval-ms N\n +how often conntrack is read/);
  },
);
