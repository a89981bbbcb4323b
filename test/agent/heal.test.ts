// The agent heals what it can see, on fakes (the kernel versions are in test/agent/kernel-heal.test.ts):
// another process's change notification schedules a repair at once, our own commits do not; verification
// restores the table while syncs fail; a second agent waits as standby and takes over when the first
// exits; a node without a table is closed until the first complete list; /healthz fails when syncs have
// failed for longer than the liveness timeout; /readyz shows the error of a failed first sync; the
// problems already logged stay bounded.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { Agent, type AgentOptions, type AgentParts } from '../../src/agent/agent.ts';
import { NodeLock } from '../../src/agent/lock.ts';
import { LoggedOnce } from '../../src/agent/once.ts';
import { NftProgrammer, type Programmer } from '../../src/agent/programmer.ts';
import { BASE_CHAIN, TABLE } from '../../src/compile/desired.ts';
import type { Transaction } from '../../src/nft/index.ts';
import type { TableChange } from '../../src/nft/monitor.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { pod, policy } from '../policy/builders.ts';
import { cluster, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

interface Line {
  msg: string;
  cause?: string;
  detail?: string;
  enforcing?: string;
  [k: string]: unknown;
}

/** Our "kernel", with the port id its commits' notifications carry. */
const Kernel = class extends FakeKernel {
  constructor() {
    super({ portId: 4242 });
  }
};

let lockCount = 0;
function agent(
  t: { teardown(fn: () => unknown): void },
  api: FakeApi,
  kernel: Programmer,
  options: Partial<AgentOptions> = {},
  parts: AgentParts = {},
) {
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l) as Line) });
  const a = new Agent(api, kernel, log, { ...TEST_AGENT_OPTIONS, ...options }, parts);
  t.teardown(() => a.stop());
  return { a, lines };
}

/** A monitor part the test drives by hand. */
function monitor() {
  const m: { emit?: (c: TableChange) => void; lost?: () => void } = {};
  const part: AgentParts['monitor'] = (onChange, onLost) => {
    m.emit = onChange;
    m.lost = onLost;
    return { close() {}, pause() {}, resume() {} };
  };
  return { m, part };
}

/** Our table as the fake kernel holds it, as nft text; '' when there is none. */
const ours = (k: FakeKernel) => k.fake.dump({ family: 'inet', table: TABLE });
const metric = async (a: Agent, name: string) => a.metrics.registry.getSingleMetricAsString(name);

/** A ready agent on a fake kernel whose table monitor the test drives (`m.emit`, `m.lost`). */
async function watchedAgent(t: { teardown(fn: () => unknown): void }) {
  const api = new FakeApi();
  cluster(api);
  const kernel = new Kernel();
  const { m, part } = monitor();
  const { a, lines } = agent(t, api, kernel, {}, { monitor: part });
  await a.start();
  await until(() => a.ready, 'ready');
  return { kernel, m, a, lines };
}

t.test("another process's change: repaired at once; our own commits are ignored", async (t) => {
  const { kernel, m, a, lines } = await watchedAgent(t);
  const reads = kernel.fake.committed.length;
  m.emit!({ portId: 4242, summary: 'NEWSETELEM 1' });
  await a.idle();
  await new Promise((r) => setTimeout(r, 50));
  await a.idle();
  t.equal(kernel.fake.committed.length, reads, 'our own change: nothing done');
  t.notOk(lines.some((l) => l.msg === 'table changed by another process'));

  kernel.fake.tamper((m) => m.delete(`inet ${TABLE}`));
  m.emit!({ portId: 777, pid: 77, process: 'nft', summary: 'DELTABLE 1, DELCHAIN 3' });
  await until(() => lines.some((l) => l.msg === 'repaired'), 'repaired');
  const repaired = lines.find((l) => l.msg === 'repaired')!;
  t.equal(repaired.cause, 'notification');
  t.match(repaired.detail, /table missing/);
  t.match(repaired.trigger, /nft \(pid 77, port 777\): DELTABLE 1/);
  t.match(ours(kernel), /^add table inet tollgate\n/, 'the table is back');
  t.match(await metric(a, 'tollgate_repairs_total'), /tollgate_repairs_total\{cause="notification"\} 1/);
  t.match(await metric(a, 'tollgate_table_changes_by_others_total'), / 1$/m);
});

