// Runs inside a lab's network namespace for cluster-policies.test.ts: the agent's ClusterStore with the
// in-cluster client (the `tollgate` service account of daemonset/rbac.yaml) against the lab's real
// kube-apiserver. Prints one JSON line whenever what it knows of ClusterNetworkPolicies changes.
import { pino } from 'pino';
import { ApiClient, inClusterConfig } from '../../src/k8s/client.ts';
import { ClusterStore } from '../../src/k8s/store.ts';

const client = new ApiClient(inClusterConfig({ dir: process.env.TOLLGATE_SERVICEACCOUNT_DIR! }));
const store = new ClusterStore(client, pino({ level: 'silent' }), { missingRecheckMs: 200 });
let last = '';
const report = () => {
  const r = store.reflectors.clusterPolicies;
  const line = JSON.stringify({
    synced: store.synced,
    live: store.live,
    missing: r.missing ?? null,
    names: [...r.items.keys()].sort(),
  });
  if (line === last) return;
  last = line;
  process.stdout.write(`${line}\n`);
};
store.onChange(report);
store.start();
// The watch opening is no change notification: look again now and then.
setInterval(report, 50);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
