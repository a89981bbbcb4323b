// The Helm chart against a real kube-apiserver (the API lab): `helm install --create-namespace`, an upgrade
// that changes values, the uninstall mode (cleanup.enabled) and `helm uninstall`, as an operator runs them;
// and why the chart leaves the Namespace to --create-namespace. No kubelet: objects, not pods, are checked.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { nodeSpec } from '../../src/lab/addresses.ts';
import { ApiServer } from '../../src/lab/apiserver.ts';
import { Lab } from '../../src/lab/lab.ts';
import { requireBinaries, skipUnlessRoot } from '../lab-api/_helpers.ts';
import { REPO } from './_helpers.ts';

// biome-ignore lint/suspicious/noExplicitAny: API objects are untyped JSON; the assertions check the shape.
type Obj = any;

const CHART = join(REPO, 'charts/tollgate');
const NS = 'tollgate-helm';

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  t.setTimeout(1_800_000);
  const tool = spawnSync(join(REPO, 'scripts/go-tool.sh'), ['helm'], {
    encoding: 'utf8',
    timeout: 1_500_000,
  });
  const helm = tool.stdout.trim();
  if (tool.status !== 0 || helm === '')
    t.fail(`no helm binary: scripts/go-tool.sh helm failed (status ${tool.status})`, { stderr: tool.stderr });
  else {
    // The lab's API server wants only the agent's service account (for its token); the chart brings the rest,
    // and Helm refuses to take over objects it did not create, so the lab must not apply daemonset/rbac.yaml.
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-helm-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const sa = join(dir, 'sa.yaml');
    writeFileSync(
      sa,
      [
        'apiVersion: v1',
        'kind: Namespace',
        'metadata: {name: tollgate-system}',
        '---',
        'apiVersion: v1',
        'kind: ServiceAccount',
        'metadata: {name: tollgate, namespace: tollgate-system}',
        '',
      ].join('\n'),
    );
    const lab = await Lab.up({ nodes: [nodeSpec(1)], pods: [], hosts: [] });
    t.teardown(() => lab.down());
    const api = await ApiServer.start(lab, { rbacManifest: sa });
    t.teardown(() => api.stop());

    // helm runs where the API server's address is routed: inside the lab's namespace.
    const h = (...args: string[]) =>
      spawnSync('ip', ['netns', 'exec', api.ns, helm, '--kubeconfig', api.adminKubeconfig, ...args], {
        encoding: 'utf8',
        timeout: 300_000,
      });
    const upgrade = (...set: string[]) =>
      h('upgrade', 'tollgate', CHART, '-n', NS, '--reuse-values', ...set.flatMap((v) => ['--set', v]));
    const find = async (path: string): Promise<Obj> => await api.adminClient.find(path);
    const ds = (name: string) => find(`/apis/apps/v1/namespaces/${NS}/daemonsets/${name}`);
    const agentOf = (obj: Obj) => obj?.spec?.template?.spec?.containers?.[0];

    t.test(
      'helm install --create-namespace creates daemonset/ objects in the release namespace',
      async (t) => {
        const r = h('install', 'tollgate', CHART, '-n', NS, '--create-namespace');
        t.equal(r.status, 0, 'helm install succeeds', { stderr: r.stderr });
        const agent = agentOf(await ds('tollgate'));
        t.equal(agent?.image, 'tollgate:0.1.0', 'the agent DaemonSet, with the default image');
        t.ok(await find(`/api/v1/namespaces/${NS}/serviceaccounts/tollgate`), 'its ServiceAccount');
        const binding = await find('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/tollgate');
        t.same(
          (binding?.subjects as Obj[])?.map((s) => `${s.namespace}/${s.name}`),
          [`${NS}/tollgate`],
          'the ClusterRoleBinding names the release namespace',
        );
        t.match(r.stdout, /rollout status ds\/tollgate/, 'the notes say how to wait for the rollout');
      },
    );

    t.test('helm upgrade with other values changes the DaemonSet', async (t) => {
      const r = upgrade('image.tag=0.2.0', 'logLevel=debug');
      t.equal(r.status, 0, 'helm upgrade succeeds', { stderr: r.stderr });
      const agent = agentOf(await ds('tollgate'));
      t.equal(agent?.image, 'tollgate:0.2.0', 'the new image');
      t.ok(agent?.args?.includes('--log-level=debug'), 'the new log level', { args: agent?.args });
    });

    t.test(
      'cleanup.enabled replaces the agent with the cleanup DaemonSet; helm uninstall removes all',
      async (t) => {
        const r = upgrade('cleanup.enabled=true');
        t.equal(r.status, 0, 'helm upgrade to the uninstall mode succeeds', { stderr: r.stderr });
        t.equal(await ds('tollgate'), undefined, 'no agent DaemonSet');
        const cleanup = await ds('tollgate-cleanup');
        t.same(
          (cleanup?.spec?.template?.spec?.initContainers as Obj[])?.map((c) => [c.image, c.args]),
          [['tollgate:0.2.0', ['cleanup']]],
          'the cleanup DaemonSet runs `tollgate cleanup` from the same image',
        );
        const u = h('uninstall', 'tollgate', '-n', NS);
        t.equal(u.status, 0, 'helm uninstall succeeds', { stderr: u.stderr });
        t.equal(await ds('tollgate-cleanup'), undefined, 'the cleanup DaemonSet is gone');
        t.equal(
          await find('/apis/rbac.authorization.k8s.io/v1/clusterroles/tollgate'),
          undefined,
          'the ClusterRole is gone',
        );
        t.ok(
          await find(`/api/v1/namespaces/${NS}`),
          'the namespace stays (Helm created it outside the release)',
        );
      },
    );

    t.test('why createNamespace defaults to false', async (t) => {
      const r = h('install', 'tollgate', CHART, '-n', 'tollgate-helm-2', '--set', 'createNamespace=true');
      t.not(r.status, 0, 'createNamespace=true without --create-namespace fails');
      t.match(
        r.stderr,
        /namespaces "tollgate-helm-2" not found/,
        'Helm needs the namespace before the chart',
        {
          stderr: r.stderr,
        },
      );
    });
  }
}
