// The in-namespace agent: one small Node process per lab namespace that serves the pod's ports (TCP as HTTP,
// UDP as echo) and sends UDP probes from that namespace. Standalone script (node builtins only, for a fast
// start); must not import project code or touch any namespace but the one it was started in.
//
// Protocol: JSON lines. stdout: {"type":"ready"} once the initial ports listen, then {"id":N,...} replies.
// stdin: {"id":N,"op":"listen"|"close","ports":[{port,protocol}]} or
//        {"id":N,"op":"udp-probe","host":"10.244.1.10","port":80,"timeoutMs":1000}.
// The agent exits when stdin closes (its owner died) unless started with --detached.
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { isIPv6 } from 'node:net';
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
const listeners = new Map<string, Server | Socket>();

function send(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// Listening on :: with dual-stack sockets serves IPv4 (as mapped addresses) and IPv6 with one socket each.
function listen(p: Port): Promise<void> {
  const key = `${p.port}/${p.protocol}`;
  if (listeners.has(key) || p.protocol === 'SCTP') return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (p.protocol === 'TCP') {
      const server = createServer((req, res) => {
        res.setHeader('connection', 'close');
        res.end(`${name} ${p.port}/TCP ${req.socket.remoteAddress ?? ''}\n`);
      });
      server.once('error', reject);
      server.listen({ port: p.port, host: '::', ipv6Only: false, backlog: 511 }, () => {
        listeners.set(key, server);
        resolve();
      });
    } else {
      const socket = createSocket({ type: 'udp6', ipv6Only: false });
      socket.once('error', reject);
      socket.on('message', (msg, rinfo) => {
        socket.send(`${msg.toString()} ${name} ${p.port}/UDP`, rinfo.port, rinfo.address);
      });
      socket.bind({ port: p.port, address: '::' }, () => {
        socket.removeListener('error', reject);
        socket.on('error', () => {});
        listeners.set(key, socket);
        resolve();
      });
    }
  });
}

function close(p: Port): Promise<void> {
  const key = `${p.port}/${p.protocol}`;
  const l = listeners.get(key);
  listeners.delete(key);
  if (!l) return Promise.resolve();
  return new Promise((resolve) => {
    if ('closeAllConnections' in l) {
      l.closeAllConnections();
      l.close(() => resolve());
    } else l.close(() => resolve());
  });
}

/** Sends one datagram from a connected socket, so an ICMP port-unreachable surfaces as ECONNREFUSED. */
function udpProbe(host: string, port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
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
    socket.connect(port, host, () => socket.send(nonce));
  });
}

async function handle(line: string): Promise<void> {
  let request: { id?: number; op?: string; ports?: Port[]; host?: string; port?: number; timeoutMs?: number };
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
      send({ id, ...(await udpProbe(request.host ?? '', request.port ?? 0, request.timeoutMs ?? 1000)) });
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
