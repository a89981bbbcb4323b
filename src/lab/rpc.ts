// JSON-lines RPC between the harness and the helper processes it starts in lab namespaces (the pod agents,
// the enforcers, the table checkers): requests on the child's stdin, replies on its stdout, matched by id.
// Owns the framing, the pending requests and the child's lifetime; must not know any request's meaning.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { terminate } from './processes.ts';

export interface RpcChildOptions<Reply> {
  /** The reply that settles a request the child can no longer answer; `why` says what happened to it. */
  lost: (id: number, why: string) => Reply;
  /** Lines without a pending id (e.g. an agent's ready notice); lines that are not JSON are dropped. */
  onNotice?: (message: Record<string, unknown>) => void;
  /** How much of stderr to keep (its tail) for error messages; 'ignore' drops it. */
  stderr?: number | 'ignore';
  /** The child gets its own session (to outlive its owner). */
  detached?: boolean;
}

/** A child process that answers one JSON line per request, `{id, ...}`, in any order. */
export class RpcChild<Reply extends { id: number }> {
  readonly child: ChildProcess;
  /** Resolves when the child has exited or could not start. */
  readonly exited: Promise<void>;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  readonly #lost: (id: number, why: string) => Reply;
  readonly #lines: Interface;
  #nextId = 1;
  #stderr = '';
  #end: string | undefined;

  constructor(argv: string[], options: RpcChildOptions<Reply>) {
    const [file, ...args] = argv;
    const keep = options.stderr ?? 4000;
    this.#lost = options.lost;
    this.child = spawn(file!, args, {
      stdio: ['pipe', 'pipe', keep === 'ignore' ? 'ignore' : 'pipe'],
      detached: options.detached ?? false,
    });
    if (keep !== 'ignore')
      this.child.stderr?.on('data', (d: Buffer) => {
        this.#stderr = (this.#stderr + d.toString()).slice(-keep);
      });
    this.#lines = createInterface({ input: this.child.stdout! });
    this.#lines.on('line', (line) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line);
      } catch {
        return;
      }
      const settle = typeof message.id === 'number' ? this.#pending.get(message.id) : undefined;
      if (settle) {
        this.#pending.delete(message.id as number);
        settle(message as Reply);
      } else options.onNotice?.(message);
    });
    // Pending requests are settled at 'close', after the output is read: the stderr tail in their message
    // is then complete (at 'exit' the child's last words may still be in the pipe).
    this.child.once('close', (code, signal) => this.#settleAll(`exited (${code ?? signal})`));
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      // `on`, not `once`: a later error (a signal that could not be sent) must not become an uncaught one.
      this.child.on('error', (e) => {
        if (this.child.pid !== undefined) return;
        this.#settleAll(`could not start (${e.message})`);
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** False once the child has exited (its 'exit'), even before the pipes close and pending requests settle. */
  get alive(): boolean {
    return this.#end === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What the child wrote to stderr lately (its tail), trimmed. */
  get stderr(): string {
    return this.#stderr.trim();
  }

  #settleAll(why: string): void {
    this.#end ??= why;
    for (const [id, settle] of this.#pending) settle(this.#lost(id, why));
    this.#pending.clear();
  }

  /** Sends `{id, ...body}`; resolves with the reply, or with `lost` once the child is gone. */
  request(body: Record<string, unknown>): Promise<Reply> {
    const id = this.#nextId++;
    if (this.#end !== undefined) return Promise.resolve(this.#lost(id, this.#end));
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.child.stdin?.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  /** Lets the child run on without its owner: no more requests, nothing holds this process's event loop. */
  release(): void {
    this.#lines.close();
    this.child.stdout?.destroy();
    this.child.stdin?.destroy();
    this.child.unref();
  }

  /** Closes stdin (the child's signal to finish what it has and exit) and waits for the exit. */
  async end(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin?.end();
    await this.exited;
  }

  /** SIGTERM, SIGKILL after `graceMs`; resolves at the exit. */
  async stop(graceMs: number): Promise<void> {
    if (this.#end === undefined) await terminate(this.child, this.exited, graceMs);
  }
}

/**
 * The child's side: reads requests from stdin and answers each with `{id, ok: true, result}` or
 * `{id, ok: false, error}` (the message and the error's code), one request at a time and in order, so a
 * node never has more than one batch in flight. `onEnd` runs after the last answer once stdin closes.
 */
export function serveRpc<Request extends { id: number }>(
  handle: (request: Request) => Promise<unknown>,
  onEnd: () => void,
): void {
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let request: Request;
    try {
      request = JSON.parse(line) as Request;
    } catch {
      return;
    }
    queue = queue.then(async () => {
      let reply: Record<string, unknown>;
      try {
        reply = { id: request.id, ok: true, result: await handle(request) };
      } catch (error) {
        const e = error as Error & { code?: string };
        reply = { id: request.id, ok: false, error: `${e.message}${e.code ? ` [${e.code}]` : ''}` };
      }
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    });
  });
  lines.on('close', () => {
    void queue.then(onEnd);
  });
}
