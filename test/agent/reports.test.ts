// The agent's drop report listener with a fake packet source (semantics 16, ../shared/scenarios/README.md
// "Denied connections in the log"): attribution to pods and isolating policies, the exact log record the
// readers parse, bounded metric labels, the per-namespace opt-out, and the bind lifecycle (EPERM once in
// the log, retried with backoff, shown by `problem`).
import pino from 'pino';
import t from 'tap';
import { createMetrics } from '../../src/agent/metrics.ts';
import {
  attribute,
  DropReporter,
  type Enforced,
  PodAddresses,
  type ReportSource,
} from '../../src/agent/reports.ts';
import { desiredState } from '../../src/compile/desired.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { NflogError } from '../../src/nflog/errors.ts';
import type { NflogPacket } from '../../src/nflog/packet.ts';
import { formatPrefix, REPORT_MESSAGE, reportLine, reportOfLogLine } from '../../src/nflog/report.ts';
import { withClusterPolicies } from '../../src/policy/cluster-normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { until } from '../k8s/fake-api.ts';
import { pod, policy, state } from '../policy/builders.ts';
import { cnp } from '../policy/cluster-builders.ts';

const policies = () => [
  policy('x/db-from-web', {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 5432 }] }],
  }),
  policy('x/deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
];
const others = () => [
  pod('x/web', { app: 'web' }, { ip: '10.244.1.11' }),
  pod('y/client', { app: 'client' }, { node: 'n2', ip: '10.244.2.20' }),
];
const st: ClusterState = state({
  pods: [pod('x/db', { app: 'db' }, { ip: '10.244.1.10' }), ...others()],
  policies: policies(),
});

function enforced(s: ClusterState = st): Enforced {
  const plan = new Planner(s).planNode('n1');
  const desired = desiredState(plan, undefined, {
    reports: { group: 100, rate: 20, per: 'second', burst: 5 },
  });
  return { plan, state: s, desired };
}

const e = enforced();
const chainOf = (key: string, d: 'ingress' | 'egress') => e.desired.podChains.get(key)![d]!;

function packet(
  direction: 'ingress' | 'egress',
  id: string,
  src: string,
  dst: string,
  over: Partial<NflogPacket['headers']> = {},
): NflogPacket {
  return {
    group: 100,
    family: 2,
    prefix: formatPrefix({ direction, kind: 'deny', id }),
    payloadBytes: 60,
    headers: {
      ipVersion: 4,
      src,
      dst,
      protocol: 6,
      protocolName: 'tcp',
      length: 60,
      sport: 40000,
      dport: 5432,
      ...over,
    },
  };
}

t.test('attribution: pods by address, the local pod isolating policies', async (t) => {
  const r = attribute(
    packet('ingress', chainOf('x/db', 'ingress'), '10.244.2.20', '10.244.1.10'),
    Date.parse('2026-12-01T17:00:00Z'),
    e,
    'n1',
  );
  t.ok('report' in r);
  if (!('report' in r)) return;
  t.same(r.report, {
    kind: 'deny',
    direction: 'ingress',
    node: 'n1',
    src: { address: '10.244.2.20', pod: 'y/client' },
    dst: { address: '10.244.1.10', pod: 'x/db' },
    protocol: 'TCP',
    port: 5432,
    policies: ['x/db-from-web', 'x/deny-all'],
    at: '2026-12-01T17:00:00.000Z',
  });
  t.equal(r.namespace, 'x', 'the metric namespace is the local pod, the destination for ingress');
  t.equal(reportLine(r.report), 'y/client -> x/db:5432/TCP ingress x/db-from-web,x/deny-all');
  const out = attribute(
    packet('egress', chainOf('x/web', 'egress'), '10.244.1.11', '203.0.113.9', { protocol: 17, dport: 53 }),
    0,
    e,
    'n1',
  );
  t.ok('report' in out && out.report.dst.pod === undefined && out.report.src.pod === 'x/web');
  t.ok('report' in out && out.report.protocol === 'UDP' && out.report.policies.join() === 'x/deny-all');
  t.equal('report' in out && out.namespace, 'x', 'egress: the source namespace');
  const icmp = attribute(
    packet('egress', chainOf('x/web', 'egress'), '10.244.1.11', '203.0.113.9', {
      protocol: 1,
      protocolName: 'icmp',
      dport: undefined,
    }),
    0,
    e,
    'n1',
  );
  t.ok('report' in icmp && icmp.report.protocol === 'icmp' && icmp.report.port === undefined);
});

