// Stopping a reflector ends its watch request also while the server has not answered it yet: a request
// left pending would keep the agent alive after SIGTERM until the client's request timeout. A real
// node:http server on 127.0.0.1 that lists and then holds every watch without sending its headers.
import { createServer, type IncomingMessage } from 'node:http';
import { pino } from 'pino';
import t from 'tap';
import { ApiClient } from '../../src/k8s/client.ts';
import { Reflector } from '../../src/k8s/reflector.ts';
import { trimPod } from '../../src/k8s/trim.ts';
import { until } from './fake-api.ts';

const log = pino({ level: 'silent' });

t.test('stop() ends a watch whose response headers never came', async (t) => {
  const held: IncomingMessage[] = [];
  const closed: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    if (req.url?.includes('watch=true')) {
      held.push(req);
      req.socket.once('close', () => closed.push(req));
      return; // never answered
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ items: [], metadata: { resourceVersion: '7' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  const client = new ApiClient({
    server: `http://127.0.0.1:${port}`,
    source: 'test',
    requestOptions: async () => ({}),
  });
  // Far past the waits below: only the stop may end the request.
  client.requestTimeoutMs = 600_000;
  const r = new Reflector(client, { kind: 'pods', path: '/api/v1/pods', trim: trimPod }, log, () => {});
  r.start();
  await until(() => r.synced && held.length === 1, 'listed, and the watch request arrived', 30_000);
  t.notOk(r.watching, 'no headers: the watch is not open yet');
  r.stop();
  await until(() => closed.length === 1, "the held watch's connection closed after stop()", 30_000);
  t.equal(closed[0], held[0]);
});
