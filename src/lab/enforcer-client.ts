// Owner side of a node's enforcer (enforcer.ts): starts it inside the node namespace and sends it the
// cluster's objects. Must not interpret the results beyond passing them on.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SyncResult, VerifyResult } from '../agent/reconciler.ts';
import type { ClusterObjects } from '../policy/normalize.ts';
import { LabError } from './errors.ts';
import { inNamespace } from './exec.ts';

const ENFORCER_SCRIPT = fileURLToPath(new URL('./enforcer.ts', import.meta.url));

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export class EnforcerClient {
  readonly ns: string;
  readonly node: string;
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (r: Reply) => void>();
  #nextId = 1;
  #stderr = '';

  constructor(ns: string, node: string) {
    this.ns = ns;
    this.node = node;
    const [file, ...args] = inNamespace(ns, [process.execPath, ENFORCER_SCRIPT, `--node=${node}`]);
    this.#child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const reply = JSON.parse(line) as Reply;
      this.#pending.get(reply.id)?.(reply);
      this.#pending.delete(reply.id);
    });
    this.#child.once('exit', (code) => {
      for (const [id, settle] of this.#pending)
        settle({ id, ok: false, error: `enforcer for ${node} exited (${code}): ${this.#stderr.trim()}` });
      this.#pending.clear();
    });
  }

  private async request(body: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    const reply = await new Promise<Reply>((resolve) => {
      this.#pending.set(id, resolve);
      this.#child.stdin!.write(`${JSON.stringify({ id, ...body })}\n`);
    });
    if (!reply.ok) throw new LabError('E_LAB_AGENT', `node ${this.node}: ${reply.error}`);
    return reply.result;
  }

  /** Programs the node for these objects; resolves after the kernel acknowledged the batch. */
  sync(objects: ClusterObjects, full = false): Promise<SyncResult> {
    return this.request({ op: 'sync', objects, full }) as Promise<SyncResult>;
  }

  /** The node's table as the kernel lists it (nft text), or undefined. */
  async list(): Promise<string | undefined> {
    return ((await this.request({ op: 'list' })) as { text?: string }).text;
  }

  /** Compares the node's table with what its reconciler programmed; repairs drift with one full batch. */
  verify(): Promise<VerifyResult> {
    return this.request({ op: 'verify' }) as Promise<VerifyResult>;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.stdin!.end();
    await exited;
  }
}
