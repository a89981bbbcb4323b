// --established=cut on fakes (semantics point 16's option): which conntrack entries a node cuts (only its
// own pods' connections that the policies deny in the direction it enforces, after DNAT), and the agent's
// hook: a changing sync cuts and counts, keep mode never touches conntrack, a failed dump is retried with
// backoff, and a pass that hangs never holds up a sync (the reliability rule: no update is frozen).
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import type { Test } from 'tap';
import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import { type ConntrackAccess, CUT_PASS_MESSAGE, connectionsToCut } from '../../src/agent/cut.ts';
import type { CtEntry } from '../../src/conntrack/entry.ts';
import { ConntrackError } from '../../src/conntrack/errors.ts';
import { formatAddress } from '../../src/policy/address.ts';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { endpointAt, evaluate } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { cluster, pod, policy, state } from '../policy/builders.ts';
import { cnp } from '../policy/cluster-builders.ts';
import { tcp } from './_ct.ts';
import { basePods, dbPolicy, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

// x/db (n1) takes 5432 from role=api only; x/web (n1) may only reach x/api1 (n2) on 80.
const webEgress = policy('x/web-out', {
  podSelector: { matchLabels: { role: 'web' } },
  policyTypes: ['Egress'],
  egress: [{ to: [{ podSelector: { matchLabels: { role: 'api' } } }], ports: [{ port: 80 }] }],
});
const other = pod('x/other', { role: 'other' }, { node: 'n2', ip: '10.244.2.50' });

t.test(
  'a node cuts its own pods connections that the policies deny, in the direction it enforces',
  async (t) => {
    const index = cluster({ pods: [...basePods(), other], policies: [dbPolicy, webEgress] });
    const entries = {
      webToDb: tcp('10.244.1.40', 40001, '10.244.1.20', 5432),
      apiToDb: tcp('10.244.2.30', 40002, '10.244.1.20', 5432),
      otherToDb: tcp('10.244.2.50', 40003, '10.244.1.20', 5432),
      webToApi80: tcp('10.244.1.40', 40004, '10.244.2.30', 80),
      webToApi81: tcp('10.244.1.40', 40005, '10.244.2.30', 81),
      outsideToWeb: tcp('203.0.113.5', 40006, '10.244.1.40', 80),
      notLocal: tcp('10.244.2.50', 40007, '10.244.2.30', 9),
      viaService: tcp('10.244.2.50', 40008, '10.96.0.10', 80, '10.244.1.20', 5432),
      v6: tcp('fd00:10:244:1::40', 40009, 'fd00:10:244:1::20', 5432),
      closed: { ...tcp('10.244.1.40', 40010, '10.244.1.20', 5432), tcpState: 'TIME_WAIT' },
    };
    const cut = connectionsToCut(index, 'n1', Object.values(entries));
    const byPort = new Map(cut.map((d) => [d.entry.orig.sport, d]));
    t.same(
      [...byPort.keys()].sort(),
      [40001, 40003, 40005, 40008, 40009],
      'web->db and other->db (ingress of db), web->api:81 (egress of web), through a Service, IPv6; not TIME_WAIT',
    );
    t.match(byPort.get(40003), {
      direction: 'ingress',
      pod: 'x/db',
      peer: 'pod x/other (10.244.2.50)',
      protocol: 'TCP',
      port: 5432,
      isolatedBy: ['x/db'],
    });
    t.match(byPort.get(40005), {
      direction: 'egress',
      pod: 'x/web',
      peer: 'pod x/api1 (10.244.2.30)',
      port: 81,
    });
    t.match(
      byPort.get(40001),
      { direction: 'ingress', pod: 'x/db' },
      'both directions deny: ingress is named',
    );
    t.match(
      byPort.get(40008),
      { pod: 'x/db', port: 5432 },
      'decided on the backend and its port, after DNAT',
    );
    // The same cluster seen from n2: x/api1 and x/other are local there, and nothing of theirs is denied
    // (db's ingress is n1's to enforce).
    t.same(connectionsToCut(index, 'n2', Object.values(entries)), [], 'n2 cuts nothing of n1');
  },
);

/** A TCP entry from each pod address (and an outside host) to each other, on a few ports. */
function allPairs(index: ClusterIndex): CtEntry[] {
  const v4 = ['203.0.113.5', ...index.state.pods.flatMap((p) => p.ips.filter((a) => a.family === 4))];
  const v6 = index.state.pods.flatMap((p) => p.ips.filter((a) => a.family === 6));
  const text = (a: string | Parameters<typeof formatAddress>[0]) =>
    typeof a === 'string' ? a : formatAddress(a);
  const out: CtEntry[] = [];
  let sport = 41_000;
  for (const family of [v4, v6])
    for (const src of family)
      for (const dst of family)
        if (src !== dst)
          for (const port of [80, 81, 5432]) out.push(tcp(text(src), sport++, text(dst), port));
  return out;
}

t.test('without ClusterNetworkPolicies the cut decides exactly as the NetworkPolicy evaluator', async (t) => {
  const index = cluster({ pods: [...basePods(), other], policies: [dbPolicy, webEgress] });
  const entries = allPairs(index);
  // The NetworkPolicy-only rule (semantics 16): cut where evaluate() denies a direction this node enforces.
  const expected: string[] = [];
  for (const e of entries) {
    const v = evaluate(index, {
      from: endpointAt(index, e.orig.src),
      to: endpointAt(index, e.reply.src),
      protocol: 'TCP',
      port: e.reply.sport ?? 0,
    });
    const here = (d: typeof v.ingress) =>
      d !== undefined && !d.allowed && index.state.pods.find((p) => p.key === d.pod)?.nodeName === 'n1';
    const d = here(v.ingress) ? v.ingress : here(v.egress) ? v.egress : undefined;
    if (d) expected.push(`${e.orig.sport} ${d.direction} ${d.pod} ${d.isolatedBy.join(',')}`);
  }
  const got = connectionsToCut(index, 'n1', entries).map(
    (c) => `${c.entry.orig.sport} ${c.direction} ${c.pod} ${c.isolatedBy.join(',')}`,
  );
  t.ok(expected.length > 10, `a real sample: ${expected.length} of ${entries.length} cut`);
  t.same(got, expected);
});

t.test('cut decisions follow the ClusterNetworkPolicy tiers (semantics 20-22)', async (t) => {
  const s = state({ pods: [...basePods(), other], policies: [dbPolicy] });
  const withCnps = (...cnps: ReturnType<typeof cnp>[]) =>
    new ClusterIndex({ ...s, clusterPolicies: cnps.map(normalizeClusterPolicy) });
  const webToDb = tcp('10.244.1.40', 40001, '10.244.1.20', 5432);
  const apiToDb = tcp('10.244.2.30', 40002, '10.244.1.20', 5432);
  const dbToWeb = tcp('10.244.1.20', 40003, '10.244.1.40', 8080);
  const entries = [webToDb, apiToDb, dbToWeb];
  const ports = (index: ClusterIndex) =>
    connectionsToCut(index, 'n1', entries).map((c) => c.entry.orig.sport);
  t.same(ports(withCnps()), [40001], 'NetworkPolicies alone: web->db is denied by x/db');

  const db = { pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: 'db' } } } };
  const web = [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: 'web' } } } }];
  const accept = withCnps(
    cnp('open', { tier: 'Admin', priority: 1, subject: db, ingress: [{ action: 'Accept', from: web }] }),
  );
  t.same(ports(accept), [], 'an Admin Accept keeps a connection the NetworkPolicy isolates');

  const api = [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { role: 'api' } } } }];
  const deny = withCnps(
    cnp('guard', { tier: 'Admin', priority: 1, subject: db, ingress: [{ action: 'Deny', from: api }] }),
  );
  const cut = connectionsToCut(deny, 'n1', entries);
  t.same(
    cut.map((c) => c.entry.orig.sport),
    [40001, 40002],
    'an Admin Deny cuts a connection the NetworkPolicy allows',
  );
  t.match(cut[1], { direction: 'ingress', pod: 'x/db', isolatedBy: ['ClusterNetworkPolicy guard'] });

  // db's egress is not isolated by any NetworkPolicy: Baseline decides there.
  const floor = withCnps(
    cnp('floor', { tier: 'Baseline', priority: 1, subject: db, egress: [{ action: 'Deny', to: web }] }),
  );
  const base = connectionsToCut(floor, 'n1', entries);
  t.same(
    base.map((c) => c.entry.orig.sport),
    [40001, 40003],
    'a Baseline Deny cuts where no NetworkPolicy isolates',
  );
  t.match(base[1], { direction: 'egress', pod: 'x/db', isolatedBy: ['ClusterNetworkPolicy floor'] });
});

