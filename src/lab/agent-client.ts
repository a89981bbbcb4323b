// Owner side of an in-namespace agent (agent.ts): starts it with nsenter, waits until its ports listen,
// and sends it requests. Must not parse anything but the agent's JSON lines.
import { fileURLToPath } from 'node:url';
import { LabError } from './errors.ts';
import { inNamespace } from './exec.ts';
import { RpcChild } from './rpc.ts';
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
  readonly #rpc: RpcChild<Reply>;

  private constructor(ns: string, name: string, rpc: RpcChild<Reply>) {
    this.ns = ns;
    this.name = name;
    this.#rpc = rpc;
    this.pid = rpc.pid ?? -1;
  }

  get alive(): boolean {
    return this.#rpc.alive;
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
    return new Promise((resolve, reject) => {
      let ready = false;
      const fail = (why: string) => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        rpc.child.kill('SIGKILL');
        const stderr = rpc.stderr;
        reject(new LabError('E_LAB_AGENT', `agent ${name} in ${ns} ${why}${stderr ? `: ${stderr}` : ''}`));
      };
      const rpc = new RpcChild<Reply>(argv, {
        lost: (id) => ({ id, ok: false, error: true, detail: `agent ${name} in ${ns} exited` }),
        stderr: detached ? 'ignore' : 16_000,
        detached,
        onNotice: (message) => {
          if (message.type === 'error') fail(`failed: ${message.detail}`);
          if (message.type !== 'ready' || ready) return;
          ready = true;
          clearTimeout(timer);
          if (detached) rpc.release();
          resolve(new AgentClient(ns, name, rpc));
        },
      });
      const timer = setTimeout(() => fail(`not ready after ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      rpc.child.once('error', (e) => fail(`could not start (${e.message})`));
      rpc.child.once('exit', (code, signal) => fail(`exited ${code ?? signal} before it was ready`));
    });
  }

  async request(body: Record<string, unknown>): Promise<Reply> {
    if (!this.alive) throw new LabError('E_LAB_AGENT', `agent ${this.name} in ${this.ns} is not running`);
    return this.#rpc.request(body);
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
  stop(): Promise<void> {
    return this.#rpc.stop(1000);
  }

  /** For exit hooks: no waiting possible. */
  killSync(): void {
    if (this.alive) this.#rpc.child.kill('SIGKILL');
  }
}
