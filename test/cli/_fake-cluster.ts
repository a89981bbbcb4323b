// A read-only Kubernetes API for CLI tests: serves the list endpoints tollgate reads (pods, namespaces,
// networkpolicies, nodes) from a scenario's objects over plain HTTP on 127.0.0.1, with a kubeconfig for it;
// optionally agent pods in tollgate-system whose logs (pods/log, text, followed or not) tests feed.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scenarioObjects } from '../../src/cli/scenario-objects.ts';

export interface FakeCluster {
  kubeconfig: string;
  /** Paths requested so far, with the query and the Authorization header seen. */
  requests: { path: string; query: URLSearchParams; authorization: string | undefined }[];
  /** Appends a line to an agent pod's log; open followers (follow=true) get it at once. */
  log(agent: string, line: string): void;
  close(): Promise<void>;
}

/** An agent pod of the fake cluster's tollgate-system namespace, with its log so far. */
export interface FakeAgent {
  name: string;
  node: string;
  lines?: string[];
  /** The status pods/log answers with instead of the log (e.g. 403). */
  logStatus?: number;
}

export async function fakeCluster(
  scenarioFile: string,
  token = 'tollgate-test-token',
  agents: FakeAgent[] = [],
): Promise<FakeCluster> {
  const objects = scenarioObjects(scenarioFile, undefined);
  const lists: Record<string, unknown[]> = {
    '/api/v1/pods': objects.pods,
    '/api/v1/namespaces': objects.namespaces,
    '/apis/networking.k8s.io/v1/networkpolicies': objects.policies,
    '/api/v1/nodes': objects.nodes,
    '/api/v1/namespaces/tollgate-system/pods': agents.map((a) => ({
      metadata: { name: a.name, namespace: 'tollgate-system' },
      spec: { nodeName: a.node },
    })),
  };
  const logs = new Map(agents.map((a) => [a.name, [...(a.lines ?? [])]]));
  const followers = new Map<string, Set<ServerResponse>>();
  const requests: FakeCluster['requests'] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    requests.push({ path, query: url.searchParams, authorization: req.headers.authorization });
    const items = lists[path];
    const logOf = /^\/api\/v1\/namespaces\/tollgate-system\/pods\/([^/]+)\/log$/.exec(path)?.[1];
    const agent = agents.find((a) => a.name === logOf);
    if (req.headers.authorization === `Bearer ${token}` && agent?.logStatus !== undefined) {
      res.writeHead(agent.logStatus, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          kind: 'Status',
          code: agent.logStatus,
          message: `pods "${agent.name}" is forbidden`,
        }),
      );
    } else if (req.headers.authorization === `Bearer ${token}` && agent) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (const l of logs.get(agent.name) ?? []) res.write(`${l}\n`);
      if (url.searchParams.get('follow') !== 'true') res.end();
      else {
        const set = followers.get(agent.name) ?? new Set();
        set.add(res);
        followers.set(agent.name, set);
        res.once('close', () => set.delete(res));
      }
    } else if (req.headers.authorization !== `Bearer ${token}`) {
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
    log(name, line) {
      logs.get(name)?.push(line);
      for (const res of followers.get(name) ?? []) res.write(`${line}\n`);
    },
    close: () =>
      new Promise((resolve) => {
        for (const set of followers.values()) for (const res of set) res.end();
        server.close(() => resolve());
      }),
  };
}