t.test('lost notifications: counted, and the table compared with the kernel and repaired', async (t) => {
  const { kernel, m, a, lines } = await watchedAgent(t);
  // Someone deletes the table, and its notifications are among those the kernel dropped.
  kernel.fake.tamper((m) => m.delete(`inet ${TABLE}`));
  m.lost!();
  await until(() => lines.some((l) => l.msg === 'repaired'), 'repaired');
  const r = lines.find((l) => l.msg === 'repaired')!;
  t.equal(r.cause, 'notification');
  t.match(r.trigger, /notifications lost/);
  t.match(ours(kernel), /^add table inet tollgate\n/, 'the table is back');
  t.match(await metric(a, 'tollgate_table_notifications_lost_total'), / 1$/m);
});

t.test(
  'notifications pause during our commits; another commit in the pause is caught by the generation',
  async (t) => {
    const api = new FakeApi();
    cluster(api);
    const kernel = new Kernel();
    const calls: string[] = [];
    const part: AgentParts['monitor'] = () => ({
      close() {},
      pause: () => calls.push('pause'),
      resume: () => calls.push('resume'),
    });
    const { a, lines } = agent(t, api, kernel, {}, { monitor: part });
    await a.start();
    await until(() => a.ready, 'ready');
    t.ok(calls.length >= 2 && calls[0] === 'pause' && calls[1] === 'resume', 'paused around the commit');
    t.notOk(
      lines.some((l) => l.msg === 'repaired'),
      'a clean commit schedules nothing',
    );
    // Another process deletes our table right after our batch, before the generation is read again.
    kernel.fake.afterCommit = (fake) => fake.tamper((m) => m.delete(`inet ${TABLE}`));
    api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
    await until(() => lines.some((l) => l.msg === 'repaired'), 'repaired');
    const r = lines.find((l) => l.msg === 'repaired')!;
    t.equal(r.cause, 'notification');
    t.match(r.trigger, /another commit while ours ran/);
    t.match(ours(kernel), /^add table inet tollgate\n/, 'the table is back');
    t.equal(calls.filter((c) => c === 'pause').length, calls.filter((c) => c === 'resume').length);
  },
);

t.test('no notifications or no lock: the agent still runs and says so', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const { a, lines } = agent(
    t,
    api,
    new FakeKernel(),
    {},
    {
      monitor: () => {
        throw new Error('EPERM (injected)');
      },
      lock: {
        tryAcquire: async () => {
          throw new Error('ENOMEM (injected)');
        },
        holder: async () => undefined,
        release: async () => {},
      },
    },
  );
  await a.start();
  await until(() => a.ready, 'ready');
  t.ok(lines.some((l) => l.msg.startsWith('no table notifications')));
  t.ok(lines.some((l) => l.msg === 'the node lock is unusable; writing without it'));
});

t.test('a diff the kernel rejects: repaired in the same sync, logged and counted as recovery', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new Kernel();
  const { a, lines } = agent(t, api, kernel);
  await a.start();
  await until(() => a.ready, 'ready');
  kernel.fake.tamper((m) => m.delete(`inet ${TABLE}`)); // no notification: only the next diff finds out
  api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
  await until(() => lines.some((l) => l.msg === 'repaired'), 'repaired');
  const r = lines.find((l) => l.msg === 'repaired')!;
  t.equal(r.cause, 'recovery');
  t.match(r.detail, /ENOENT/);
  t.notOk(
    lines.some((l) => l.msg === 'sync failed'),
    'the sync itself succeeded',
  );
  t.ok(a.ready);
  t.match(await metric(a, 'tollgate_repairs_total'), /tollgate_repairs_total\{cause="recovery"\} 1/);
  t.match(await metric(a, 'tollgate_netlink_errors_total'), /tollgate_netlink_errors_total 1/);
  t.match(lines.findLast((l) => l.msg === 'synced')!.from, 'kernel');
});

