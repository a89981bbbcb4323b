// The agent's Prometheus metrics (prom-client): one registry per agent, names prefixed tollgate_.
// Definitions only; the agent loop records into them.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  const seconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  return {
    registry,
    syncDuration: new Histogram({
      name: 'tollgate_sync_duration_seconds',
      help: 'Time to compute and commit one sync (plan, diff, netlink batch).',
      labelNames: ['kind'],
      buckets: seconds,
      registers: [registry],
    }),
    eventToProgrammed: new Histogram({
      name: 'tollgate_event_to_programmed_seconds',
      help: 'From the first watch event a sync includes to the kernel acknowledging its batch.',
      buckets: seconds,
      registers: [registry],
    }),
    objectsWatched: new Gauge({
      name: 'tollgate_objects_watched',
      help: 'Objects in the watch cache.',
      labelNames: ['kind'],
      registers: [registry],
    }),
    programmed: new Gauge({
      name: 'tollgate_programmed',
      help: 'What the node table holds: chains, sets, set elements, local pods.',
      labelNames: ['what'],
      registers: [registry],
    }),
    netlinkErrors: new Counter({
      name: 'tollgate_netlink_errors_total',
      help: 'Batches the kernel rejected (nothing applied).',
      registers: [registry],
    }),
    watchRestarts: new Gauge({
      name: 'tollgate_watch_restarts_total',
      help: 'Watch streams restarted (errors, 410 Gone, watchdog).',
      labelNames: ['kind'],
      registers: [registry],
    }),
    syncs: new Counter({
      name: 'tollgate_syncs_total',
      help: 'Syncs by kind (full, diff, none) and result.',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    consecutiveFailures: new Gauge({
      name: 'tollgate_sync_failures_consecutive',
      help: 'Syncs that failed in a row (0 after a successful one).',
      registers: [registry],
    }),
    lastSuccess: new Gauge({
      name: 'tollgate_last_successful_sync_timestamp_seconds',
      help: 'Unix time of the last successful sync.',
      registers: [registry],
    }),
    repairs: new Counter({
      name: 'tollgate_repairs_total',
      help: 'Tables repaired, by cause: verify (the periodic comparison), notification (another process changed the table), recovery (a rejected batch, programmed again from the kernel).',
      labelNames: ['cause'],
      registers: [registry],
    }),
    foreignChanges: new Counter({
      name: 'tollgate_table_changes_by_others_total',
      help: 'Transactions of other processes that changed our table (from nf_tables notifications), or lost notifications.',
      registers: [registry],
    }),
    notificationsLost: new Counter({
      name: 'tollgate_table_notifications_lost_total',
      help: 'Times the kernel dropped nf_tables notifications for our monitor (receive queue full); each leads to a full comparison with the kernel.',
      registers: [registry],
    }),
    standby: new Gauge({
      name: 'tollgate_standby',
      help: "1 while another agent writes this node's table and this one waits to take over.",
      registers: [registry],
    }),
    deniedConnections: new Counter({
      name: 'tollgate_denied_connections_total',
      help: 'Denied new connections reported by the kernel (kind deny, or would-deny for audit policies), by direction and the local pod namespace.',
      labelNames: ['direction', 'namespace', 'kind'],
      registers: [registry],
    }),
    reportsSuppressed: new Counter({
      name: 'tollgate_drop_reports_suppressed_total',
      help: "Denied new connections dropped unreported by the node's report limit (--drop-report-rate).",
      registers: [registry],
    }),
    reportsLost: new Counter({
      name: 'tollgate_drop_reports_lost_total',
      help: 'Reports the kernel made but could not deliver to the agent (a full receive queue).',
      registers: [registry],
    }),
    reportsSkipped: new Counter({
      name: 'tollgate_drop_reports_skipped_total',
      help: 'Reports not logged: foreign (another rule of the group), headers (no addresses), quiet (namespace opted out), undecodable (an nflog message that did not parse).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    reportsBound: new Gauge({
      name: 'tollgate_drop_reports_listening',
      help: "1 while the agent holds the report rules' nflog group.",
      registers: [registry],
    }),
    reportBindFailures: new Counter({
      name: 'tollgate_drop_report_bind_failures_total',
      help: 'Failed binds of the nflog group (EPERM: another socket holds it); each is retried with backoff.',
      registers: [registry],
    }),
    invalidObjects: new Gauge({
      name: 'tollgate_invalid_objects',
      help: 'Validation problems in watched policies (bad rules allow nothing).',
      registers: [registry],
    }),
    ...cutMetrics(registry),
    ...usageMetrics(registry),
  };
}

