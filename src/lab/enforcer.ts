// Runs inside a lab node's network namespace (started by enforcer-client.ts): receives the cluster's
// objects as JSON lines, reconciles the node's `inet tollgate` table over netlink, answers with the
// result. The lab's stand-in for the agent before the API server path; it never probes or routes.
import { parseArgs } from 'node:util';
import { REPORT_FLAGS, reportOptions } from '../agent/options.ts';
import { NetlinkProgrammer } from '../agent/programmer.ts';
import { NodeReconciler } from '../agent/reconciler.ts';
import { TABLE } from '../compile/desired.ts';
import { NfnlSocket, Table, Transaction } from '../nft/index.ts';
import { withClusterPolicies } from '../policy/cluster-normalize.ts';
import { buildState, type ClusterObjects } from '../policy/normalize.ts';
import { UsageError } from '../util/errors.ts';
import { serveRpc } from './rpc.ts';

type Request = { id: number } & (
  | { op: 'sync'; objects: ClusterObjects & { clusterPolicies?: unknown[] }; full?: boolean }
  | { op: 'list' }
  | { op: 'verify' }
  | { op: 'cleanup' }
);

const { values } = parseArgs({ options: { node: { type: 'string' }, ...REPORT_FLAGS } });
if (!values.node) throw new UsageError('--node is required');
const sock = new NfnlSocket();
const programmer = new NetlinkProgrammer(sock);
// Without report flags, no report rules (the tables the lab's model tests compare were made so); with any
// of them, as the agent parses them.
const reports = Object.keys(REPORT_FLAGS).some((f) => values[f as keyof typeof REPORT_FLAGS] !== undefined)
  ? reportOptions(values)
  : undefined;
const reconciler = new NodeReconciler(values.node, programmer, {}, undefined, reports ? { reports } : {});

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'sync':
      return reconciler.sync(withClusterPolicies(buildState(req.objects), req.objects.clusterPolicies), {
        full: req.full === true,
      });
    case 'list':
      return { text: await programmer.listTable() };
    case 'verify':
      return reconciler.verify();
    case 'cleanup': {
      const text = await programmer.listTable();
      if (text !== undefined)
        await new Transaction().delete(new Table({ family: 'inet', name: TABLE })).run(sock);
      return { removed: text !== undefined };
    }
  }
}

serveRpc<Request>(handle, () => sock.close());
