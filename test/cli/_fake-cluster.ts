// A read-only Kubernetes API for CLI tests: serves the list endpoints tollgate reads (pods, namespaces,
// networkpolicies, nodes) from a scenario's objects over plain HTTP on 127.0.0.1, with a kubeconfig for it.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scenarioObjects } from '../../src/cli/scenario-objects.ts';

export interface FakeCluster {
  kubeconfig: string;
  /** Paths requested so far, with the Authorization header seen. */
  requests: { path: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

export async function fakeCluster(scenarioFile: string, token = 'tollgate-test-token'): Promise<FakeCluster> {
  const objects = scenarioObjects(scenarioFile, undefined);
  const lists: Record<string, unknown[]> = {
    '/api/v1/pods': objects.pods,
    '/api/v1/namespaces': objects.namespaces,
    '/apis/networking.k8s.io/v1/networkpolicies': objects.policies,
    '/api/v1/nodes': objects.nodes,
  };
  const requests: FakeCluster['requests'] = [];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ path, authorization: req.headers.authorization });
    const items = lists[path];
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"kind":"Status","code":401}');
    } else if (!items) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404}');
    } else {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ kind: 'List', metadata: { resourceVersion: '1' }, items }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-kubeconfig-'));
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: 'http://127.0.0.1:${port}', insecure-skip-tls-verify: true}
- name: elsewhere
  cluster: {server: 'http://127.0.0.1:9', insecure-skip-tls-verify: true}
users:
- name: tester
  user: {token: ${token}}
contexts:
- name: other
  context: {cluster: elsewhere, user: tester}
- name: fake
  context: {cluster: fake, user: tester}
current-context: fake
`,
  );
  return {
    kubeconfig,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
