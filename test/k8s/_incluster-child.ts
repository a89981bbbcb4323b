// Runs inside a lab's network namespace for test/k8s/client-incluster.test.ts: the in-cluster ApiClient
// (service-account directory SA_DIR, KUBERNETES_SERVICE_HOST/PORT) against the lab's real kube-apiserver.
// Prints one JSON line per step; waits for a line on stdin where the test must act (create a namespace).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ApiClient, inClusterConfig, WatchError } from '../../src/k8s/client.ts';

const dir = process.env.SA_DIR!;
const goodToken = process.env.GOOD_TOKEN!;
const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const describe = (e: unknown) =>
  e instanceof WatchError
    ? { code: e.code, status: e.status, message: e.message }
    : { name: (e as Error)?.name, message: (e as Error)?.message };

// The token file starts with a wrong token: the first request is refused, the rotated file is picked up.
const client = new ApiClient(inClusterConfig({ dir, tokenRefreshMs: 100 }));
out({ step: 'server', server: client.server });
try {
  await client.listPage('/api/v1/namespaces', { limit: 10 });
  out({ step: 'bad-token', ok: true });
} catch (error) {
  out({ step: 'bad-token', error: describe(error) });
}
writeFileSync(join(dir, 'token'), goodToken);
await new Promise((r) => setTimeout(r, 150));

// Paged list, one item per page.
const names: string[] = [];
let cont: string | undefined;
let rv = '';
let pages = 0;
do {
  const page = await client.listPage('/api/v1/namespaces', { limit: 1, ...(cont ? { continue: cont } : {}) });
  pages++;
  for (const item of page.items) names.push(String((item.metadata as { name: string }).name));
  cont = page.continue;
  rv = page.resourceVersion;
} while (cont);
out({ step: 'list', names, pages, rv });

// Forbidden: the service account may not read secrets.
try {
  await client.listPage('/api/v1/secrets', { limit: 1 });
  out({ step: 'forbidden', ok: true });
} catch (error) {
  out({ step: 'forbidden', error: describe(error) });
}

// A watch from the list's resourceVersion sees the namespace the test creates.
const events: { type: string; name: string }[] = [];
let done: (e: unknown) => void = () => {};
const ended = new Promise<unknown>((r) => {
  done = r;
});
const abort = await client.watch(
  '/api/v1/namespaces',
  rv,
  (type, object) => {
    events.push({ type, name: String((object.metadata as { name?: string } | undefined)?.name) });
    if (type !== 'BOOKMARK') out({ step: 'event', type, name: events.at(-1)!.name });
  },
  (error) => done(error),
);
out({ step: 'watching' });
await input.next(); // the test has created the namespace; the event line above tells it we saw it
abort.abort();
out({ step: 'aborted', error: describe(await ended) });

// A watch the API refuses (403) ends through onDone with a WatchError carrying the status, the path taken
// by a 410 Gone answer too (code E_K8S_GONE there).
const refused = await new Promise<object>((resolve) => {
  void client.watch(
    '/api/v1/secrets',
    '',
    () => {},
    (error) => resolve(describe(error)),
  );
});
out({ step: 'watch-refused', error: refused });
process.exit(0);
