// A paged list asks for the next page before it processes the current one, and the request really leaves:
// the server prepares page N+1 while the agent normalizes page N. The request is written from nextTick
// callbacks and after the client's awaits, so processing the page in the same task kept it back until the
// page was done (0.65 s of a 100,000-pod list). A real node:http server on 127.0.0.1, in a worker thread
// so that it takes requests while the test's thread is busy, and the real client.
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import t from 'tap';
import { ApiClient } from '../../src/k8s/client.ts';
import { Reflector } from '../../src/k8s/reflector.ts';
import { until } from './fake-api.ts';

const log = pino({ level: 'silent' });

t.test("page 2's request arrives while page 1's items are still being processed", async (t) => {
  // The server: each list request's page number and arrival time (ms since the epoch) to the test.
  const worker = new Worker(
    `
    const { createServer } = require('node:http');
    const { parentPort } = require('node:worker_threads');
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.searchParams.get('watch') === 'true') return; // held: the test ends before
      const page = Number(url.searchParams.get('continue') || 1);
      parentPort.postMessage({ page, at: performance.timeOrigin + performance.now() });
      const items = [0, 1, 2].map((i) => ({ metadata: { name: 'p' + page + '-' + i, namespace: 'x' } }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items, metadata: { resourceVersion: '7', ...(page < 4 ? { continue: String(page + 1) } : {}) } }));
    });
    server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
    `,
    { eval: true },
  );
  t.teardown(() => worker.terminate());
  const arrived = new Map<number, number>();
  const port = await new Promise<number>((resolve) =>
    worker.on('message', (m: { port?: number; page?: number; at?: number }) => {
      if (m.port !== undefined) resolve(m.port);
      else arrived.set(m.page!, m.at!);
    }),
  );
  const done = new Map<number, number>();
  const client = new ApiClient({
    server: `http://127.0.0.1:${port}`,
    source: 'test',
    requestOptions: async () => ({}),
  });
  // Each item holds the thread as a slow normalization would, long enough for the server to answer.
  const trim = (o: Record<string, unknown>) => {
    const name = (o.metadata as { name: string }).name;
    const page = Number(name.slice(1, name.indexOf('-')));
    const end = performance.now() + 100;
    while (performance.now() < end) {
      // busy: the event loop cannot run
    }
    done.set(page, performance.timeOrigin + performance.now());
    return o;
  };
  const r = new Reflector(client, { kind: 'pods', path: '/api/v1/pods', trim }, log, () => {});
  t.teardown(() => r.stop());
  r.start();
  await until(() => r.synced, 'listed', 30_000);
  t.equal(r.items.size, 12, 'every page listed');
  await until(() => arrived.size === 4, 'the server saw four requests', 30_000);
  // Arrival at the server (its own thread) against the end of the previous page's processing here (0.3 s
  // of busy thread): kept back, a request arrives only after it.
  t.comment(JSON.stringify({ arrived: [...arrived], done: [...done] }));
  for (const page of [2, 3, 4])
    t.ok(
      arrived.get(page)! < done.get(page - 1)!,
      `page ${page}'s request was at the server while page ${page - 1} was being processed`,
    );
});