t.test('attribution: a pod gone since the program falls back to its chain; foreign logs skip', async (t) => {
  const gone = attribute(
    packet('ingress', chainOf('x/db', 'ingress'), '10.244.2.20', '10.244.1.99'),
    0,
    e,
    'n1',
  );
  t.ok('report' in gone);
  if ('report' in gone) {
    t.same(gone.report.policies, ['x/db-from-web', 'x/deny-all'], 'what isolated the chain pods');
    t.same(gone.report.dst, { address: '10.244.1.99' });
  }
  t.same(attribute({ ...packet('ingress', 'x', 'a', 'b'), prefix: 'ulogd' }, 0, e, 'n1'), {
    skip: 'foreign',
  });
  const { headers: _h, ...noHeaders } = packet('ingress', 'in-1', '10.244.2.20', '10.244.1.10');
  t.same(attribute(noHeaders, 0, e, 'n1'), { skip: 'headers' });
});

t.test('attribution: a kernel timestamp that is no date falls back to the receive time', async (t) => {
  // u64 seconds straight from NFULA_TIMESTAMP: far past what a Date holds, toISOString would throw.
  const p = { ...packet('ingress', chainOf('x/db', 'ingress'), '10.244.2.20', '10.244.1.10') };
  const r = attribute({ ...p, kernelTimeMs: 2 ** 64 * 1000 }, Date.parse('2026-12-01T17:00:00Z'), e, 'n1');
  t.equal('report' in r && r.report.at, '2026-12-01T17:00:00.000Z');
  const ok = attribute({ ...p, kernelTimeMs: Date.parse('2026-12-01T16:59:59.5Z') }, 0, e, 'n1');
  t.equal('report' in ok && ok.report.at, '2026-12-01T16:59:59.500Z', 'a valid kernel time is kept');
});

t.test('attribution: a namespace annotated tollgate.dev/drop-reports: "off" is not logged', async (t) => {
  const quiet: ClusterState = {
    ...st,
    namespaces: new Map(
      [...st.namespaces].map(([n, ns]) => [n, n === 'x' ? { ...ns, dropReportsOff: true as const } : ns]),
    ),
  };
  const q = enforced(quiet);
  t.same(attribute(packet('ingress', 'in-k1', '10.244.2.20', '10.244.1.10'), 0, q, 'n1'), {
    skip: 'quiet',
  });
});

interface Fake {
  source: ReportSource;
  emit(p: NflogPacket): void;
  fail(e: NflogError): void;
  /** The current socket dies (an I/O error after the bind, as the listener reports it). */
  die(e: NflogError): void;
  attempts: number;
  closed: number;
}

/** A packet source that refuses the first `failures` binds with EPERM, as the kernel does. */
function fakeSource(failures: number): Fake {
  let deliver: ((p: NflogPacket, at: number) => void) | undefined;
  let report: ((e: NflogError) => void) | undefined;
  let dead: ((e: NflogError) => void) | undefined;
  const fake: Fake = {
    attempts: 0,
    closed: 0,
    emit: (p) => deliver?.(p, Date.now()),
    fail: (e) => report?.(e),
    die: (e) => dead?.(e),
    source: async (group, onPacket, onError, onClosed) => {
      fake.attempts++;
      if (fake.attempts <= failures)
        throw new NflogError('E_NFLOG_BIND', `nflog group ${group}: EPERM: another socket is bound`, {
          group,
          errno: 1,
        });
      deliver = onPacket;
      report = onError;
      dead = onClosed;
      return {
        stats: { received: 0, lost: 2, overruns: 1, undecodable: 0 },
        close: () => {
          fake.closed++;
        },
      };
    },
  };
  return fake;
}

