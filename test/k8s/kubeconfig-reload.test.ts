// Issue 13 (small): a --kubeconfig agent re-reads its credentials when the file changes, as the in-cluster
// client re-reads its token. The real @kubernetes/client-node parses the real files here; the agent-level
// proof against a real API server is in test/lab-api/self-healing-direct.test.ts.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { kubeconfigConfig } from '../../src/k8s/client.ts';

const kubeconfig = (token: string, server = 'https://203.0.113.1:6443') =>
  [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- {name: c, cluster: {server: '${server}', insecure-skip-tls-verify: true}}`,
    'users:',
    `- {name: u, user: {token: '${token}'}}`,
    'contexts:',
    '- {name: x, context: {cluster: c, user: u}}',
    'current-context: x',
    '',
  ].join('\n');

/** What the next request would send as its Authorization header. */
async function authorization(config: Awaited<ReturnType<typeof kubeconfigConfig>>): Promise<unknown> {
  const headers = (await config.requestOptions()).headers as Record<string, unknown> | undefined;
  return headers?.Authorization ?? headers?.authorization;
}

t.test('a changed kubeconfig file gives the next request its new credentials', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  writeFileSync(file, kubeconfig('first'));
  const config = await kubeconfigConfig(file, { reloadCheckMs: 0 });
  t.equal(await authorization(config), 'Bearer first');

  // Rotated the way secrets and kubelet do it: a new file renamed over the old one.
  writeFileSync(join(dir, 'next'), kubeconfig('second'));
  renameSync(join(dir, 'next'), file);
  t.equal(await authorization(config), 'Bearer second', 'the rotated token is used without a restart');

  writeFileSync(file, 'apiVersion: v1\nkind: Config\nusers: [');
  t.equal(
    await authorization(config),
    'Bearer second',
    'a half-written file keeps the last good credentials',
  );
  rmSync(file);
  t.equal(await authorization(config), 'Bearer second', 'so does a removed file');
  writeFileSync(file, kubeconfig('third'));
  t.equal(await authorization(config), 'Bearer third', 'and the next good file is taken');
  t.equal(config.server, 'https://203.0.113.1:6443', 'the server stays the one of the start');
});

t.test('the file is looked at no more often than reloadCheckMs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  writeFileSync(file, kubeconfig('first'));
  const config = await kubeconfigConfig(file, { reloadCheckMs: 60_000 });
  writeFileSync(file, kubeconfig('second'));
  t.equal(await authorization(config), 'Bearer first', 'within the interval the loaded one is kept');
});