t.test('verification restores the last complete table while syncs fail', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new Kernel();
  const { a, lines } = agent(t, api, kernel, { verifyIntervalMs: 100 });
  await a.start();
  await until(() => a.ready, 'ready');
  // A policy whose batches the kernel refuses: every sync fails from now on.
  kernel.fake.refuse = { match: /^NEWCHAIN chain inet tollgate in-/, errno: 'EINVAL' };
  api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
  await until(() => lines.some((l) => l.msg === 'sync failed'), 'a failed sync');
  kernel.fake.tamper((m) => m.delete(`inet ${TABLE}`));
  await until(() => ours(kernel) !== '', 'the table restored by the periodic verify', 5000);
  t.ok(
    lines.some((l) => l.msg === 'repaired' && l.cause === 'verify'),
    'logged as repaired (verify)',
  );
  t.match(
    ours(kernel),
    new RegExp(`^add chain inet ${TABLE} ${BASE_CHAIN} \\{ type filter hook forward`, 'm'),
  );
  const failed = lines.find((l) => l.msg === 'sync failed')!;
  t.match(failed.enforcing, /the last complete program keeps enforcing/);
  t.match(a.notReady(), /^last sync failed: NEWCHAIN for chain inet tollgate in-\S+ failed: EINVAL/);
  t.not(
    await metric(a, 'tollgate_sync_failures_consecutive'),
    /tollgate_sync_failures_consecutive 0$/m,
    'consecutive failures counted',
  );
});

t.test('a second agent is standby, never writes, and takes over when the first exits', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new FakeKernel();
  const name = `tollgate-test-${process.pid}-${lockCount++}`;
  const writes = { first: 0, second: 0 };
  const counting = (who: 'first' | 'second') =>
    new (class extends NftProgrammer {
      override async commit(tx: Transaction) {
        writes[who]++;
        return super.commit(tx);
      }
    })(kernel.fake);
  const first = agent(t, api, counting('first'), {}, { lock: new NodeLock('n1', name) });
  await first.a.start();
  await until(() => first.a.ready, 'first ready');
  const second = agent(t, api, counting('second'), { lockRetryMs: 50 }, { lock: new NodeLock('n1', name) });
  await second.a.start();
  t.ok(second.a.standby, 'the second waits');
  t.match(
    second.a.notReady(),
    new RegExp(`^standby: another agent writes this node's table \\(pid ${process.pid}\\)`),
  );
  t.equal(second.a.health(), undefined, 'a standby is healthy');
  const standbyLine = second.lines.find((l) => l.msg.startsWith('standby'));
  t.ok(standbyLine, 'logged as standby');
  t.match(await metric(second.a, 'tollgate_standby'), /tollgate_standby 1/);
  api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
  await until(() => first.a.reconciler.current?.podChains.get('x/a')?.ingress !== undefined, 'first applied');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(writes.second, 0, 'the standby never writes');

  await first.a.stop();
  await until(() => !second.a.standby, 'took over', 5000);
  t.ok(second.lines.some((l) => l.msg === 'took over: the other agent is gone'));
  api.put(P.pods, 'c', pod('x/c', { app: 'c' }, { ip: '10.244.1.12' }));
  await until(() => second.a.reconciler.current?.podChains.has('x/c') === true, 'the second programs');
  t.ok(writes.second > 0);
  const sawTable = ours(kernel);
  t.match(
    sawTable,
    new RegExp(`^add chain inet ${TABLE} ${BASE_CHAIN} `, 'm'),
    'the table stayed in place throughout',
  );
  t.match(await metric(second.a, 'tollgate_standby'), /tollgate_standby 0/);
});

t.test(
  'a standby on a node with no table at all closes it (a squatter on the lock must not open it)',
  async (t) => {
    const name = `tollgate-test-${process.pid}-${lockCount++}`;
    const squatter = new NodeLock('n1', name);
    t.ok(await squatter.tryAcquire(), 'someone else holds the lock');
    t.teardown(() => squatter.release());
    const api = new FakeApi();
    cluster(api);
    const kernel = new FakeKernel();
    const { a, lines } = agent(
      t,
      api,
      kernel,
      { lockRetryMs: 50 },
      { lock: new NodeLock('n1', name), kernelPodRanges: async () => ['10.244.1.0/24'] },
    );
    await a.start();
    t.ok(a.standby);
    t.match(ours(kernel), /ip saddr 10\.244\.1\.0\/24 .*drop/, 'a closed table: the pod range dropped');
    t.notMatch(ours(kernel), /ingress4/, 'no dispatch maps yet');
    t.ok(lines.some((l) => l.msg === 'boot-closed table programmed'));
    await new Promise((r) => setTimeout(r, 150));
    t.equal(kernel.fake.committed.length, 1, 'and nothing else while standby');
    await squatter.release();
    await until(() => a.ready, 'took over and synced');
    t.match(ours(kernel), /^add map inet tollgate ingress4 /m, 'the full table');
  },
);