/** A conntrack table in memory: entries, the deletes asked for, and failures to inject. */
class FakeConntrack implements ConntrackAccess {
  entries: CtEntry[] = [];
  deleted: CtEntry[] = [];
  dumps = 0;
  failDumps = 0;
  /** While set, dumps wait for it (a conntrack table that does not answer). */
  gate: Promise<void> | undefined;
  async dump() {
    this.dumps++;
    await this.gate;
    if (this.failDumps > 0) {
      this.failDumps--;
      throw new ConntrackError('E_CONNTRACK_IO', 'conntrack dump: no answer (injected)');
    }
    return { entries: [...this.entries], undecodable: 0, skipped: 0 };
  }
  async delete(e: CtEntry) {
    const i = this.entries.indexOf(e);
    if (i < 0) return 'gone' as const;
    this.entries.splice(i, 1);
    this.deleted.push(e);
    return 'deleted' as const;
  }
}

function setup(t: Test, established: 'keep' | 'cut') {
  const api = new FakeApi();
  api.put(P.ns, 'x', { metadata: { labels: {} } });
  api.put(P.nodes, 'n1', { metadata: { name: 'n1' }, spec: { podCIDRs: ['10.244.1.0/24'] } });
  for (const p of basePods()) api.put(P.pods, p.metadata.name!, p);
  const ct = new FakeConntrack();
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const kernel = new FakeKernel();
  const a = new Agent(api, kernel, log, { ...TEST_AGENT_OPTIONS, established }, { conntrack: () => ct });
  t.teardown(() => a.stop());
  return { api, ct, a, lines, kernel };
}

