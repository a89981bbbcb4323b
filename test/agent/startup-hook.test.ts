// AgentOptions.afterStartup (the agent command sets --heap-growth-percent there): called once, only after
// the whole cluster has been listed, and after the first sync when this agent writes the table; a standby
// never syncs but still gets it once listed. Fake kernel, fake API.
import { pino } from 'pino';
import t from 'tap';
import { Agent, type AgentOptions, type AgentParts } from '../../src/agent/agent.ts';
import { NodeLock } from '../../src/agent/lock.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { pod } from '../policy/builders.ts';
import { cluster, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

function agent(
  t: { teardown(fn: () => unknown): void },
  api: FakeApi,
  kernel: FakeKernel,
  options: Partial<AgentOptions>,
  parts: AgentParts = {},
  log = pino({ level: 'silent' }),
) {
  const a = new Agent(api, kernel, log, { ...TEST_AGENT_OPTIONS, ...options }, parts);
  t.teardown(() => a.stop());
  return a;
}

t.test('active: once, after the first sync has programmed the table, never again', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const kernel = new FakeKernel();
  const calls: boolean[] = [];
  // The agent logs the end of its start-up once, after the hook (the benchmark starts its samples then).
  const lines: { msg: string; hookMs?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const done = () => lines.filter((l) => l.msg === 'start-up done');
  const a: Agent = agent(
    t,
    api,
    kernel,
    {
      afterStartup: () => {
        calls.push(a.ready);
        t.equal(done().length, 0, 'not logged before the hook has run');
      },
    },
    {},
    log,
  );
  api.failLists = 503;
  await a.start();
  await new Promise((r) => setTimeout(r, 200));
  t.same(calls, [], 'not while the cluster cannot be listed');
  api.failLists = undefined;
  await until(() => a.ready, 'ready', scaledMs(10_000));
  await until(() => calls.length > 0, 'called', scaledMs(10_000));
  t.same(calls, [true], 'the first sync had programmed the table when it was called');
  const commits = kernel.fake.committed.length;
  api.put(P.pods, 'late', pod('x/late', { app: 'late' }, { ip: '10.244.1.99' }));
  await until(() => kernel.fake.committed.length > commits, 'the change is programmed', scaledMs(10_000));
  t.equal(calls.length, 1, 'once only');
  t.equal(done().length, 1, "one 'start-up done' line");
  t.type(done()[0]?.hookMs, 'number', 'with the time the hook took');
});

t.test('standby: once the cluster is listed, although it never syncs', async (t) => {
  const name = `tollgate-test-${process.pid}-startup`;
  const holder = new NodeLock('n1', name);
  t.ok(await holder.tryAcquire(), 'another agent holds the lock');
  t.teardown(() => holder.release());
  const api = new FakeApi();
  cluster(api);
  const kernel = new FakeKernel();
  let calls = 0;
  const a = agent(
    t,
    api,
    kernel,
    { lockRetryMs: 50, afterStartup: () => calls++ },
    { lock: new NodeLock('n1', name), kernelPodRanges: async () => ['10.244.1.0/24'] },
  );
  await a.start();
  t.ok(a.standby, 'standby');
  await until(() => calls === 1, 'called while standby', scaledMs(10_000));
  t.notOk(a.ready, 'without having synced');
  await holder.release();
  await until(() => a.ready, 'took over and synced', scaledMs(10_000));
  t.equal(calls, 1, 'not again after the take-over');
});