t.test(
  'closed at boot: no table and the API unreachable: the closed table from the state file',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-state-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ node: 'n1', podCIDRs: ['10.244.1.0/24'] }));
    const api = new FakeApi();
    cluster(api);
    api.failLists = 503;
    const kernel = new FakeKernel();
    const { a, lines } = agent(
      t,
      api,
      kernel,
      { stateDir: dir },
      { kernelPodRanges: async () => ['10.9.9.0/24'] },
    );
    await a.start();
    await until(() => ours(kernel) !== '', 'a table');
    const text = kernel.fake.committed[0]!.text;
    t.match(
      text,
      /add chain inet tollgate forward \{ type filter hook forward priority 0; policy accept; \}/,
    );
    t.match(text, /ct state established,related accept/);
    t.match(text, /ip saddr 10\.244\.1\.0\/24 ip saddr != @local4 counter drop/);
    t.match(text, /ip daddr 10\.244\.1\.0\/24 ip daddr != @local4 counter drop/);
    t.notMatch(text, /10\.9\.9/, 'the state file wins over the kernel');
    const line = lines.find((l) => l.msg === 'boot-closed table programmed')!;
    t.same(line.podCIDRs, ['10.244.1.0/24']);
    t.equal(line.source, 'state file');
    t.match(a.notReady(), /not synced yet: waiting for the first complete list.*boot-closed table/);
    api.failLists = undefined;
    await until(() => a.ready, 'ready after the API is back', 10_000);
    t.match(ours(kernel), /^add map inet tollgate ingress4 /m, 'the full table replaced the closed one');
    const saved = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    t.same(
      saved,
      { node: 'n1', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
      'the state file follows the node',
    );
  },
);

t.test(
  'closed at boot: without a state file the CNI bridge is asked; an existing table is left alone',
  async (t) => {
    const api = new FakeApi();
    cluster(api);
    api.failLists = 503;
    const kernel = new FakeKernel();
    const { a } = agent(
      t,
      api,
      kernel,
      {},
      { kernelPodRanges: async () => ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
    );
    await a.start();
    await until(() => ours(kernel) !== '', 'a table');
    t.match(kernel.fake.committed[0]!.text, /ip6 saddr fd00:10:244:1::\/64 ip6 saddr != @local6/);
    await a.stop();

    const again = agent(t, api, kernel, {}, { kernelPodRanges: async () => ['10.244.1.0/24'] });
    await again.a.start();
    await new Promise((r) => setTimeout(r, 100));
    await again.a.idle();
    t.equal(kernel.fake.committed.length, 1, 'a restart programs nothing before the first sync');
    t.match(again.a.notReady(), /the table of a previous run keeps enforcing/);
  },
);

t.test('--boot-closed=false: no table before the first sync, and the log says so', async (t) => {
  const api = new FakeApi();
  cluster(api);
  api.failLists = 503;
  const kernel = new FakeKernel();
  const { a, lines } = agent(
    t,
    api,
    kernel,
    { bootClosed: false },
    { kernelPodRanges: async () => ['10.244.1.0/24'] },
  );
  await a.start();
  await until(() => lines.some((l) => /boot-closed=false/.test(l.msg)), 'logged');
  t.equal(kernel.fake.committed.length, 0);
});

t.test('a failed first sync: /readyz shows the error, the log says what enforces', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new Kernel();
  kernel.fake.refuse = { match: /^NEWTABLE/, errno: 'EINVAL' };
  const { a, lines } = agent(t, api, kernel, { bootClosed: false });
  await a.start();
  await until(() => lines.some((l) => l.msg === 'sync failed'), 'failed');
  t.match(a.notReady(), /^first sync failed: NEWTABLE for table inet tollgate failed: EINVAL/);
  t.match(
    lines.find((l) => l.msg === 'sync failed')!.enforcing,
    /no table: this node's pod traffic is not filtered/,
  );
});

t.test('/healthz fails when syncs have failed for longer than the liveness timeout', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new Kernel();
  const { a } = agent(t, api, kernel, { livenessTimeoutMs: 300 });
  await a.start();
  await until(() => a.ready, 'ready');
  t.equal(a.health(), undefined, 'healthy');
  kernel.fake.refuse = { match: /./, errno: 'EINVAL' };
  api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
  await until(() => !a.ready, 'failing');
  t.equal(a.health(), undefined, 'not yet: the timeout has not passed');
  await until(() => a.health() !== undefined, 'unhealthy', 10_000);
  t.match(
    a.health(),
    /^syncs have failed for \d+ s \(\d+ in a row\): NEWTABLE for table inet tollgate failed: EINVAL/,
  );
  kernel.fake.refuse = undefined;
  await until(() => a.health() === undefined, 'healthy again after a success', 40_000);
});

