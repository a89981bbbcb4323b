// Who may write this node's table: one agent per network namespace, decided by an abstract unix socket
// bound in that namespace (the kernel frees the name when the holder dies, however it dies: no stale lock
// file, no lease to expire). The holder answers a connection with who it is, so a waiting agent can say
// whom it waits for. Knows nothing of tables or syncs.
import { createConnection, createServer, type Server } from 'node:net';

/** Who holds the lock, as the holder reports it. */
export interface LockHolder {
  pid: number;
  node: string;
  /** Unix ms when it took the lock. */
  since: number;
}

export class NodeLock {
  /** Abstract socket name (without the leading NUL). */
  readonly name: string;
  private readonly node: string;
  private server: Server | undefined;

  constructor(node: string, name = 'tollgate-agent') {
    this.node = node;
    this.name = name;
  }

  get held(): boolean {
    return this.server !== undefined;
  }

  /** Takes the lock if it is free; false when another process (or this one) holds it. */
  async tryAcquire(): Promise<boolean> {
    if (this.server) return true;
    const me: LockHolder = { pid: process.pid, node: this.node, since: Date.now() };
    const server = createServer((c) => c.end(`${JSON.stringify(me)}\n`));
    const ok = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        e.code === 'EADDRINUSE' ? resolve(false) : reject(e),
      );
      server.listen({ path: `\0${this.name}` }, () => resolve(true));
    });
    if (!ok) return false;
    server.unref();
    this.server = server;
    return true;
  }

  /** Who holds the lock now (undefined: nobody answered). */
  holder(timeoutMs = 1000): Promise<LockHolder | undefined> {
    return new Promise((resolve) => {
      let text = '';
      const c = createConnection({ path: `\0${this.name}` });
      const done = (h: LockHolder | undefined) => {
        c.destroy();
        clearTimeout(timer);
        resolve(h);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      c.on('data', (d) => {
        text += d.toString();
      });
      c.on('end', () => {
        try {
          done(JSON.parse(text) as LockHolder);
        } catch {
          done(undefined);
        }
      });
      c.on('error', () => done(undefined));
    });
  }

  release(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
  }
}