const cutTotal = async (a: Agent) =>
  (await a.metrics.registry.getSingleMetricAsString('tollgate_connections_cut_total')).trim();

t.test('cut: the sync that stops allowing a connection deletes its entry, and only that one', async (t) => {
  const { api, ct, a, lines } = setup(t, 'cut');
  const webToDb = tcp('10.244.1.40', 40001, '10.244.1.20', 5432);
  const apiToDb = tcp('10.244.2.30', 40002, '10.244.1.20', 5432);
  ct.entries.push(webToDb, apiToDb);
  await a.start();
  await until(() => a.ready, 'ready');
  await a.idle();
  t.same(ct.deleted, [], 'no policy yet: nothing cut');
  api.put(P.np, 'db', dbPolicy);
  await until(() => ct.deleted.length > 0, 'a cut');
  await a.idle();
  t.same(ct.deleted, [webToDb], 'web->db cut, api->db (allowed) kept');
  t.match(await cutTotal(a), /tollgate_connections_cut_total\{direction="ingress"\} 1/);
  const line = lines.find((l) => l.msg === 'connection cut: the policies no longer allow it');
  t.match(line, {
    direction: 'ingress',
    pod: 'x/db',
    peer: 'pod x/web (10.244.1.40)',
    protocol: 'TCP',
    port: 5432,
    isolatedBy: ['x/db'],
    tuple: 'tcp 10.244.1.40:40001 -> 10.244.1.20:5432',
  });
  t.match(
    lines.filter((l) => l.msg === CUT_PASS_MESSAGE).at(-1),
    { examined: 2, cut: 1, gone: 0, failed: 0 },
    'each pass ends with one line of counts',
  );
});

t.test('keep: conntrack is never read', async (t) => {
  const { api, ct, a, kernel } = setup(t, 'keep');
  ct.entries.push(tcp('10.244.1.40', 40001, '10.244.1.20', 5432));
  await a.start();
  await until(() => a.ready, 'ready');
  api.put(P.np, 'db', dbPolicy);
  await until(
    () => kernel.fake.committed.some((c) => /add chain inet tollgate in-/.test(c.text)),
    'db isolated',
  );
  await a.idle();
  t.equal(ct.dumps, 0);
  t.equal(ct.deleted.length, 0);
});

