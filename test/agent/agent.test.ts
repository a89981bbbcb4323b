// The agent loop on fakes: nothing is programmed before every kind is listed (an old table keeps
// enforcing), bursts are coalesced, readiness and metrics say what happened, a failed batch is retried.
import { pino } from 'pino';
import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { pod, policy } from '../policy/builders.ts';
import { cluster, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

const log = pino({ level: 'silent' });
function agent(api: FakeApi, programmer = new FakeKernel(), minSyncIntervalMs = 50) {
  const a = new Agent(api, programmer, log, { ...TEST_AGENT_OPTIONS, minSyncIntervalMs });
  return { a, programmer };
}

t.test('first sync only after every kind is listed, and it replaces the table', async (t) => {
  const api = new FakeApi();
  cluster(api);
  api.failLists = 503;
  const { a, programmer } = agent(api);
  t.teardown(() => a.stop());
  await a.start();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(programmer.fake.committed.length, 0, 'nothing programmed while the API is unreachable');
  t.notOk(a.ready);
  api.failLists = undefined;
  await until(() => a.ready, 'ready');
  t.equal(programmer.fake.committed.length, 1);
  t.match(
    programmer.fake.committed[0]!.text,
    /^add table inet tollgate\ndelete table inet tollgate\nadd table inet tollgate/,
  );
});

t.test('a burst of events becomes few syncs; the last state wins', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const { a, programmer } = agent(api, new FakeKernel(), 100);
  t.teardown(() => a.stop());
  await a.start();
  await until(() => a.ready, 'ready');
  const before = programmer.fake.committed.length;
  api.put(P.np, 'p', policy('x/p', { podSelector: { matchLabels: { app: 'a' } }, ingress: [] }));
  for (let i = 0; i < 50; i++)
    api.put(P.pods, `extra${i}`, pod(`x/extra${i}`, { app: 'z' }, { ip: `10.244.1.${100 + i}` }));
  await new Promise((r) => setTimeout(r, 20));
  await a.idle();
  const syncs = programmer.fake.committed.length - before;
  t.ok(syncs >= 1 && syncs <= 3, `${syncs} syncs for 51 events`);
  const text = programmer.fake.committed.map((x) => x.text).join('\n');
  t.match(text, /10\.244\.1\.149/, 'the last pod is programmed');
  const metrics = await a.metrics.registry.getSingleMetricAsString('tollgate_event_to_programmed_seconds');
  t.match(metrics, /tollgate_event_to_programmed_seconds_count [1-9]/);
});

t.test('a rejected batch is retried and the agent reports not ready meanwhile', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const programmer = new FakeKernel();
  const { a } = agent(api, programmer);
  t.teardown(() => a.stop());
  await a.start();
  await until(() => a.ready, 'ready');
  // Twice: the diff, and the program from the kernel's listing the reconciler tries at once after it.
  programmer.fake.failNext = 2;
  api.put(P.np, 'p', policy('x/p', { podSelector: {}, ingress: [] }));
  await until(() => !a.ready, 'not ready after the failure');
  await until(() => a.ready, 'ready again after the retry', 5000);
  t.match(programmer.fake.committed.at(-1)!.text, /add chain inet tollgate in-/);
  const errors = await a.metrics.registry.getSingleMetricAsString('tollgate_netlink_errors_total');
  t.match(errors, /tollgate_netlink_errors_total 1/);
});

t.test('an object that cannot be used is logged once and skipped; the rest stays enforced', async (t) => {
  const api = new FakeApi();
  cluster(api);
  const lines: { msg: string; problem?: string }[] = [];
  const capture = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const a = new Agent(api, new FakeKernel(), capture, TEST_AGENT_OPTIONS);
  t.teardown(() => a.stop());
  await a.start();
  await until(() => a.ready, 'ready');
  // No namespace: the API server never sends such a pod, and its key could not be tracked.
  api.put(P.pods, 'ghost', { ...pod('x/ghost', {}, { ip: '10.244.1.12' }), metadata: {} });
  api.put(P.np, 'deny', policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] }));
  await until(() => a.reconciler.current?.podChains.get('x/a')?.ingress !== undefined, 'policy applied');
  api.put(P.pods, 'ghost', { ...pod('x/ghost', {}, { ip: '10.244.1.12' }), metadata: {} }, 'MODIFIED');
  api.put(P.pods, 'c', pod('x/c', { app: 'c' }, { ip: '10.244.1.13' }));
  await until(() => a.reconciler.current?.podChains.has('x/c') === true, 'a later pod programmed');
  await a.idle();
  const warned = lines.filter((l) => l.problem?.includes('metadata.namespace: is required'));
  t.equal(warned.length, 1, 'logged once, with the field named');
  t.match(warned[0]!.problem, /^Pod ghost: metadata\.namespace/);
  t.same(
    [...a.reconciler.current!.podChains.keys()].sort(),
    ['x/a', 'x/b', 'x/c'],
    'the bad pod is skipped, every other pod is programmed',
  );
  t.ok(a.ready, 'the agent stays ready');
});
