// `tollgate agent`: runs the per-node agent until SIGTERM/SIGINT. Parses flags, builds the parts, and
// leaves the node's table in place on exit (enforcement must not stop because the agent restarts).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import {
  DEFAULT_AGENT_OPTIONS,
  POLICY_USAGE_FLAGS,
  policyUsageOptions,
  policyUsageUsage,
  REPORT_FLAGS,
  reportOptions,
  reportUsage,
} from '../agent/options.ts';
import { NetlinkProgrammer } from '../agent/programmer.ts';
import { MIN_BATCH_BYTES } from '../compile/program.ts';
import type { ListWatch } from '../k8s/client.ts';
import { UsageError } from '../util/errors.ts';
import { type Command, parseCommandArgs, rejectPositionals } from './command.ts';

/** One full garbage collection, without --expose-gc on the command line (it installs `gc` only in a new
 *  context, not in the agent's). */
export function fullCollection(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function ms(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1)
    throw new UsageError(`--${flag} must be a positive number of milliseconds, not '${value}'`);
  return n;
}

function onOff(flag: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(`--${flag} must be true or false, not '${value}'`);
}

/** --max-batch-bytes: a whole number no smaller than the smallest batch the staged programmer can plan. */
function batchBytes(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < MIN_BATCH_BYTES)
    throw new UsageError(
      `--max-batch-bytes must be a whole number of at least ${MIN_BATCH_BYTES}, not '${value}'`,
    );
  return n;
}

function heapGrowthPercent(value: string | undefined): number {
  if (value === undefined) return DEFAULT_AGENT_OPTIONS.heapGrowthPercent;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 1000)
    throw new UsageError(`--heap-growth-percent must be an integer from 0 to 1000, not '${value}'`);
  return n;
}