t.test(
  'a failed dump leaves the table programmed, is counted, and is retried with backoff without a sync',
  async (t) => {
    const { api, ct, a } = setup(t, 'cut');
    const webToDb = tcp('10.244.1.40', 40001, '10.244.1.20', 5432);
    ct.entries.push(webToDb);
    await a.start();
    await until(() => a.ready, 'ready');
    await a.idle();
    ct.failDumps = 1;
    const dumps = ct.dumps;
    api.put(P.np, 'db', dbPolicy);
    await until(() => ct.dumps > dumps, 'the cut tried');
    await a.idle();
    t.ok(a.ready, 'the sync itself succeeded');
    t.same(ct.deleted, [], 'not cut yet');
    t.match(
      await a.metrics.registry.getSingleMetricAsString('tollgate_connection_cut_errors_total'),
      /tollgate_connection_cut_errors_total 1/,
    );
    // No sync is needed: the worker retries after its backoff (a first step of 1 s).
    await until(() => ct.deleted.length === 1, 'cut by the retry');
    t.same(ct.deleted, [webToDb]);
    await a.cutsIdle();
    const passes = await a.metrics.registry.getSingleMetricAsString('tollgate_cut_passes_total');
    t.match(passes, /result="error"\} 1/, 'the failed pass is counted');
    t.match(passes, /result="ok"\} [1-9]/);
  },
);

t.test(
  'a pass stuck on conntrack never holds up a sync; the pass after it judges with the newest index',
  async (t) => {
    const { api, ct, a, kernel, lines } = setup(t, 'cut');
    const webToDb = tcp('10.244.1.40', 40001, '10.244.1.20', 5432);
    ct.entries.push(webToDb);
    let release!: () => void;
    ct.gate = new Promise((resolve) => (release = resolve));
    t.teardown(() => release());
    await a.start();
    // The first full sync asks for a pass, which hangs in its dump.
    await until(() => a.ready && ct.dumps === 1, 'ready, the first pass stuck');
    const metric = (name: string) => a.metrics.registry.getSingleMetricAsString(name);
    t.notMatch(await metric('tollgate_cut_pass_started_timestamp_seconds'), / 0$/m, 'a pass runs');
    api.put(P.np, 'db', dbPolicy);
    await until(
      () => kernel.fake.committed.some((c) => /add chain inet tollgate in-/.test(c.text)),
      'db isolated while the pass is stuck',
    );
    await a.idle();
    t.same(ct.deleted, [], 'nothing cut yet: the pass is still stuck');
    t.match(await metric('tollgate_cut_pass_waiting'), / 1$/m, 'one more pass waits');
    release();
    await until(() => ct.deleted.length === 1, 'cut once the dump answers');
    await a.cutsIdle();
    // The stuck pass began before db's policy existed; its decision (made after the dump) and the
    // pass queued behind it both see the policy.
    t.same(ct.deleted, [webToDb]);
    t.equal(ct.dumps, 2, 'the waiting requests made exactly one more pass');
    t.match(await metric('tollgate_cut_pass_waiting'), / 0$/m);
    t.match(await metric('tollgate_cut_pass_started_timestamp_seconds'), / 0$/m, 'no pass runs');
    t.match(await metric('tollgate_cut_pass_duration_seconds'), /_count 2$/m);
    const syncs = lines.filter((l) => l.msg === 'synced').length;
    t.match(
      lines.filter((l) => l.msg === CUT_PASS_MESSAGE).at(-1),
      { syncs },
      'the last pass line covers every changing sync',
    );
  },
);

t.test('--established takes keep or cut, and --help documents it', async (t) => {
  const root = resolve(import.meta.dirname, '../..');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [join(root, 'bin/tollgate.js'), 'agent', ...args], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
      },
    });
  const bad = run('--node-name', 'n1', '--established=drop');
  t.equal(bad.status, 2);
  t.match(bad.stderr, "--established must be keep or cut, not 'drop'");
  t.match(run('--help').stdout, /--established=MODE +keep \(default\)/);
});
