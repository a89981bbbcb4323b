// The agent and ClusterNetworkPolicies before the compiler enforces them (semantics 20-24): ready without
// the CRD, notices it when installed later, feeds the policies to the state, reports invalid ones (log
// once with object and field, metric) and says in /readyz, without failing it, that they are seen but not
// programmed; a forbidden list (RBAC) is said too. Against the fake API and the fake kernel.
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

t.test('no CRD, then installed: seen, reported, not claimed as enforced', async (t) => {
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
  t.match(metrics, /tollgate_cluster_network_policies\{state="programmed"\} 0/);
  t.match(metrics, /tollgate_objects_watched\{kind="clusterPolicies"\} 2/);
  const ready = await get('/readyz');
  t.equal(ready.status, 200, 'readiness does not fail');
  t.equal(
    ready.body,
    'ok\nClusterNetworkPolicies: 2 seen, not yet programmed (NetworkPolicies only are enforced)\n',
  );
  t.equal(kernel.fake.committed.length, table, 'the table is unchanged: nothing claimed');

  // Another change: the warnings stay once each.
  api.put(CNPS, 'guard', { ...guard, spec: { ...guard.spec, priority: 11 } }, 'MODIFIED');
  const priority = () =>
    (a.store.reflectors.clusterPolicies.items.get('guard') as { priority?: number } | undefined)?.priority;
  await until(() => priority() === 11, 'modified', WAIT);
  await a.idle();
  const notProgrammed = lines.filter((l) => l.msg.includes('seen but not yet programmed'));
  t.equal(notProgrammed.length, 1, 'the not-programmed warning once');
  t.equal(notProgrammed[0]!.count, 2);
  const invalid = lines.filter((l) => l.problem?.startsWith('ClusterNetworkPolicy broken: spec.tier:'));
  t.equal(invalid.length, 1, 'the invalid policy logged once, with object and field');
  t.ok(
    lines.some((l) => l.msg.includes('clusterPolicies: listed now')),
    'the log says the kind is listed now',
  );

  // RBAC taken away: said in /readyz (not failing it) and the log.
  api.refuse.set(CNPS, 403);
  api.dropWatches();
  await until(() => a.store.reflectors.clusterPolicies.missing === 'forbidden', 'forbidden', WAIT);
  await until(() => lines.some((l) => l.msg.includes('forbidden; give the agent')), 'the warning', WAIT);
  t.same(await get('/readyz'), {
    status: 200,
    body: 'ok\nClusterNetworkPolicies: listing them is forbidden (RBAC); none are known\n',
  });
});
