// The shipped manifests against a real API server: every document under daemonset/ passes server-side
// dry-run (validation and admission, nothing stored), and the service account of daemonset/rbac.yaml may
// get/list/watch exactly what the agent reads and nothing it does not need.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { nodeSpec } from '../../src/lab/addresses.ts';
import { ApiServer } from '../../src/lab/apiserver.ts';
import { Lab } from '../../src/lab/lab.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

const manifestDir = resolve(import.meta.dirname, '../../daemonset');
// Every manifest, also in subdirectories (daemonset/cleanup/): what `kubectl apply -R -f daemonset/` sends.
const manifests = readdirSync(manifestDir, { recursive: true })
  .map(String)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  const lab = await Lab.up({ nodes: [nodeSpec(1)], pods: [], hosts: [] });
  t.teardown(() => lab.down());
  const api = await ApiServer.start(lab);
  t.teardown(() => api.stop());
  t.comment(`kube-apiserver ready in ${api.readyMs} ms, started (RBAC, token) in ${api.startMs} ms`);
  t.ok(api.startMs < 30_000, `start-up took ${api.startMs} ms`);

  t.ok(manifests.includes('rbac.yaml'), `manifests: ${manifests.join(', ')}`);
  for (const file of manifests) {
    t.test(`${file} passes --dry-run=server`, async (t) => {
      const out = await api.adminClient.applyManifest(readFileSync(join(manifestDir, file), 'utf8'), {
        dryRun: true,
      });
      t.ok(
        out.length > 0,
        `${out.length} objects: ${out.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`,
      );
    });
  }

  t.test('dry-run stores nothing', async (t) => {
    const r = await api.adminClient.applyManifest(
      'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: dry-run-only, namespace: tollgate-system}\n',
      { dryRun: true },
    );
    t.equal(r.length, 1);
    t.equal(
      await api.adminClient.find('/api/v1/namespaces/tollgate-system/serviceaccounts/dry-run-only'),
      undefined,
    );
  });

  t.test('dry-run rejects an invalid object', async (t) => {
    await t.rejects(
      api.adminClient.applyManifest(
        'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Bad_Name, namespace: default}\nspec: {podSelector: {}}\n',
        { dryRun: true },
      ),
      { code: 'E_APISERVER_HTTP', status: 422 },
    );
  });

  t.test('the tollgate service account may read what the agent watches, nothing more', async (t) => {
    const agent = api.clientFor(api.agentToken);
    const can = async (verb: string, resource: string, group = '', namespace?: string) => {
      const review = await agent.call('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { verb, resource, group, ...(namespace ? { namespace } : {}) } },
      });
      return (review.status as { allowed?: boolean }).allowed === true;
    };
    for (const [resource, group] of [
      ['pods', ''],
      ['namespaces', ''],
      ['nodes', ''],
      ['networkpolicies', 'networking.k8s.io'],
      ['clusternetworkpolicies', 'policy.networking.k8s.io'],
    ] as const) {
      for (const verb of ['get', 'list', 'watch'])
        t.ok(await can(verb, resource, group), `${verb} ${resource}`);
      for (const verb of ['create', 'update', 'patch', 'delete'])
        t.notOk(await can(verb, resource, group), `not ${verb} ${resource}`);
    }
    for (const [verb, resource] of [
      ['list', 'secrets'],
      ['get', 'configmaps'],
      ['list', 'services'],
      ['create', 'serviceaccounts/token'],
    ] as const)
      t.notOk(await can(verb, resource, '', 'tollgate-system'), `not ${verb} ${resource}`);
    // And the token really works for a list (the agents' kubeconfig carries it, CA pinned).
    const pods = await agent.get('/api/v1/pods?limit=1');
    t.equal(pods.kind, 'PodList');
    await t.rejects(agent.get('/api/v1/secrets'), { code: 'E_APISERVER_HTTP', status: 403 });
  });

  t.test('restart keeps the data and the token', async (t) => {
    const started = performance.now();
    await api.restart();
    t.comment(`restart: ${Math.round(performance.now() - started)} ms`);
    const sa = await api.adminClient.get('/api/v1/namespaces/tollgate-system/serviceaccounts/tollgate');
    t.equal(sa.kind, 'ServiceAccount');
    t.equal((await api.clientFor(api.agentToken).get('/api/v1/nodes')).kind, 'NodeList');
  });
}
