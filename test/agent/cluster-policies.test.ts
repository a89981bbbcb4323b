// The agent and ClusterNetworkPolicies (semantics 20-24): ready without the CRD, notices it when installed
// later, feeds the policies to the state and programs them, reports invalid ones (log once with object and
// field, metric); a forbidden list (RBAC) fails readiness and keeps the last listed policies enforced.
// Against the fake API and the fake kernel.
import { pino } from 'pino';
import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import { WATCHED } from '../../src/k8s/store.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { cnp } from '../policy/cluster-builders.ts';
import { cluster, FakeKernel, TEST_AGENT_OPTIONS } from './_fixtures.ts';

const CNPS = WATCHED.clusterPolicies.path;
const WAIT = 20_000; // generous: the machine may be loaded
const guard = cnp('guard', {
  tier: 'Admin',
  priority: 10,
  subject: { namespaces: {} },
  ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: { team: 'z' } } }] }],
});
const broken = cnp('broken', { tier: 'Sideways', priority: 10, subject: { namespaces: {} } });

t.test('no CRD, then installed: seen, programmed, reported; forbidden: not ready, kept', async (t) => {
  const api = new FakeApi();
  cluster(api);
  api.refuse.set(CNPS, 404);
  const lines: { msg: string; problem?: string; count?: number }[] = [];
  const capture = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const kernel = new FakeKernel();
  const a = new Agent(api, kernel, capture, {
    ...TEST_AGENT_OPTIONS,
    metricsAddr: '127.0.0.1:0',
    missingRecheckMs: 50,
  });
  t.teardown(() => a.stop());
  await a.start();
  await until(() => a.ready, 'ready without the CRD', WAIT);
  const get = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${a.httpAddress!.port}${path}`);
    return { status: r.status, body: await r.text() };
  };
  t.same(await get('/readyz'), { status: 200, body: 'ok\n' }, 'nothing to say without the CRD');
  const seen = async () =>
    /tollgate_cluster_network_policies\{state="seen"\} (\d+)/.exec((await get('/metrics')).body)?.[1];
  t.equal(await seen(), '0');
  const table = kernel.fake.committed.length;

  api.refuse.delete(CNPS);
  api.put(CNPS, 'guard', guard);
  api.put(CNPS, 'broken', broken);
  let count: string | undefined;
  for (const deadline = Date.now() + WAIT; Date.now() < deadline && count !== '2'; ) {
    count = await seen();
    if (count !== '2') await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.equal(count, '2', 'both seen once the CRD is installed');
  t.equal(a.store.reflectors.clusterPolicies.missing, undefined);
  await a.idle();
  const metrics = (await get('/metrics')).body;
  t.match(metrics, /tollgate_cluster_network_policies\{state="invalid"\} 1/);
  t.match(metrics, /tollgate_cluster_network_policies\{state="programmed"\} 2/);
  t.match(metrics, /tollgate_objects_watched\{kind="clusterPolicies"\} 2/);
  const ready = await get('/readyz');
  t.same(ready, { status: 200, body: 'ok\n' }, 'ready, nothing to say');
  t.ok(kernel.fake.committed.length > table, 'the tiers were programmed');

  // Another change: the warnings stay once each.
  api.put(CNPS, 'guard', { ...guard, spec: { ...guard.spec, priority: 11 } }, 'MODIFIED');
  const priority = () =>
    (a.store.reflectors.clusterPolicies.items.get('guard') as { priority?: number } | undefined)?.priority;
  await until(() => priority() === 11, 'modified', WAIT);
  await a.idle();
  t.notOk(
    lines.some((l) => l.msg.includes('not yet programmed')),
    'no claim that they are not programmed',
  );
  const invalid = lines.filter((l) => l.problem?.startsWith('ClusterNetworkPolicy broken: spec.tier:'));
  t.equal(invalid.length, 1, 'the invalid policy logged once, with object and field');
  t.ok(
    lines.some((l) => l.msg.includes('clusterPolicies: listed now')),
    'the log says the kind is listed now',
  );

  // RBAC taken away: not ready, said in /readyz and the log; the last listed policies stay enforced.
  api.refuse.set(CNPS, 403);
  api.dropWatches();
  await until(() => a.store.reflectors.clusterPolicies.missing === 'forbidden', 'forbidden', WAIT);
  await until(() => lines.some((l) => l.msg.includes('forbidden; give the agent')), 'the warning', WAIT);
  await until(() => !a.ready, 'not ready', WAIT);
  t.same(await get('/readyz'), {
    status: 503,
    body: 'ClusterNetworkPolicies: listing them is forbidden (RBAC); enforcing the 2 last listed\n',
  });
  t.match((await get('/metrics')).body, /tollgate_cluster_network_policies\{state="programmed"\} 2/);
});
