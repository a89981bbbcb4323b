// Owner side of a node's enforcer (enforcer.ts): starts it inside the node namespace and sends it the
// cluster's objects. Must not interpret the results beyond passing them on.
import { fileURLToPath } from 'node:url';
import type { SyncResult, VerifyResult } from '../agent/reconciler.ts';
import type { ClusterObjects } from '../policy/normalize.ts';
import { LabError } from './errors.ts';
import { inNamespace } from './exec.ts';
import { RpcChild } from './rpc.ts';

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
  readonly #rpc: RpcChild<Reply>;

  /** `args`: the enforcer's drop report flags (`--drop-reports=on`, ...; default off, see enforcer.ts). */
  constructor(ns: string, node: string, args: readonly string[] = []) {
    this.ns = ns;
    this.node = node;
    const argv = [process.execPath, ENFORCER_SCRIPT, `--node=${node}`, ...args];
    this.#rpc = new RpcChild<Reply>(inNamespace(ns, argv), {
      lost: (id, why) => ({ id, ok: false, error: `enforcer for ${node} ${why}: ${this.#rpc.stderr}` }),
    });
  }

  private async request(body: Record<string, unknown>): Promise<unknown> {
    const reply = await this.#rpc.request(body);
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

  close(): Promise<void> {
    return this.#rpc.end();
  }
}