export const agentCommand: Command = {
  name: 'agent',
  usage: [
    'Usage: tollgate agent [--node-name NAME] [--kubeconfig FILE] [--metrics-addr HOST:PORT] [options]',
    '',
    "Watches Pods, Namespaces, NetworkPolicies and Nodes and keeps this node's `inet tollgate` table equal",
    'to what the policies say, over netlink (one atomic batch per change). Runs until SIGTERM or SIGINT;',
    'the table stays in place when it stops (`tollgate cleanup` removes it). Logs JSON lines to stdout.',
    '',
    'Options:',
    '  --node-name NAME          this node (default: $NODE_NAME)',
    '  --kubeconfig FILE         default: in-cluster service account',
    `  --metrics-addr HOST:PORT  /metrics, /healthz, /readyz (default ${DEFAULT_AGENT_OPTIONS.metricsAddr}; "off" disables)`,
    `  --min-sync-interval-ms N  coalesce bursts into syncs at least N ms apart (default ${DEFAULT_AGENT_OPTIONS.minSyncIntervalMs})`,
    `  --verify-interval-ms N    compare the table with the kernel and repair drift (default ${DEFAULT_AGENT_OPTIONS.verifyIntervalMs})`,
    `  --watch-quiet-ms N        restart a watch with no event for N ms (default ${DEFAULT_AGENT_OPTIONS.watchQuietMs})`,
    `  --relist-interval-ms N    full relist of every watch (default ${DEFAULT_AGENT_OPTIONS.relistIntervalMs})`,
    `  --heap-growth-percent N   once the cluster is listed and synced, start a full garbage collection when the`,
    `                            heap has grown N% past what the last one kept (default ${DEFAULT_AGENT_OPTIONS.heapGrowthPercent}; 0 leaves it to V8,`,
    `                            which lets it grow up to 4x)`,
    `  --liveness-timeout-ms N   /healthz fails (503, with the reason) when syncs have failed, one sync has run,`,
    `                            or the watches have been down or the cluster not listed, for N ms, so that the`,
    `                            kubelet restarts the agent (default ${DEFAULT_AGENT_OPTIONS.livenessTimeoutMs})`,
    `  --state-dir DIR           keeps the node's pod ranges here for the boot-closed table (default`,
    `                            ${DEFAULT_AGENT_OPTIONS.stateDir}; "off": no state file, the CNI bridge cni0 is asked)`,
    '  --boot-closed=BOOL        true (default): when the node has no tollgate table at start (a reboot), program',
    "                            one that drops forwarded traffic from and to the node's pod ranges (replies of",
    '                            existing connections pass) until the first complete list of the cluster has',
    '                            been programmed. Trade-off: while the API server is unreachable after a reboot,',
    "                            this node's pods have no network (instead of no policy). false: no table until",
    '                            then. An existing table (an agent restart) is always left as it is.',
    '  --established=MODE        keep (default): a policy change leaves established connections alone (their',
    '                            replies pass); cut: after each change, delete the conntrack entries of this',
    "                            node's connections that the policies no longer allow (logged, counted in",
    '                            tollgate_connections_cut_total)',
    ...reportUsage(25),
    ...policyUsageUsage(25),
    '  --log-level LEVEL         trace, debug, info (default), warn, error',
    '  -h, --help                show this help',
    '',
    'Faults it heals: a rejected batch is programmed again from what the kernel lists; the table is compared',
    'with the kernel every --verify-interval-ms and at once when another process changes it (nf_tables',
    'notifications). One agent writes per node (an abstract unix socket lock in the network namespace); a',
    'second one waits as "standby" (see /readyz) and takes over when the first exits.',
  ].join('\n'),
  async run(argv) {
    const { values, positionals } = parseCommandArgs(this, argv, {
      'node-name': { type: 'string' },
      kubeconfig: { type: 'string' },
      'metrics-addr': { type: 'string' },
      'min-sync-interval-ms': { type: 'string' },
      'verify-interval-ms': { type: 'string' },
      'watch-quiet-ms': { type: 'string' },
      'relist-interval-ms': { type: 'string' },
      'log-level': { type: 'string' },
      'heap-growth-percent': { type: 'string' },
      'liveness-timeout-ms': { type: 'string' },
      'state-dir': { type: 'string' },
      'boot-closed': { type: 'string' },
      established: { type: 'string' },
      // Hidden (not in the usage): caps one netlink batch, so tests can prove programming under small
      // socket limits on any machine.
      'max-batch-bytes': { type: 'string' },
      ...REPORT_FLAGS,
      ...POLICY_USAGE_FLAGS,
    });
    rejectPositionals(positionals, this.usage);
    const nodeName = values['node-name'] ?? process.env.NODE_NAME;
    if (!nodeName)
      throw new UsageError(
        'no node name: pass --node-name or set NODE_NAME (the DaemonSet sets it from spec.nodeName)',
      );
    const growth = heapGrowthPercent(values['heap-growth-percent']);
    const bootClosed = onOff('boot-closed', values['boot-closed'], true);
    const established = values.established ?? DEFAULT_AGENT_OPTIONS.established;
    if (established !== 'keep' && established !== 'cut')
      throw new UsageError(`--established must be keep or cut, not '${established}'`);
    const livenessTimeoutMs = ms(
      'liveness-timeout-ms',
      values['liveness-timeout-ms'],
      DEFAULT_AGENT_OPTIONS.livenessTimeoutMs,
    );
    const stateDirFlag = values['state-dir'] ?? DEFAULT_AGENT_OPTIONS.stateDir;
    const stateDir = stateDirFlag === 'off' ? undefined : stateDirFlag;
    // Like Go's GOGC: the agent's live heap is small (~50 MB at 10,000 pods) but it allocates per sync,
    // and V8's own policy lets garbage pile up to several times the live size between full collections
    // (RSS ~205 MB under a stream of changes in the agent benchmark). V8 reads this flag at every full
    // collection. It is set once the cluster has been listed and first synced: until then the heap
    // fills with objects that stay (the normalized cluster), and at 30% V8 ran ~8 full collections on
    // the way to 100,000 pods that found little to free (~0.9 s of CPU; the first sync waited ~0.3 s
    // longer for a CPU on two cores); V8's own growth there costs ~20 MB of peak RSS at 100,000 pods
    // and none measurable at 10,000.
    // The flag takes effect at the next full collection, and the limit the last one set (during the
    // list, with V8's own growth) let the heap reach ~250 MB at 100,000 pods before the first collection
    // after the sync: most of the agent's peak RSS. So one full collection right after the first sync:
    // the next limit follows the live heap (~150 MB) from then on. At 100,000 pods: peak RSS 359-402 ->
    // 328-352 MB, for one 76-91 ms pause (16-21 ms at 10,000), which a change arriving then waits for.
    // 50%, not 30%, since that collection: at 100,000 pods peak RSS 310-338 vs 356-373 MB and p99
    // 33-81 (median 48) vs 41-71 ms (median 51) over 7 interleaved pairs, 120 changes each (fewer full
    // collections, each keeping pooled pages, during a burst); at 10,000 pods the same (140-146 MB).
    const afterStartup =
      growth > 0
        ? () => {
            setFlagsFromString(`--heap-growing-percent=${growth}`);
            fullCollection();
          }
        : undefined;
    const metricsAddr = values['metrics-addr'] ?? DEFAULT_AGENT_OPTIONS.metricsAddr;
    if (metricsAddr !== 'off' && !/^(\[[0-9a-f:]+\]|[^:]*):\d{1,5}$/i.test(metricsAddr)) {
      throw new UsageError(`--metrics-addr must be HOST:PORT or off, not '${metricsAddr}'`);
    }
    const reports = reportOptions(values);
    const policyUsage = policyUsageOptions(values);
    const maxBatchBytes =
      values['max-batch-bytes'] === undefined ? undefined : batchBytes(values['max-batch-bytes']);
    // Loaded only when the agent runs. In-cluster the client reads the service-account files itself; only
    // --kubeconfig loads @kubernetes/client-node (large and slow to load) to parse the file.
    const { Agent } = await import('../agent/agent.ts');
    const { nodeParts } = await import('../agent/parts.ts');
    const { ApiClient, loadClientConfig } = await import('../k8s/client.ts');
    // Synchronous writes, as Go components log: a line is out when the call returns, so a SIGKILL loses
    // nothing, and no line waits behind a busy thread pool (it delayed the "synced" line by up to 25 ms
    // after the batch in the agent benchmark). One line per sync keeps the blocking negligible.
    const log = pino(
      { level: values['log-level'] ?? 'info', base: { node: nodeName } },
      pino.destination({ dest: 1, sync: true }),
    );
    // The configuration loads (with --kubeconfig: @kubernetes/client-node, ~1 s) while the agent starts:
    // the lock and the boot-closed table need no API server, and a rebooted node is closed sooner. The
    // store's first list waits for the client; a configuration that does not load still ends the agent
    // with a usage error (leaving whatever table it found or programmed).
    const client = loadClientConfig(values.kubeconfig, {
      // TOLLGATE_SERVICEACCOUNT_DIR: another directory than the pod's, for tests and benchmarks.
      dir: process.env.TOLLGATE_SERVICEACCOUNT_DIR,
    }).then(
      (config) => new ApiClient(config),
      (error: Error) => {
        throw new UsageError(
          `cannot load ${values.kubeconfig ? `kubeconfig ${values.kubeconfig}` : 'the in-cluster configuration'}: ${error.message}`,
        );
      },
    );
    client.catch(() => {}); // awaited below; the store's calls get the error too
    const lazy: ListWatch = {
      listPage: async (...args) => (await client).listPage(...args),
      watch: async (...args) => (await client).watch(...args),
    };
    const programmer = new NetlinkProgrammer();
    const agent = new Agent(
      lazy,
      programmer,
      log,
      {
        nodeName,
        ...(afterStartup === undefined ? {} : { afterStartup }),
        metricsAddr: metricsAddr === 'off' ? undefined : metricsAddr,
        minSyncIntervalMs: ms(
          'min-sync-interval-ms',
          values['min-sync-interval-ms'],
          DEFAULT_AGENT_OPTIONS.minSyncIntervalMs,
        ),
        verifyIntervalMs: ms(
          'verify-interval-ms',
          values['verify-interval-ms'],
          DEFAULT_AGENT_OPTIONS.verifyIntervalMs,
        ),
        watchQuietMs: ms('watch-quiet-ms', values['watch-quiet-ms'], DEFAULT_AGENT_OPTIONS.watchQuietMs),
        relistIntervalMs: ms(
          'relist-interval-ms',
          values['relist-interval-ms'],
          DEFAULT_AGENT_OPTIONS.relistIntervalMs,
        ),
        ...(maxBatchBytes === undefined ? {} : { maxBatchBytes }),
        livenessTimeoutMs,
        bootClosed,
        established,
        ...(stateDir === undefined ? {} : { stateDir }),
        ...(reports === undefined ? {} : { reports }),
        ...(policyUsage === undefined ? {} : { policyUsage }),
      },
      nodeParts(nodeName),
    );
    await agent.start();
    try {
      await client;
    } catch (error) {
      await agent.stop();
      programmer.close();
      throw error;
    }
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log.info({ signal }, 'shutting down');
    await agent.stop();
    programmer.close();
    return 0;
  },
};
