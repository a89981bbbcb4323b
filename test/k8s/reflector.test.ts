// The watch layer never stalls silently: paged lists, events applied in order, relist on 410 Gone,
// backoff after errors, the watchdog restarting a quiet watch, periodic relist. Against a fake API here;
// the API-server lab tests do the same against a real kube-apiserver.
import { pino } from 'pino';
import t from 'tap';
import { Reflector } from '../../src/k8s/reflector.ts';
import { trimPod } from '../../src/k8s/trim.ts';
import { FakeApi, until } from './fake-api.ts';

const log = pino({ level: 'silent' });
const PODS = '/api/v1/pods';
const podObj = (ns: string, labels: Record<string, string> = {}) => ({
  metadata: { namespace: ns, labels, uid: 'u', managedFields: [{ huge: true }] },
  spec: {
    nodeName: 'n1',
    containers: [{ name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 80 }] }],
  },
  status: {
    phase: 'Running',
    podIP: '10.244.1.5',
    podIPs: [{ ip: '10.244.1.5' }],
    conditions: [{ type: 'Ready' }],
  },
});

function reflector(api: FakeApi, options: { quietMs?: number; resyncMs?: number } = {}) {
  const changes: string[] = [];
  const r = new Reflector(
    api,
    { kind: 'pods', path: PODS, trim: trimPod, pageSize: 2, backoffMinMs: 10, backoffMaxMs: 50, ...options },
    log,
    (k) => changes.push(k),
  );
  return { r, changes };
}

t.test('paged list, then watch events add, modify and delete; objects are trimmed', async (t) => {
  const api = new FakeApi();
  for (const n of ['a', 'b', 'c', 'd', 'e']) api.put(PODS, n, podObj('x'));
  const { r, changes } = reflector(api);
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced && r.watching, 'synced');
  t.equal(r.items.size, 5, 'all pages listed (page size 2)');
  t.ok(changes.length >= 1);
  const a = r.items.get('x/a')!;
  t.notOk('uid' in (a.metadata as object) || 'managedFields' in (a.metadata as object), 'metadata trimmed');
  t.notOk('conditions' in (a.status as object), 'status trimmed');
  api.put(PODS, 'f', podObj('x', { new: 'yes' }));
  api.put(PODS, 'a', podObj('x', { changed: 'yes' }), 'MODIFIED');
  api.remove(PODS, 'b');
  t.equal(r.items.size, 5);
  t.same((r.items.get('x/a')!.metadata as { labels: object }).labels, { changed: 'yes' });
  t.notOk(r.items.has('x/b'));
});

t.test('410 Gone on the watch: relist, and objects deleted meanwhile disappear', async (t) => {
  const api = new FakeApi();
  api.put(PODS, 'a', podObj('x'));
  api.put(PODS, 'b', podObj('x'));
  const { r } = reflector(api);
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced && r.watching, 'synced');
  const listsBefore = api.lists;
  // The server forgets our resourceVersion while we are disconnected; b goes away unseen.
  api.goneOnWatch = true;
  api.dropWatches();
  api.objects.get(PODS)!.delete('b');
  await until(() => api.lists > listsBefore, 'a relist');
  api.goneOnWatch = false;
  api.dropWatches();
  await until(() => r.watching && !r.items.has('x/b'), 'watch back after relist');
  t.same([...r.items.keys()], ['x/a']);
  t.ok(r.stats.watchRestarts >= 1);
});

t.test('errors are retried with backoff until the API returns', async (t) => {
  const api = new FakeApi();
  api.put(PODS, 'a', podObj('x'));
  api.failLists = 503;
  const { r } = reflector(api);
  t.teardown(() => r.stop());
  r.start();
  await new Promise((res) => setTimeout(res, 150));
  t.notOk(r.synced, 'not synced while the API fails');
  t.ok(r.stats.watchRestarts >= 2, `${r.stats.watchRestarts} retries in 150 ms`);
  api.failLists = undefined;
  await until(() => r.synced && r.watching, 'recovered');
  t.equal(r.items.size, 1);
});

t.test('a server-side close resumes the watch from the last resourceVersion without a relist', async (t) => {
  const api = new FakeApi();
  api.put(PODS, 'a', podObj('x'));
  const { r } = reflector(api);
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced && r.watching, 'synced');
  const lists = api.lists;
  api.dropWatches();
  await until(() => api.watchCalls >= 2 && r.watching, 'rewatch');
  t.equal(api.lists, lists, 'no relist needed');
  api.put(PODS, 'z', podObj('y'));
  t.ok(r.items.has('y/z'), 'events flow on the new watch');
});

t.test('the watchdog restarts a watch that went quiet', async (t) => {
  const api = new FakeApi();
  const { r } = reflector(api, { quietMs: 100 });
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced && r.watching, 'synced');
  const calls = api.watchCalls;
  await until(() => api.watchCalls > calls, 'watchdog restart', 2000);
  t.ok(r.stats.watchRestarts >= 1);
});

t.test('periodic relist repairs anything a watch missed', async (t) => {
  const api = new FakeApi();
  api.put(PODS, 'a', podObj('x'));
  const { r } = reflector(api, { resyncMs: 150 });
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced && r.watching, 'synced');
  // Changed behind the watch's back (no event delivered).
  api.objects.get(PODS)!.set('ghost', { metadata: { name: 'ghost', namespace: 'x' } });
  await until(() => r.items.has('x/ghost'), 'relist picks it up', 2000);
  t.pass('relisted');
});

t.test(
  'changed keys are reported once; a relist keeps unchanged objects and reports only differences',
  async (t) => {
    const api = new FakeApi();
    for (const n of ['a', 'b', 'c']) api.put(PODS, n, podObj('x'));
    const { r } = reflector(api, { resyncMs: 3_600_000 });
    t.teardown(() => r.stop());
    r.start();
    await until(() => r.synced && r.watching, 'synced');
    t.same([...r.takeChanges()].sort(), ['x/a', 'x/b', 'x/c'], 'the first list reports every key');
    t.same([...r.takeChanges()], [], 'handed over: nothing twice');
    api.put(PODS, 'd', podObj('x'));
    api.put(PODS, 'a', podObj('x', { changed: 'yes' }), 'MODIFIED');
    api.remove(PODS, 'b');
    t.same([...r.takeChanges()].sort(), ['x/a', 'x/b', 'x/d'], 'added, modified and deleted keys');

    // Behind the watch's back (no events): c is modified, d deleted, e added. The relist must report
    // exactly those, and keep the very object of a (its resourceVersion is unchanged).
    const a = r.items.get('x/a');
    const bucket = api.objects.get(PODS)!;
    bucket.set('c', {
      ...podObj('x', { v: '2' }),
      metadata: { name: 'c', namespace: 'x', labels: { v: '2' }, resourceVersion: '900' },
    });
    bucket.delete('d');
    bucket.set('e', { ...podObj('x'), metadata: { name: 'e', namespace: 'x', resourceVersion: '901' } });
    r.restart(true);
    await until(() => r.watching && r.items.has('x/e'), 'relisted');
    t.equal(r.items.get('x/a'), a, 'an unchanged object is kept as it was (same object)');
    t.same([...r.takeChanges()].sort(), ['x/c', 'x/d', 'x/e'], 'only what differs is reported');
    t.same((r.items.get('x/c')!.metadata as { labels: object }).labels, { v: '2' });
  },
);
