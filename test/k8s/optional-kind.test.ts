// An optional kind (ClusterNetworkPolicy, a CRD a cluster may lack): a 404 or 403 counts as listed and
// empty and says why, it is seen once installed (the re-check period), and emptied when uninstalled;
// a required kind on a 404 stays unsynced as before. Against the fake API.
import { pino } from 'pino';
import t from 'tap';
import { Reflector } from '../../src/k8s/reflector.ts';
import { ClusterStore, listCluster, WATCHED } from '../../src/k8s/store.ts';
import { trimClusterPolicy } from '../../src/k8s/trim.ts';
import { FakeApi, until } from './fake-api.ts';

const log = pino({ level: 'silent' });
const CNPS = WATCHED.clusterPolicies.path;
const WAIT = 15_000; // generous: the machine may be loaded
const cnp = { apiVersion: 'policy.networking.k8s.io/v1alpha2', spec: { tier: 'Admin', priority: 1 } };

function reflector(api: FakeApi, missingRecheckMs: number | undefined) {
  const changes: string[] = [];
  const r = new Reflector(
    api,
    {
      kind: 'clusterPolicies',
      path: CNPS,
      trim: trimClusterPolicy,
      backoffMinMs: 10,
      backoffMaxMs: 50,
      ...(missingRecheckMs === undefined ? {} : { missingRecheckMs }),
    },
    log,
    (k) => changes.push(k),
  );
  return { r, changes };
}

t.test('not installed: listed and empty; installed later: seen and watched', async (t) => {
  const api = new FakeApi();
  api.refuse.set(CNPS, 404);
  const { r } = reflector(api, 50);
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced, 'synced while not served', WAIT);
  t.equal(r.missing, 'not served');
  t.ok(r.live, 'live: nothing to watch');
  t.notOk(r.watching);
  t.equal(r.items.size, 0);
  // The CRD is installed and a policy created: the next re-check lists it, then the watch takes over.
  api.refuse.delete(CNPS);
  api.put(CNPS, 'guard', cnp);
  await until(() => r.watching && r.items.has('guard'), 'listed once installed', WAIT);
  t.equal(r.missing, undefined);
  t.same(r.items.get('guard'), {
    apiVersion: 'policy.networking.k8s.io/v1alpha2',
    metadata: {
      name: 'guard',
      resourceVersion: (r.items.get('guard') as { metadata: { resourceVersion: string } }).metadata
        .resourceVersion,
    },
    spec: cnp.spec,
  });
  api.put(CNPS, 'other', cnp);
  await until(() => r.items.has('other'), 'a watch event', WAIT);
  r.takeChanges();
  // Uninstalled: the watch ends, the relist is refused; what was there is reported gone.
  api.refuse.set(CNPS, 404);
  api.dropWatches();
  await until(() => r.missing === 'not served', 'missing again', WAIT);
  t.equal(r.items.size, 0);
  t.same([...r.takeChanges()].sort(), ['guard', 'other'], 'both reported removed');
});

t.test('forbidden (RBAC not updated): listed and empty, the reason is forbidden', async (t) => {
  const api = new FakeApi();
  api.refuse.set(CNPS, 403);
  const { r, changes } = reflector(api, 20);
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced, 'synced', WAIT);
  t.equal(r.missing, 'forbidden');
  // Re-checks that find nothing new do not wake the consumer.
  await until(() => api.refusals >= 4, 'three re-checks', WAIT);
  t.equal(changes.length, 1, 'one change notification, not one per re-check');
});

t.test('a required kind on a 404 is an error: never synced', async (t) => {
  const api = new FakeApi();
  api.refuse.set(CNPS, 404);
  const { r } = reflector(api, undefined);
  t.teardown(() => r.stop());
  r.start();
  await until(() => api.refusals >= 3, 'retried with backoff', WAIT);
  t.equal(r.missing, undefined);
  t.notOk(r.synced);
  t.notOk(r.live);
});

t.test('the store is synced and live without the CRD', async (t) => {
  const api = new FakeApi();
  api.refuse.set(CNPS, 404);
  const store = new ClusterStore(api, log, { missingRecheckMs: 50 });
  t.teardown(() => store.stop());
  store.start();
  await until(() => store.synced && store.live, 'synced and live', WAIT);
  t.equal(store.reflectors.clusterPolicies.missing, 'not served');
});

t.test('listCluster: ClusterNetworkPolicies when served, none on a 404, an error on a 403', async (t) => {
  const api = new FakeApi();
  api.put(CNPS, 'guard', cnp);
  const listed = await listCluster(api);
  t.same(
    listed.clusterPolicies.map((o) => (o.metadata as { name: string }).name),
    ['guard'],
  );
  api.refuse.set(CNPS, 404);
  t.same((await listCluster(api)).clusterPolicies, [], 'not installed: none');
  api.refuse.set(CNPS, 403);
  await t.rejects(
    listCluster(api),
    { code: 'E_K8S_HTTP', status: 403 },
    'forbidden: never explained without them',
  );
});
