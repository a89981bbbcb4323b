// The connection holder: a small Node process in a client's namespace that opens long-lived TCP
// connections (HTTP/1.1 keep-alive to a lab pod's server) and tells, by one request over each, whether it
// still carries traffic. Standalone script (node builtins only, for a fast start); it never opens anything
// but the connections it is asked for, and only in the namespace it was started in.
//
// Protocol: JSON lines, the lab's RPC framing (rpc.ts). stdin: {"id":N,"op":"connect","name":"c1",
// "host":"10.244.1.10","port":80,"timeoutMs":2000} | {"id":N,"op":"ping","name":"c1","timeoutMs":1000} |
// {"id":N,"op":"close","name":"c1"}. stdout: {"id":N,"ok":true|false,"detail":"..."}; ping's ok is "alive".
// Exits when stdin closes.
import net from 'node:net';
import { createInterface } from 'node:readline';

interface Held {
  socket: net.Socket;
  /** Bytes received and not yet consumed by a ping. */
  buffered: string;
  /** Why the connection ended (closed by the peer, reset, an error); undefined while open. */
  ended: string | undefined;
  onData: (() => void) | undefined;
  pings: number;
}

const held = new Map<string, Held>();

function send(message: object): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** A whole HTTP response at the start of `text` (headers and a Content-Length body): its length, or -1. */
function responseLength(text: string): number {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return -1;
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
  const body = m ? Number(m[1]) : 0;
  return text.length >= end + 4 + body ? end + 4 + body : -1;
}

/** One request on the held connection; alive when its whole answer comes back within timeoutMs. */
function ping(h: Held, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  if (h.ended !== undefined) return Promise.resolve({ ok: false, detail: h.ended });
  const n = ++h.pings;
  // A late answer to an earlier ping that timed out is no answer to this one.
  h.buffered = '';
  return new Promise((resolve) => {
    const finish = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      h.onData = undefined;
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => finish(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    h.onData = () => {
      if (h.ended !== undefined) return finish(false, h.ended);
      const len = responseLength(h.buffered);
      if (len < 0) return;
      const text = h.buffered.slice(0, len);
      h.buffered = h.buffered.slice(len);
      finish(true, text.slice(text.indexOf('\r\n\r\n') + 4).trim());
    };
    h.socket.write(
      `GET /hold/${n} HTTP/1.1\r\nhost: tollgate\r\nconnection: keep-alive\r\nx-tollgate-hold: 1\r\n\r\n`,
    );
  });
}

function connect(
  name: string,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<{ ok: boolean; detail: string }> {
  held.get(name)?.socket.destroy();
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const h: Held = { socket, buffered: '', ended: undefined, onData: undefined, pings: 0 };
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, detail: `no connection within ${timeoutMs} ms` });
    }, timeoutMs);
    socket.setNoDelay(true);
    socket.on('data', (d) => {
      h.buffered += d.toString();
      h.onData?.();
    });
    const end = (why: string) => {
      h.ended ??= why;
      h.onData?.();
    };
    socket.on('error', (e: NodeJS.ErrnoException) => end(e.code ?? e.message));
    socket.on('end', () => end('closed by the peer'));
    socket.on('close', () => end('closed'));
    socket.once('connect', () => {
      clearTimeout(timer);
      held.set(name, h);
      // The connection counts as open once one request went through it.
      void ping(h, timeoutMs).then(resolve);
    });
  });
}

async function handle(line: string): Promise<void> {
  let r: { id?: number; op?: string; name?: string; host?: string; port?: number; timeoutMs?: number };
  try {
    r = JSON.parse(line);
  } catch {
    return;
  }
  const id = r.id ?? -1;
  const name = r.name ?? '';
  if (r.op === 'connect')
    send({ id, ...(await connect(name, r.host ?? '', r.port ?? 0, r.timeoutMs ?? 2000)) });
  else if (r.op === 'ping') {
    const h = held.get(name);
    send({
      id,
      ...(h ? await ping(h, r.timeoutMs ?? 1000) : { ok: false, detail: `no connection ${name}` }),
    });
  } else if (r.op === 'close') {
    held.get(name)?.socket.destroy();
    held.delete(name);
    send({ id, ok: true, detail: 'closed' });
  } else send({ id, ok: false, detail: `unknown op ${r.op}` });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => void handle(line));
rl.on('close', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