t.test('the probes over HTTP: 503 with the reason from /healthz and /readyz', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new Kernel();
  const { a } = agent(t, api, kernel, { livenessTimeoutMs: 300, metricsAddr: '127.0.0.1:0' });
  await a.start();
  await until(() => a.ready, 'ready');
  const url = (path: string) => `http://127.0.0.1:${a.httpAddress!.port}${path}`;
  const get = async (path: string) => {
    const r = await fetch(url(path));
    return { status: r.status, body: await r.text() };
  };
  t.same(await get('/healthz'), { status: 200, body: 'ok\n' });
  t.same(await get('/readyz'), { status: 200, body: 'ok\n' });
  kernel.fake.refuse = { match: /./, errno: 'EINVAL' };
  api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
  await until(() => a.health() !== undefined, 'unhealthy', 10_000);
  const health = await get('/healthz');
  t.equal(health.status, 503);
  t.match(
    health.body,
    /^syncs have failed for \d+ s \(\d+ in a row\): NEWTABLE for table inet tollgate failed: EINVAL/,
  );
  const ready = await get('/readyz');
  t.equal(ready.status, 503);
  t.match(ready.body, /^last sync failed: NEWTABLE for table inet tollgate failed: EINVAL/);
  const metrics = (await get('/metrics')).body;
  t.match(metrics, /tollgate_sync_failures_consecutive [1-9]/);
  t.match(metrics, /tollgate_last_successful_sync_timestamp_seconds \d{10}/);
});

t.test('/healthz fails when the cluster has not been listed for longer than the timeout', async (t) => {
  const api = new FakeApi();
  cluster(api);
  api.failLists = 503;
  const { a } = agent(t, api, new FakeKernel(), { livenessTimeoutMs: 200, bootClosed: false });
  await a.start();
  await until(() => a.health() !== undefined, 'unhealthy', 10_000);
  t.match(a.health(), /^the cluster has not been listed completely for \d+ s/);
});

t.test('the problems already logged stay bounded (20,000 distinct ones)', async (t) => {
  const once = new LoggedOnce(1000);
  let logged = 0;
  for (let i = 0; i < 20_000; i++) if (once.first(`NetworkPolicy x/p${i}: spec.ingress[0]: bad`)) logged++;
  t.equal(logged, 20_000);
  t.ok(once.size <= 1000, `${once.size} remembered`);
  t.notOk(once.first('NetworkPolicy x/p19999: spec.ingress[0]: bad'), 'a recent one is still known');
  once.keepOnly(new Set(['NetworkPolicy x/p19999: spec.ingress[0]: bad']));
  t.equal(once.size, 1, 'problems that are gone are forgotten');
});

t.test('20,000 invalid policies created and deleted: the agent remembers a bounded number', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const { a, lines } = agent(t, api, new FakeKernel());
  await a.start();
  await until(() => a.ready, 'ready');
  // In rounds, so that every policy is in some sync's plan (a burst would coalesce them away).
  const bad = (i: number) =>
    policy(`x/bad${i}`, {
      podSelector: {},
      ingress: [{ ports: [{ port: 'Bad Name!' as unknown as number }] }],
    });
  for (let round = 0; round < 20; round++) {
    for (let i = round * 1000; i < (round + 1) * 1000; i++) api.put(P.np, `bad${i}`, bad(i));
    await a.idle();
    for (let i = round * 1000; i < (round + 1) * 1000; i++) api.remove(P.np, `bad${i}`);
    await a.idle();
  }
  await a.idle();
  const internals = a as unknown as { loggedObjects: LoggedOnce; loggedIssues: LoggedOnce };
  const warned = lines.filter((l) => l.msg.startsWith('invalid object')).length;
  t.ok(warned >= 20_000, `${warned} problems logged`);
  t.ok(internals.loggedIssues.size <= 4096, `${internals.loggedIssues.size} remembered`);
  t.equal(internals.loggedIssues.size, 0, 'the deleted policies are forgotten');
});
