// Owner side of an in-namespace agent (agent.ts): starts it with nsenter, waits until its ports listen,
// and sends it requests. Must not parse anything but the agent's JSON lines.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LabError } from './errors.ts';
import { inNamespace } from './exec.ts';
import type { PortSpec } from './types.ts';

const AGENT_SCRIPT = fileURLToPath(new URL('./agent.ts', import.meta.url));
const START_TIMEOUT_MS = 15_000;

interface Reply {
  id: number;
  ok: boolean;
  detail: string;
  error?: boolean;
}

export class AgentClient {
  readonly ns: string;
  readonly name: string;
  readonly pid: number;
  #child: ChildProcess;
  #nextId = 1;
  #pending = new Map<number, (reply: Reply) => void>();
  #exited: Promise<void>;
  #alive = true;

  private constructor(ns: string, name: string, child: ChildProcess) {
    this.ns = ns;
    this.name = name;
    this.#child = child;
    this.pid = child.pid ?? -1;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.#exited.then(() => {
      this.#alive = false;
      for (const [id, settle] of this.#pending) {
        settle({ id, ok: false, error: true, detail: `agent ${name} in ${ns} exited` });
      }
      this.#pending.clear();
    });
  }

  get alive(): boolean {
    return this.#alive;
  }

  /**
   * Starts the agent in `ns` serving `ports`; resolves once every port listens. A detached agent survives its
   * owner (for `tollgate lab up`): it gets its own session and accepts no requests.
   */
  static start(ns: string, name: string, ports: PortSpec[], detached = false): Promise<AgentClient> {
    const argv = inNamespace(ns, [
      process.execPath,
      '--disable-warning=ExperimentalWarning',
      AGENT_SCRIPT,
      `--name=${name}`,
      `--serve=${JSON.stringify(ports)}`,
      ...(detached ? ['--detached'] : []),
    ]);
    const child = spawn(argv[0] as string, argv.slice(1), {
      stdio: ['pipe', 'pipe', detached ? 'ignore' : 'pipe'],
      detached,
    });
    const client = new AgentClient(ns, name, child);
    const stderr: string[] = [];
    child.stderr?.on('data', (b: Buffer) => stderr.push(b.toString()));
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(
          new LabError(
            'E_LAB_AGENT',
            `agent ${name} in ${ns} ${why}${stderr.length ? `: ${stderr.join('')}` : ''}`,
          ),
        );
      };
      const timer = setTimeout(() => fail(`not ready after ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      const onError = (e: Error) => fail(`could not start (${e.message})`);
      const onEarlyExit = (code: number | null, signal: string | null) =>
        fail(`exited ${code ?? signal} before it was ready`);
      child.once('error', onError);
      child.once('exit', onEarlyExit);
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        let message: { type?: string; id?: number; detail?: string };
        try {
          message = JSON.parse(line);
        } catch {
          return;
        }
        if (message.type === 'ready') {
          clearTimeout(timer);
          child.removeListener('exit', onEarlyExit);
          child.removeListener('error', onError);
          child.on('error', () => {});
          if (detached) {
            lines.close();
            child.stdout?.destroy();
            child.stdin?.destroy();
            child.unref();
          }
          resolve(client);
        } else if (message.type === 'error') {
          fail(`failed: ${message.detail}`);
        } else if (typeof message.id === 'number') {
          const settle = client.#pending.get(message.id);
          client.#pending.delete(message.id);
          settle?.(message as Reply);
        }
      });
    });
  }

  request(body: Record<string, unknown>): Promise<Reply> {
    if (!this.#alive) {
      return Promise.reject(new LabError('E_LAB_AGENT', `agent ${this.name} in ${this.ns} is not running`));
    }
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#child.stdin?.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  async listen(ports: PortSpec[]): Promise<void> {
    const reply = await this.request({ op: 'listen', ports });
    if (!reply.ok) throw new LabError('E_LAB_AGENT', `agent ${this.name} in ${this.ns}: ${reply.detail}`);
  }

  async close(ports: PortSpec[]): Promise<void> {
    const reply = await this.request({ op: 'close', ports });
    if (!reply.ok) throw new LabError('E_LAB_AGENT', `agent ${this.name} in ${this.ns}: ${reply.detail}`);
  }

  /** One UDP probe; `source`: the address to send from (default: the one the route picks). */
  async udpProbe(
    host: string,
    port: number,
    timeoutMs: number,
    source?: string,
  ): Promise<{ ok: boolean; detail: string }> {
    const reply = await this.request({
      op: 'udp-probe',
      host,
      port,
      timeoutMs,
      ...(source ? { source } : {}),
    });
    if (reply.error) throw new LabError('E_LAB_AGENT', `agent ${this.name} in ${this.ns}: ${reply.detail}`);
    return { ok: reply.ok, detail: reply.detail };
  }

  /** Ends the agent and waits for it; SIGKILL after a second if it does not go. */
  async stop(): Promise<void> {
    if (!this.#alive) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 1000);
    await this.#exited;
    clearTimeout(timer);
  }

  /** For exit hooks: no waiting possible. */
  killSync(): void {
    if (this.#alive) this.#child.kill('SIGKILL');
  }
}
