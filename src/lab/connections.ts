// Long-lived connections in the lab for the `connect` / `connections` steps: one holder process
// (holder.ts) per source pod namespace opens each connection to the destination pod's server and tells,
// by one request over it, whether it still carries traffic. Measures only: what a connection should do
// is the scenario's (src/scenario/connections.ts) to say.

import { fileURLToPath } from 'node:url';
import type { ConnectionDriver, HeldConnection } from '../scenario/connections.ts';
import { LabError } from './errors.ts';
import { inNamespace } from './exec.ts';
import type { Lab } from './lab.ts';
import { scaledMs } from './load.ts';
import { RpcChild } from './rpc.ts';

const HOLDER_SCRIPT = fileURLToPath(new URL('./holder.ts', import.meta.url));
/** The README's limit: cut within 5 s once the policies no longer allow it (scaled by the load). */
export const CUT_WITHIN_MS = 5000;
const CONNECT_TIMEOUT_MS = 3000;
/** One request's answer on a live connection, even on a busy machine. */
const ALIVE_TIMEOUT_MS = 2000;
/** While waiting for a cut: each request's limit, and the pause between requests. */
const CUT_PING_MS = 700;
const CUT_PAUSE_MS = 100;

interface Reply {
  id: number;
  ok: boolean;
  detail: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ConnectionHolders implements ConnectionDriver {
  readonly #lab: Lab;
  /** Holders by the namespace they run in. */
  readonly #holders = new Map<string, RpcChild<Reply>>();
  /** Which holder keeps each connection. */
  readonly #of = new Map<string, RpcChild<Reply>>();

  constructor(lab: Lab) {
    this.#lab = lab;
  }

  #holder(ns: string): RpcChild<Reply> {
    let h = this.#holders.get(ns);
    if (!h?.alive) {
      h = new RpcChild<Reply>(
        inNamespace(ns, [process.execPath, '--disable-warning=ExperimentalWarning', HOLDER_SCRIPT]),
        { lost: (id, why) => ({ id, ok: false, detail: `the connection holder in ${ns} ${why}` }) },
      );
      this.#holders.set(ns, h);
    }
    return h;
  }

  async connect(_world: unknown, connections: HeldConnection[]): Promise<{ ok: boolean; detail: string }[]> {
    return Promise.all(
      connections.map(async ({ spec }) => {
        const pod = this.#lab.pod(spec.from);
        if (pod.hostNetwork)
          throw new LabError('E_LAB_UNSUPPORTED', `connect ${spec.name}: ${spec.from} is a hostNetwork pod`);
        const holder = this.#holder(pod.ns);
        this.#of.set(spec.name, holder);
        const host = this.#lab.address(spec.to, 4);
        const r = await holder.request({
          op: 'connect',
          name: spec.name,
          host,
          port: spec.port,
          timeoutMs: scaledMs(CONNECT_TIMEOUT_MS),
        });
        return {
          ok: r.ok,
          detail: `${r.ok ? 'connected' : 'not connected'} to ${host}:${spec.port}: ${r.detail}`,
        };
      }),
    );
  }

  async alive(
    _world: unknown,
    checks: { connection: HeldConnection; expectCut: boolean }[],
    startedAt: number,
  ): Promise<{ alive: boolean; detail: string }[]> {
    return Promise.all(
      checks.map(async ({ connection, expectCut }) => {
        const name = connection.spec.name;
        const holder = this.#of.get(name);
        if (!holder) throw new LabError('E_LAB_UNKNOWN', `no held connection ${name}`);
        const ping = (timeoutMs: number) => holder.request({ op: 'ping', name, timeoutMs });
        if (!expectCut) {
          const r = await ping(scaledMs(ALIVE_TIMEOUT_MS));
          return { alive: r.ok, detail: r.ok ? `answered: ${r.detail}` : `no longer answers: ${r.detail}` };
        }
        // Expected cut: it must stop answering before the deadline; until then it may still answer.
        const limit = scaledMs(CUT_WITHIN_MS);
        for (;;) {
          const sentMs = Math.round(performance.now() - startedAt);
          const r = await ping(scaledMs(CUT_PING_MS));
          const ms = Math.round(performance.now() - startedAt);
          if (!r.ok)
            return {
              alive: false,
              detail: `cut: the request sent ${sentMs} ms into the step got none: ${r.detail}`,
            };
          if (ms > limit)
            return { alive: true, detail: `still answering after ${ms} ms (limit ${limit} ms)` };
          await sleep(CUT_PAUSE_MS);
        }
      }),
    );
  }

  /** Ends every holder (closing its connections). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#holders.values()].map((h) => h.stop(1000)));
    this.#holders.clear();
    this.#of.clear();
  }
}
