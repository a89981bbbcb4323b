// The in-cluster client (node:https, service-account files, no @kubernetes/client-node) against a real
// kube-apiserver: it runs in the lab's router namespace with KUBERNETES_SERVICE_HOST/PORT and a fake
// service-account directory holding the `tollgate` service account's token and the lab CA. Covers token
// rotation, paged lists, refused requests and watches, a watch event, and abort.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { inClusterConfig } from '../../src/k8s/client.ts';
import { nodeSpec, ROUTER } from '../../src/lab/addresses.ts';
import { ApiServer } from '../../src/lab/apiserver.ts';
import { inNamespace } from '../../src/lab/exec.ts';
import { Lab } from '../../src/lab/lab.ts';
import { requireBinaries, skipUnlessRoot } from '../lab-api/_helpers.ts';

const CHILD = join(import.meta.dirname, '_incluster-child.ts');

t.test('configuration errors name what is missing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-sa-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => inClusterConfig({ dir, env: {} }), {
    code: 'E_K8S_CONFIG',
    message: /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/,
  });
  const env = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };
  t.throws(() => inClusterConfig({ dir, env }), { code: 'E_K8S_CONFIG', message: /token \(.*\/token\)/ });
  writeFileSync(join(dir, 'token'), 'abc\n');
  t.throws(() => inClusterConfig({ dir, env }), { code: 'E_K8S_CONFIG', message: /CA certificate/ });
  writeFileSync(join(dir, 'ca.crt'), '');
  const config = inClusterConfig({ dir, env });
  t.equal(config.server, 'https://[fd00::1]:443', 'an IPv6 service host is bracketed');
  t.same((await config.requestOptions()).headers, { authorization: 'Bearer abc' });
  t.throws(() => inClusterConfig({ dir, env: { ...env, KUBERNETES_SERVICE_PORT: 'https' } }), {
    code: 'E_K8S_CONFIG',
  });
});

if (skipUnlessRoot) t.comment(`API part skipped: ${skipUnlessRoot}`);
else if (await requireBinaries(t)) {
  const lab = await Lab.up({ nodes: [nodeSpec(1)], pods: [], hosts: [] });
  t.teardown(() => lab.down());
  const api = await ApiServer.start(lab);
  t.teardown(() => api.stop());
  const ca = Buffer.from(
    /certificate-authority-data: (\S+)\}/.exec(readFileSync(api.agentKubeconfig, 'utf8'))![1]!,
    'base64',
  ).toString();

  t.test('in-cluster client against kube-apiserver', async (t) => {
    const sa = mkdtempSync(join(tmpdir(), 'tollgate-sa-'));
    t.teardown(() => rmSync(sa, { recursive: true, force: true }));
    writeFileSync(join(sa, 'token'), 'not-a-valid-token');
    writeFileSync(join(sa, 'ca.crt'), ca);
    writeFileSync(join(sa, 'namespace'), 'tollgate-system');
    const [file, ...args] = inNamespace(lab.networkNs, [process.execPath, CHILD]);
    const child = spawn(file!, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        SA_DIR: sa,
        GOOD_TOKEN: api.agentToken,
        KUBERNETES_SERVICE_HOST: ROUTER.nodeNet4,
        KUBERNETES_SERVICE_PORT: '6443',
      },
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    t.teardown(() => {
      clearTimeout(killer);
      child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c;
    });
    const steps = new Map<string, Record<string, unknown>>();
    const events: { type: string; name: string }[] = [];
    for await (const line of createInterface({ input: child.stdout! })) {
      const o = JSON.parse(line) as Record<string, unknown> & { step: string };
      if (o.step === 'event') events.push(o as unknown as { type: string; name: string });
      else steps.set(o.step, o);
      if (o.step === 'watching') {
        await api.adminClient.call('POST', '/api/v1/namespaces', {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name: 'incluster-probe' },
        });
        const deadline = Date.now() + 10_000;
        while (!events.some((e) => e.name === 'incluster-probe') && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        child.stdin!.write('next\n');
      }
    }
    t.equal(stderr, '', 'nothing on stderr');
    t.equal(steps.get('server')?.server, `https://${ROUTER.nodeNet4}:6443`);
    t.match(
      steps.get('bad-token'),
      { error: { code: 'E_K8S_HTTP', status: 401, message: /^GET \/api\/v1\/namespaces: 401 / } },
      'a wrong token is refused with the status and the path',
    );
    const list = steps.get('list') as { names: string[]; pages: number; rv: string } | undefined;
    t.ok(list, 'the rotated token file was read again');
    for (const n of ['default', 'kube-system', 'tollgate-system'])
      t.ok(list?.names.includes(n), `the list holds ${n}`);
    t.equal(list?.pages, list?.names.length, 'one namespace per page (limit/continue)');
    t.match(
      steps.get('forbidden'),
      { error: { code: 'E_K8S_HTTP', status: 403, message: /^GET \/api\/v1\/secrets: 403 .*forbidden/ } },
      'a refused request names the path and carries the API message',
    );
    t.same(
      events.filter((e) => e.name === 'incluster-probe'),
      [{ step: 'event', type: 'ADDED', name: 'incluster-probe' }],
      'the watch delivered the new namespace',
    );
    t.match(steps.get('aborted'), { error: { name: 'AbortError' } }, 'abort ends the watch with AbortError');
    t.match(
      steps.get('watch-refused'),
      {
        error: {
          code: 'E_K8S_HTTP',
          status: 403,
          message: /^GET \/api\/v1\/secrets \(watch\): 403 .*forbidden/,
        },
      },
      'a refused watch ends with a WatchError carrying the status (410 takes this path as E_K8S_GONE)',
    );
  });
}
