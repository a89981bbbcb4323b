// The read-only table checker of the API lab: a process per node namespace that compares the node's kernel
// table with what the policy model computes for given objects. Must never write to the kernel.
// Imported, it is the owner side (TableChecker); run as a script (`--node NODE`) it is the checker.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { inNamespace } from './exec.ts';
import { RpcChild, serveRpc } from './rpc.ts';

const SELF = fileURLToPath(import.meta.url);

export interface CheckReply {
  id: number;
  ok: boolean;
  result?: { equal: boolean; detail?: string };
  error?: string;
}

/** Owner side: one checker in node namespace `ns`, for node `node`. */
export class TableChecker {
  readonly #rpc: RpcChild<CheckReply>;

  /** `agentArgs`: the node agent's extra flags; its drop report flags decide the report rules expected. */
  constructor(ns: string, node: string, agentArgs: readonly string[] = []) {
    const argv = [process.execPath, SELF, '--node', node, '--', ...agentArgs];
    this.#rpc = new RpcChild<CheckReply>(inNamespace(ns, argv), {
      lost: (id, why) => ({ id, ok: false, error: `table checker ${why}: ${this.#rpc.stderr}` }),
      stderr: 2000,
    });
  }

  check(objects: unknown): Promise<CheckReply> {
    return this.#rpc.request({ objects });
  }

  close(): Promise<void> {
    return this.#rpc.end();
  }
}

async function runTableChecker(node: string, agentArgs: string[]): Promise<void> {
  // Loaded here, not at the top: the owner side needs none of the model.
  const [
    { NetlinkProgrammer },
    { compareTable },
    { desiredState, quietNamespaces },
    { Planner },
    { buildState },
    { withClusterPolicies },
    { REPORT_FLAGS, reportOptions },
  ] = await Promise.all([
    import('../agent/programmer.ts'),
    import('../compile/verify.ts'),
    import('../compile/desired.ts'),
    import('../policy/plan.ts'),
    import('../policy/normalize.ts'),
    import('../policy/cluster-normalize.ts'),
    import('../agent/options.ts'),
  ]);
  // The agent's report flags among its others (unknown ones and their values are ignored here).
  const { values } = parseArgs({ args: agentArgs, options: REPORT_FLAGS, strict: false });
  const reports = reportOptions(values as Parameters<typeof reportOptions>[0]);
  const programmer = new NetlinkProgrammer();
  serveRpc<{ id: number; objects: Parameters<typeof buildState>[0] & { clusterPolicies?: unknown[] } }>(
    async (req) => {
      // The ClusterNetworkPolicies too: the agents program their tier chains (compile/tiers.ts).
      const state = withClusterPolicies(buildState(req.objects), req.objects.clusterPolicies);
      const expected = desiredState(
        new Planner(state).planNode(node),
        undefined,
        reports
          ? { reports: { ...reports, quietNamespaces: quietNamespaces(state.namespaces.values()) } }
          : {},
      );
      const c = compareTable(expected, await programmer.readTable());
      return { equal: c.equal, detail: c.detail };
    },
    () => programmer.close(),
  );
}

if (import.meta.main) {
  const at = process.argv.indexOf('--node');
  const node = at >= 0 ? process.argv[at + 1] : undefined;
  if (!node) {
    process.stderr.write('usage: table-checker.ts --node NODE (inside the node namespace)\n');
    process.exitCode = 2;
  } else await runTableChecker(node, process.argv.slice(process.argv.indexOf('--') + 1));
}
