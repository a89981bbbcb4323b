// A fake Kubernetes API for the agent benchmark: objects in memory served over HTTPS on 127.0.0.1 (a
// throwaway self-signed certificate), paged lists (limit/continue, resourceVersion) and watch streams of
// JSON lines from a resourceVersion. Only what the agent reads; no auth check. Never listens elsewhere.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Obj = Record<string, unknown>;
interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  line: string;
}

/** A self-signed EC certificate for IP 127.0.0.1 (its own CA). */
export function selfSignedCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-bench-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return {
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class FakeApiServer {
  rv = 1;
  readonly cert: string;
  readonly token: string;
  port = 0;
  /** Requests served, by kind of request, for the report. */
  readonly served = { lists: 0, pages: 0, watches: 0, connections: 0 };
  readonly #objects = new Map<string, Map<string, Obj>>();
  readonly #events = new Map<string, Event[]>();
  readonly #watchers = new Map<string, Set<ServerResponse>>();
  /** Each bucket's objects in order, built once per change: a page costs its own items, as in the real
   *  API server, not a copy of all 100k objects (200 such copies per list were the fake's own cost). */
  readonly #ordered = new Map<string, Obj[]>();
  /** Each stored object's JSON, written once (as kube-apiserver's watch cache keeps objects encoded): a
   *  page is its items' texts joined, so the fake's own CPU, which shares the machine with the agent,
   *  is not a JSON.stringify of every page. */
  readonly #texts = new WeakMap<Obj, string>();
  readonly #server: Server;

  constructor(tls: { cert: string; key: string }, token: string) {
    this.cert = tls.cert;
    this.token = token;
    this.#server = createServer({ cert: tls.cert, key: tls.key }, (req, res) =>
      this.#handle(req.url ?? '/', req.headers.authorization, res),
    );
    // TLS handshakes cost both sides milliseconds of CPU each: a client that does not reuse its
    // keep-alive connections shows here.
    this.#server.on('secureConnection', () => this.served.connections++);
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => {
        this.port = (this.#server.address() as AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  close(): Promise<void> {
    for (const set of this.#watchers.values()) for (const res of set) res.destroy();
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #bucket(path: string): Map<string, Obj> {
    let b = this.#objects.get(path);
    if (!b) {
      b = new Map();
      this.#objects.set(path, b);
    }
    return b;
  }

  /** Stores an object (name and resourceVersion set) and writes the event to every open watch of `path`. */
  put(path: string, name: string, object: Obj, type: 'ADDED' | 'MODIFIED' = 'ADDED'): void {
    const rv = ++this.rv;
    const o = { ...object, metadata: { ...(object.metadata as Obj), name, resourceVersion: String(rv) } };
    const text = JSON.stringify(o);
    this.#texts.set(o, text);
    this.#bucket(path).set(name, o);
    this.#ordered.delete(path);
    // Every change is kept: a watch that starts from an older resourceVersion gets it replayed.
    const event: Event = { rv, type, line: `{"type":"${type}","object":${text}}\n` };
    let log = this.#events.get(path);
    if (!log) {
      log = [];
      this.#events.set(path, log);
    }
    log.push(event);
    for (const res of this.#watchers.get(path) ?? []) res.write(event.line);
  }

  #handle(url: string, authorization: string | undefined, res: ServerResponse): void {
    const u = new URL(url, 'https://127.0.0.1');
    const json = (status: number, body: unknown, text = JSON.stringify(body)) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    if (authorization !== `Bearer ${this.token}`) {
      json(401, { kind: 'Status', code: 401, message: 'Unauthorized' });
      return;
    }
    const bucket = this.#objects.get(u.pathname);
    if (!bucket) {
      json(404, { kind: 'Status', code: 404, message: `no resource at ${u.pathname}` });
      return;
    }
    if (u.searchParams.get('watch') === 'true') {
      this.served.watches++;
      const from = Number(u.searchParams.get('resourceVersion') || this.rv);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      // As kube-apiserver: the headers go at once, not with the first event. A watch without events
      // otherwise never answers, the agent's request for it stays pending and keeps the agent alive
      // after SIGTERM (the driver killed it after 5 s, so --cpu-prof never wrote its profile).
      res.flushHeaders();
      for (const e of this.#events.get(u.pathname) ?? []) if (e.rv > from) res.write(e.line);
      let set = this.#watchers.get(u.pathname);
      if (!set) {
        set = new Set();
        this.#watchers.set(u.pathname, set);
      }
      set.add(res);
      res.once('close', () => set.delete(res));
      return;
    }
    // Paged list: `continue` is the index of the next item, valid against this fake's stable order.
    const limit = Number(u.searchParams.get('limit') || 0) || Number.POSITIVE_INFINITY;
    const start = Number(u.searchParams.get('continue') || 0);
    if (start === 0) this.served.lists++;
    this.served.pages++;
    let all = this.#ordered.get(u.pathname);
    if (!all) {
      all = [...bucket.values()];
      this.#ordered.set(u.pathname, all);
    }
    const items = all.slice(start, start + limit);
    const next = start + items.length < all.length ? String(start + items.length) : undefined;
    const metadata = { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) };
    const texts = items.map((o) => this.#texts.get(o) ?? JSON.stringify(o));
    json(
      200,
      undefined,
      `{"kind":"List","apiVersion":"v1","metadata":${JSON.stringify(metadata)},"items":[${texts.join(',')}]}`,
    );
  }
}
