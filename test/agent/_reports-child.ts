// Test helper run INSIDE a lab node's namespace (ip netns exec) by test/agent/reports-kernel.test.ts and
// bench/reports.ts: programs the node's table with drop reports over netlink and runs the agent's report
// listener on the real nflog group, logging to stdout as the agent does (`reports: null`: the table
// without reports, no listener); with `usage`, the per-policy counts too (usage.ts, on the real conntrack
// table: test/agent/usage-kernel.test.ts). stdin lines: "stats" prints the metrics as one JSON line; end of stdin
// removes the table and exits. Never run it in the root namespace.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { createMetrics } from '../../src/agent/metrics.ts';
import { NetlinkProgrammer } from '../../src/agent/programmer.ts';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { DropReporter, suppressedPackets } from '../../src/agent/reports.ts';
import { PolicyUsage } from '../../src/agent/usage.ts';
import { type ReportOptions, TABLE } from '../../src/compile/desired.ts';
import { ConntrackSocket } from '../../src/conntrack/socket.ts';
import { Table, Transaction } from '../../src/nft/index.ts';
import { buildState, type ClusterObjects } from '../../src/policy/normalize.ts';

// The arguments as JSON, or `@FILE` holding them (a cluster of 10,000 pods is too long for argv).
const arg = process.argv[2] ?? '{}';
const a = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as {
  node: string;
  objects: ClusterObjects;
  reports: ReportOptions;
  usage?: { intervalMs: number };
};
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const programmer = new NetlinkProgrammer();
const reconciler = new NodeReconciler(
  a.node,
  programmer,
  {},
  undefined,
  a.reports ? { reports: a.reports } : {},
);
const metrics = createMetrics();
const log = pino({ level: 'info', base: { node: a.node } }, pino.destination({ dest: 1, sync: true }));
await reconciler.sync(buildState(a.objects), { full: true });
const usage = a.usage
  ? new PolicyUsage({
      nodeName: a.node,
      log,
      metrics,
      index: () => reconciler.clusterIndex,
      conntrack: () => new ConntrackSocket(),
      intervalMs: a.usage.intervalMs,
    })
  : undefined;
usage?.start();
const reporter = new DropReporter({
  group: a.reports?.group ?? 0,
  node: a.node,
  log,
  metrics,
  enforced: () => reconciler.enforced,
  readSuppressed: () => suppressedPackets((chain) => programmer.readChainRules(chain)),
  retryMs: 50,
  ...(usage ? { onReport: (r: Parameters<PolicyUsage['denied']>[0]) => usage.denied(r) } : {}),
});
if (a.reports) reporter.start();
while (a.reports && reporter.problem !== undefined) await new Promise((r) => setTimeout(r, 20));
out({ ready: true });
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() !== 'stats') return;
  void reporter.refreshMetrics().then(async () => {
    const value = async (m: { get(): Promise<{ values: { value: number }[] }> }) =>
      (await m.get()).values.reduce((n, v) => n + v.value, 0);
    out({
      stats: {
        denied: await value(metrics.deniedConnections),
        suppressed: await value(metrics.reportsSuppressed),
        lost: await value(metrics.reportsLost),
      },
    });
  });
});
lines.on('close', () => {
  reporter.stop();
  usage?.stop();
  void programmer
    .commit(new Transaction().delete(new Table({ family: 'inet', name: TABLE })))
    .catch(() => {})
    .finally(() => process.exit(0));
});
