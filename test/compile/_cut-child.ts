// Test helper run INSIDE a lab node's namespace (ip netns exec) by test/compile/cut-kernel.test.ts:
// programs the node's table over netlink with the agent's reconciler, in keep or cut mode (requireSyn),
// prints {"ready":true,"verified":<verify()>}; end of stdin removes the table and exits. Never run it in
// the root namespace.
import { NetlinkProgrammer } from '../../src/agent/programmer.ts';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { TABLE } from '../../src/compile/desired.ts';
import { Table, Transaction } from '../../src/nft/index.ts';
import { buildState, type ClusterObjects } from '../../src/policy/normalize.ts';

const a = JSON.parse(process.argv[2] ?? '{}') as { node: string; objects: ClusterObjects; cut: boolean };
const programmer = new NetlinkProgrammer();
const reconciler = new NodeReconciler(a.node, programmer, {}, undefined, a.cut ? { requireSyn: true } : {});
await reconciler.sync(buildState(a.objects), { full: true });
// The read-back of the real kernel's table must match what was programmed (the SYN rules included).
const verified = await reconciler.verify();
process.stdout.write(`${JSON.stringify({ ready: true, verified })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void programmer
    .commit(new Transaction().delete(new Table({ family: 'inet', name: TABLE })))
    .catch(() => {})
    .finally(() => process.exit(0));
});