/** --established=cut (src/agent/cut.ts); labels stay bounded: the direction only. */
function cutMetrics(registry: Registry) {
  return {
    pickupsDropped: new Counter({
      name: 'tollgate_established_pickups_dropped_total',
      help: 'New pod TCP packets dropped because they are no bare SYN (--established=cut: a cut connection must not be picked up again mid-stream by conntrack), from the counters of those rules.',
      registers: [registry],
    }),
    connectionsCut: new Counter({
      name: 'tollgate_connections_cut_total',
      help: 'Established connections whose conntrack entry was deleted because the policies no longer allow them (--established=cut), by the direction that denies them.',
      labelNames: ['direction'],
      registers: [registry],
    }),
    connectionCutErrors: new Counter({
      name: 'tollgate_connection_cut_errors_total',
      help: 'Failed conntrack dumps or deletes while cutting connections (the pass is retried with backoff).',
      registers: [registry],
    }),
    cutPasses: new Counter({
      name: 'tollgate_cut_passes_total',
      help: 'Cut passes (src/agent/cut-worker.ts) by result: ok, or error (a dump or delete failed; retried with backoff).',
      labelNames: ['result'],
      registers: [registry],
    }),
    cutPassDuration: new Histogram({
      name: 'tollgate_cut_pass_duration_seconds',
      help: 'Time of one cut pass: dumping the conntrack table, deciding each entry, deleting the denied ones.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    cutPassStarted: new Gauge({
      name: 'tollgate_cut_pass_started_timestamp_seconds',
      help: 'When the cut pass in progress started (0: none runs); a stuck pass shows as an old timestamp.',
      registers: [registry],
    }),
    cutPassWaiting: new Gauge({
      name: 'tollgate_cut_pass_waiting',
      help: '1: a changing sync asked for a cut pass while one runs; one more pass runs after it, against the newest index.',
      registers: [registry],
    }),
  };
}

/** --policy-usage (src/agent/usage.ts): one series per policy, direction and verdict, never pods. */
function usageMetrics(registry: Registry) {
  return {
    policyConnections: new Counter({
      name: 'tollgate_policy_connections_total',
      help:
        'New connections by policy (namespace "" and policy cnp/NAME for a ClusterNetworkPolicy), direction and verdict. ' +
        'allowed: sampled from conntrack every --policy-usage-interval, each policy whose rules allow the connection ' +
        '(a connection opened and gone within one interval is missed; TCP entries outlive the connection by 120 s). ' +
        'denied, would-deny: from the drop reports, each isolating policy; denials over the report limit are not ' +
        'attributed (tollgate_drop_reports_suppressed_total counts them for the node). Series go with their policy.',
      labelNames: ['namespace', 'policy', 'direction', 'verdict'],
      registers: [registry],
    }),
    policyUsagePasses: new Counter({
      name: 'tollgate_policy_usage_passes_total',
      help: 'Usage passes (conntrack dumps for the allowed counts) by result: ok, or error (retried at the next interval).',
      labelNames: ['result'],
      registers: [registry],
    }),
    policyUsagePassDuration: new Histogram({
      name: 'tollgate_policy_usage_pass_duration_seconds',
      help: 'Time of one usage pass: dumping the conntrack table and attributing the new entries.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