t.test('reporter: EPERM logged once, retried with backoff, then reports flow', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const log = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        raw.push(line.trim());
        lines.push(JSON.parse(line));
      },
    },
  );
  const metrics = createMetrics();
  const fake = fakeSource(3);
  let suppressed = 7n;
  const r = new DropReporter({
    group: 100,
    node: 'n1',
    log,
    metrics,
    enforced: () => e,
    readSuppressed: async () => suppressed,
    source: fake.source,
    retryMs: 5,
    retryMaxMs: 20,
  });
  t.teardown(() => r.stop());
  r.start();
  await until(() => fake.attempts >= 2, 'a retry', scaledMs(10_000));
  t.match(r.problem, /EPERM/, 'the problem is shown (for /readyz)');
  await until(() => r.problem === undefined, 'the bind', scaledMs(10_000));
  const binds = lines.filter((l) => String(l.msg).includes('cannot bind'));
  t.equal(binds.length, 1, 'the same error is logged once, not at every retry');
  t.match(binds[0], { level: 50, group: 100, errno: 'EPERM', code: 'E_NFLOG_BIND' });
  t.equal((await metrics.reportBindFailures.get()).values[0]?.value, 3);
  t.equal((await metrics.reportsBound.get()).values[0]?.value, 1);

  fake.emit(packet('ingress', chainOf('x/db', 'ingress'), '10.244.2.20', '10.244.1.10'));
  fake.emit({ ...packet('ingress', 'x', 'a', 'b'), prefix: 'someone else' });
  const reported = raw.filter((l) => l.includes(REPORT_MESSAGE));
  t.equal(reported.length, 1);
  const rec = reportOfLogLine(reported[0]!);
  t.equal(rec && reportLine(rec), 'y/client -> x/db:5432/TCP ingress x/db-from-web,x/deny-all');
  t.match(JSON.parse(reported[0]!), { level: 30, msg: REPORT_MESSAGE });
  const denied = (await metrics.deniedConnections.get()).values;
  t.same(
    denied.map((v) => [v.labels, v.value]),
    [[{ direction: 'ingress', namespace: 'x', kind: 'deny' }, 1]],
    'bounded labels: direction, namespace, kind; never pods or addresses',
  );
  t.same(
    (await metrics.reportsSkipped.get()).values.map((v) => [v.labels.reason, v.value]),
    [['foreign', 1]],
  );

  await r.refreshMetrics();
  t.equal((await metrics.reportsSuppressed.get()).values[0]?.value, 7);
  suppressed = 10n;
  await r.refreshMetrics();
  t.equal((await metrics.reportsSuppressed.get()).values[0]?.value, 10, 'counts the delta');
  suppressed = 2n;
  await r.refreshMetrics();
  t.equal((await metrics.reportsSuppressed.get()).values[0]?.value, 12, 'a rewritten chain starts at 0');
  t.equal((await metrics.reportsLost.get()).values[0]?.value, 3, 'sequence gaps and queue overruns');
});

t.test('attribution: a local pod newer than the cluster map is named by the program', async (t) => {
  const addresses = new PodAddresses(60_000);
  addresses.of(st); // built for the old pods; the next program comes well within its age
  // x/db deleted, x/db2 started with its address.
  const newer = state({
    pods: [pod('x/db2', { app: 'db' }, { ip: '10.244.1.10' }), ...others()],
    policies: policies(),
  });
  const e2 = enforced(newer);
  const r = attribute(
    packet('ingress', e2.desired.podChains.get('x/db2')!.ingress!, '10.244.2.20', '10.244.1.10'),
    0,
    e2,
    'n1',
    new WeakMap(),
    addresses,
  );
  t.ok('report' in r);
  if (!('report' in r)) return;
  t.same(r.report.dst, { address: '10.244.1.10', pod: 'x/db2' }, 'not x/db, which had the address before');
  t.same(r.report.src, { address: '10.244.2.20', pod: 'y/client' }, 'the remote end from the cluster map');
  t.same(r.report.policies, ['x/db-from-web', 'x/deny-all']);
});

/** A pino logger whose records land in `lines`. */
function captured(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

t.test('reporter: undecodable reports are counted each, logged once', async (t) => {
  const { log, lines } = captured();
  const metrics = createMetrics();
  const fake = fakeSource(0);
  const r = new DropReporter({
    group: 100,
    node: 'n1',
    log,
    metrics,
    enforced: () => e,
    source: fake.source,
  });
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.problem === undefined, 'the bind', scaledMs(10_000));
  for (let i = 0; i < 3; i++)
    fake.fail(
      new NflogError('E_NFLOG_DECODE', `nflog group 100: attribute ${i} is truncated`, { group: 100 }),
    );
  const warned = lines.filter((l) => String(l.msg).startsWith('drop report error'));
  t.equal(warned.length, 1, 'one line for the same kind of error, not one per packet');
  t.match(warned[0], { level: 40, code: 'E_NFLOG_DECODE', group: 100 });
  t.same(
    (await metrics.reportsSkipped.get()).values.map((v) => [v.labels.reason, v.value]),
    [['undecodable', 3]],
  );
});

