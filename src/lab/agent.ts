// The in-namespace agent: one small Node process per lab namespace that serves the pod's ports (TCP as HTTP,
// UDP as echo) and sends UDP probes from that namespace. Standalone script (node builtins only, for a fast
// start); must not import project code or touch any namespace but the one it was started in.
//
// Protocol: JSON lines. stdout: {"type":"ready"} once the initial ports listen, then {"id":N,...} replies.
// stdin: {"id":N,"op":"listen"|"close","ports":[{port,protocol}]} or
//        {"id":N,"op":"udp-probe","host":"10.244.1.10","port":80,"timeoutMs":1000,"source"?:"198.51.100.1"}.
// The agent exits when stdin closes (its owner died) unless started with --detached.
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

interface Port {
  port: number;
  protocol: string;
}

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'agent' },
    serve: { type: 'string', default: '[]' },
    detached: { type: 'boolean', default: false },
  },
});
const name = values.name;
const listeners = new Map<string, Server | Socket[]>();

function send(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/**
 * The namespace's own addresses but link-local ones. A UDP echo is sent from one socket per address because
 * a socket bound to :: answers from whatever source the route back picks: on a node that is the VXLAN
 * device's address (10.244.N.0, fd00:10:244:N::), not the node address the client sent to, and the
 * client's connected socket drops the answer.
 */
function localAddresses(): { address: string; family: 4 | 6 }[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => !(a.family === 'IPv6' && a.scopeid !== undefined && a.scopeid !== 0))
    .map((a) => ({ address: a.address, family: a.family === 'IPv6' ? 6 : 4 }));
}

function bindUdp(port: number, address: string, family: 4 | 6): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(family === 6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
    socket.once('error', reject);
    socket.on('message', (msg, rinfo) => {
      socket.send(`${msg.toString()} ${name} ${port}/UDP`, rinfo.port, rinfo.address);
    });
    socket.bind({ port, address }, () => {
      socket.removeListener('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

// TCP: listening on :: with a dual-stack socket serves IPv4 (as mapped addresses) and IPv6 with one socket.
async function listen(p: Port): Promise<void> {
  const key = `${p.port}/${p.protocol}`;
  if (listeners.has(key) || p.protocol === 'SCTP') return;
  if (p.protocol === 'UDP') {
    const bound = await Promise.allSettled(localAddresses().map((a) => bindUdp(p.port, a.address, a.family)));
    const sockets = bound.flatMap((b) => (b.status === 'fulfilled' ? [b.value] : []));
    const failed = bound.find((b) => b.status === 'rejected');
    if (failed) {
      for (const s of sockets) s.close();
      throw failed.reason;
    }
    listeners.set(key, sockets);
    return;
  }
  return listenTcp(p);
}

function listenTcp(p: Port): Promise<void> {
  const key = `${p.port}/${p.protocol}`;
  return new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      // Probes get one answer per connection; a connection holder (holder.ts) keeps its one open.
      if (req.headers['x-tollgate-hold'] === undefined) res.setHeader('connection', 'close');
      res.end(`${name} ${p.port}/TCP ${req.socket.remoteAddress ?? ''}\n`);
    });
    // A held connection stays open between its requests, however long the scenario waits.
    server.keepAliveTimeout = 0;
    server.once('error', reject);
    server.listen({ port: p.port, host: '::', ipv6Only: false, backlog: 511 }, () => {
      listeners.set(key, server);
      resolve();
    });
  });
}

function close(p: Port): Promise<void> {
  const key = `${p.port}/${p.protocol}`;
  const l = listeners.get(key);
  listeners.delete(key);
  if (!l) return Promise.resolve();
  if (Array.isArray(l))
    return Promise.all(l.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(() => {});
  return new Promise((resolve) => {
    l.closeAllConnections();
    l.close(() => resolve());
  });
}

/**
 * Sends one datagram from a connected socket, so an ICMP port-unreachable surfaces as ECONNREFUSED; bound
 * to `source` when given.
 */
function udpProbe(
  host: string,
  port: number,
  timeoutMs: number,
  source: string | undefined,
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const nonce = `tollgate-probe-${process.pid}-${Math.random().toString(36).slice(2)}`;
    let done = false;
    const finish = (ok: boolean, detail: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => finish(false, `no UDP answer within ${timeoutMs} ms`), timeoutMs);
    socket.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
    socket.on('message', (msg) => {
      const text = msg.toString();
      if (text.startsWith(nonce)) finish(true, text.slice(nonce.length).trim());
    });
    const connect = () => socket.connect(port, host, () => socket.send(nonce));
    if (source) socket.bind({ port: 0, address: source }, connect);
    else connect();
  });
}

async function handle(line: string): Promise<void> {
  let request: {
    id?: number;
    op?: string;
    ports?: Port[];
    host?: string;
    port?: number;
    timeoutMs?: number;
    source?: string;
  };
  try {
    request = JSON.parse(line);
  } catch {
    send({ id: -1, ok: false, detail: `bad request: ${line}` });
    return;
  }
  const id = request.id ?? -1;
  try {
    if (request.op === 'listen') {
      await Promise.all((request.ports ?? []).map(listen));
      send({ id, ok: true, detail: 'listening' });
    } else if (request.op === 'close') {
      await Promise.all((request.ports ?? []).map(close));
      send({ id, ok: true, detail: 'closed' });
    } else if (request.op === 'udp-probe') {
      send({
        id,
        ...(await udpProbe(request.host ?? '', request.port ?? 0, request.timeoutMs ?? 1000, request.source)),
      });
    } else {
      send({ id, ok: false, detail: `unknown op ${request.op}` });
    }
  } catch (error) {
    send({ id, ok: false, error: true, detail: (error as Error).message });
  }
}

try {
  await Promise.all((JSON.parse(values.serve) as Port[]).map(listen));
} catch (error) {
  send({ type: 'error', detail: (error as Error).message });
  process.exit(1);
}
send({ type: 'ready', pid: process.pid });
if (values.detached) {
  process.stdin.destroy();
  // Nothing else may hold the event loop (a node agent serves no port): stay until the lab is removed.
  setInterval(() => {}, 1 << 30);
} else {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => void handle(line));
  rl.on('close', () => process.exit(0));
}
process.on('SIGTERM', () => process.exit(0));