t.test('reporter: a dead socket is dropped, shown and bound again; a bad packet is not', async (t) => {
  const { log, lines } = captured();
  const metrics = createMetrics();
  const fake = fakeSource(0);
  const r = new DropReporter({
    group: 100,
    node: 'n1',
    log,
    metrics,
    enforced: () => e,
    source: fake.source,
    retryMs: 5,
    retryMaxMs: 20,
  });
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.problem === undefined, 'the bind', scaledMs(10_000));
  const bound = async () => (await metrics.reportsBound.get()).values[0]?.value;
  fake.fail(new NflogError('E_NFLOG_DECODE', 'nflog group 100: attribute 3 is truncated', { group: 100 }));
  t.equal(fake.attempts, 1, 'a bad packet keeps the socket');
  t.equal(await bound(), 1);

  fake.die(new NflogError('E_NFLOG_IO', 'nflog group 100: socket error: EIO', { group: 100, errno: 5 }));
  t.equal(await bound(), 0, 'the gauge says it is not listening');
  t.match(r.problem, /socket error: EIO/, '/readyz detail names the failure');
  const logged = lines.filter((l) => String(l.msg).includes('the nflog socket failed'));
  t.equal(logged.length, 1);
  t.match(logged[0], { level: 50, group: 100, code: 'E_NFLOG_IO', errno: 'EIO' });
  await until(() => fake.attempts === 2 && r.problem === undefined, 'the rebind', scaledMs(10_000));
  t.equal(await bound(), 1, 'listening again');
  fake.emit(packet('ingress', chainOf('x/db', 'ingress'), '10.244.2.20', '10.244.1.10'));
  t.equal((await metrics.deniedConnections.get()).values[0]?.value, 1, 'reports flow from the new socket');
  r.stop();
  t.equal(fake.closed, 2, 'the dead socket and the new one are both closed');
});

t.test('reporter: a bind failure that is no Error is still logged', async (t) => {
  const { log, lines } = captured();
  let attempts = 0;
  const r = new DropReporter({
    group: 100,
    node: 'n1',
    log,
    metrics: createMetrics(),
    enforced: () => e,
    source: () => {
      attempts++;
      return Promise.reject('socket: address family not supported');
    },
    retryMs: 5,
    retryMaxMs: 5,
  });
  t.teardown(() => r.stop());
  r.start();
  await until(() => attempts >= 3, 'retries', scaledMs(10_000));
  const binds = lines.filter((l) => String(l.msg).includes('cannot bind'));
  t.equal(binds.length, 1, 'logged once');
  t.match(String(binds[0]?.msg), /address family not supported/);
  t.match(r.problem, /address family not supported/);
});

t.test('reporter: the series of a deleted namespace go with it', async (t) => {
  const { log } = captured();
  const metrics = createMetrics();
  const fake = fakeSource(0);
  let current = e;
  const r = new DropReporter({
    group: 100,
    node: 'n1',
    log,
    metrics,
    enforced: () => current,
    source: fake.source,
  });
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.problem === undefined, 'the bind', scaledMs(10_000));
  fake.emit(packet('ingress', chainOf('x/db', 'ingress'), '10.244.2.20', '10.244.1.10'));
  fake.emit(packet('egress', chainOf('x/web', 'egress'), '10.244.1.11', '203.0.113.9'));
  const series = async () =>
    (await metrics.deniedConnections.get()).values.map((v) => `${v.labels.namespace} ${v.labels.direction}`);
  t.same((await series()).sort(), ['x egress', 'x ingress']);
  await r.refreshMetrics();
  t.equal((await series()).length, 2, 'kept while the namespace exists');
  current = enforced(
    state({ namespaces: { y: { ns: 'y' } }, pods: [pod('y/client', {}, { node: 'n2', ip: '10.244.2.20' })] }),
  );
  await r.refreshMetrics();
  t.same(await series(), [], 'namespace x deleted: its series are removed');
});

t.test('the cluster pods by address are rebuilt at most once a second under churn', async (t) => {
  const addresses = new PodAddresses(1000);
  const first = addresses.of(st, 0);
  t.equal(first.get(`4:${0x0af4010an}`), 'x/db');
  const moved: ClusterState = { ...st, pods: st.pods.slice(1) };
  t.equal(addresses.of(moved, 500), first, 'a new program within the second: the same map');
  const later = addresses.of(moved, 1500);
  t.not(later, first, 'after a second: rebuilt');
  t.equal(later.get(`4:${0x0af4010an}`), undefined, 'x/db is gone from it');
  t.equal(addresses.of(moved, 9000), later, 'the same pods: never rebuilt');
});

t.test(
  'attribution: a ClusterNetworkPolicy Deny reports as cnp/NAME, not the isolating policies',
  async (t) => {
    const withCnp = withClusterPolicies(st, [
      cnp('no-client', {
        tier: 'Admin',
        priority: 5,
        subject: { namespaces: {} },
        ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: { ns: 'y' } } }] }],
      }),
    ]);
    const ec = enforced(withCnp);
    const deny = [...(ec.desired.tierDenies ?? new Map()).entries()].find(([c]) => c.startsWith('in-'));
    if (deny === undefined) return t.fail('the Deny rule has a deny chain');
    t.equal(deny[1], 'cnp/no-client');
    const r = attribute(packet('ingress', deny[0], '10.244.2.20', '10.244.1.10'), 0, ec, 'n1');
    t.ok('report' in r && r.report.policies.join() === 'cnp/no-client', 'the CNP, not x/deny-all');
  },
);
