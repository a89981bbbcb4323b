// `tollgate drops`: the denied connections the agents report, followed live through the API (the logs of
// the DaemonSet's pods, with the CLI user's own RBAC), filtered and printed as report lines or JSON.
// Reads only: never talks to a node or changes an object.
import type { ApiClient } from '../k8s/client.ts';
import { type DropReport, ReportFormatError, reportLine, reportOfLogLine } from '../nflog/report.ts';
import { TollgateError, UsageError } from '../util/errors.ts';
import { type Command, type CommandIO, parseCommandArgs, rejectPositionals } from './command.ts';
import { AGENT_LOG_FLAGS, clusterClient } from './explain.ts';

/** Where the shipped manifests (daemonset/, the chart's default) run the agents. */
export const AGENT_NAMESPACE = 'tollgate-system';
export const AGENT_SELECTOR = 'app.kubernetes.io/name=tollgate,app.kubernetes.io/component=agent';
export const AGENT_CONTAINER = 'agent';
/** While following, how often the agent pods are listed again (a rolling update replaces them). */
const RELIST_MS = 30_000;
/** Lines remembered per pod to drop the overlap when a pod's log is followed again. */
const SEEN_LINES = 2000;

/** code E_DROPS_API: the API refused or failed what `tollgate drops` needs (names the request and RBAC). */
export class DropsError extends TollgateError<'E_DROPS_API'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_DROPS_API', message, options);
  }
}

export interface DropFilter {
  namespace?: string | undefined;
  pod?: string | undefined;
  policy?: string | undefined;
  node?: string | undefined;
}

/** Whether a report passes the filters: namespace and pod match either end, policy any of its policies. */
export function reportMatches(r: DropReport, f: DropFilter): boolean {
  const pods = [r.src.pod, r.dst.pod].filter((p): p is string => p !== undefined);
  if (f.namespace !== undefined && !pods.some((p) => p.startsWith(`${f.namespace}/`))) return false;
  if (f.pod !== undefined && !pods.includes(f.pod)) return false;
  if (f.policy !== undefined && !r.policies.includes(f.policy)) return false;
  if (f.node !== undefined && r.node !== f.node) return false;
  return true;
}

/** One output line: time, node and the scenario-file line (text), or the report as one JSON object. */
export function formatReport(r: DropReport, output: 'text' | 'json'): string {
  return output === 'json' ? JSON.stringify(r) : `${r.at} ${r.node} ${reportLine(r)}`;
}

/** `30s`, `10m`, `2h` as whole seconds. */
export function parseSince(text: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(text);
  if (!m || Number(m[1]) === 0)
    throw new UsageError(`--since: '${text}' is not a duration such as 30s, 10m or 2h`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
}

const RBAC_HINT =
  'tollgate drops reads the agents through the API: it needs get and list on pods, and get on pods/log, ' +
  'in the agents\' namespace (see "tollgate drops" in the README)';

function apiError(what: string, error: unknown): DropsError {
  const status = (error as { status?: unknown }).status;
  const hint = status === 401 || status === 403 ? `; ${RBAC_HINT}` : '';
  return new DropsError(`${what}: ${(error as Error).message}${hint}`, { cause: error });
}

export interface FollowOptions {
  agentNamespace: string;
  selector: string;
  container: string;
  filter: DropFilter;
  sinceSeconds: number;
  follow: boolean;
  output: 'text' | 'json';
  /** While following, how often the agent pods are listed again (tests shorten it). */
  relistMs?: number;
}

interface Agent {
  name: string;
  node: string;
}

/**
 * Follows every agent pod's log: reports that pass the filter go to `io.out`, report records that do not
 * parse to `io.err` (once per pod). Without `follow`, resolves when every log has been read to its end;
 * with it, when `stop` resolves (SIGINT in the CLI).
 */
export async function followDrops(
  client: Pick<ApiClient, 'listPage' | 'followLines'>,
  o: FollowOptions,
  io: CommandIO,
  stop: Promise<void>,
): Promise<void> {
  const warned = new Set<string>();
  const onLine = (pod: string, line: string) => {
    let r: DropReport | undefined;
    try {
      r = reportOfLogLine(line);
    } catch (error) {
      if (!(error instanceof ReportFormatError)) throw error;
      if (!warned.has(pod)) io.err(`tollgate drops: ${o.agentNamespace}/${pod}: ${error.message}`);
      warned.add(pod);
      return;
    }
    if (r !== undefined && reportMatches(r, o.filter)) io.out(formatReport(r, o.output));
  };
  await followAgentLogs(client, { ...o, node: o.filter.node }, io, stop, onLine);
}

/** Which agents' logs followAgentLogs reads, from when, and whether it follows them. */
export interface AgentLogOptions {
  agentNamespace: string;
  selector: string;
  container: string;
  /** Only the agent of this node. */
  node?: string | undefined;
  sinceSeconds: number;
  follow: boolean;
  /** While following, how often the agent pods are listed again (tests shorten it). */
  relistMs?: number;
}

/**
 * Every agent pod's log lines, each once (by pod), through the API (`tollgate drops`, `tollgate explain
 * --policy`). Without `follow`, resolves when every log has been read to its end; with it, when `stop`
 * resolves. A log that cannot be read fails the call without `follow` and is retried at the next re-list
 * with it.
 */
export async function followAgentLogs(
  client: Pick<ApiClient, 'listPage' | 'followLines'>,
  o: AgentLogOptions,
  io: CommandIO,
  stop: Promise<void>,
  onLine: (pod: string, line: string) => void,
): Promise<void> {
  /** By pod: set before the request goes out, so a re-list meanwhile does not follow the pod twice. */
  const streams = new Map<string, { controller: AbortController | undefined; ended: Promise<void> }>();
  let stopped = false;
  const seen = new Map<string, string[]>();
  const lastEnd = new Map<string, Date>();
  let failure: DropsError | undefined;

  const listAgents = async (): Promise<Agent[]> => {
    const path = `/api/v1/namespaces/${encodeURIComponent(o.agentNamespace)}/pods`;
    const agents: Agent[] = [];
    let cont: string | undefined;
    do {
      let page: Awaited<ReturnType<ApiClient['listPage']>>;
      try {
        page = await client.listPage(`${path}?labelSelector=${encodeURIComponent(o.selector)}`, {
          limit: 500,
          ...(cont ? { continue: cont } : {}),
        });
      } catch (error) {
        throw apiError(`listing the agent pods in ${o.agentNamespace}`, error);
      }
      for (const item of page.items) {
        const meta = (item.metadata ?? {}) as { name?: string };
        const node = ((item.spec ?? {}) as { nodeName?: string }).nodeName ?? '';
        if (meta.name && (o.node === undefined || node === o.node)) agents.push({ name: meta.name, node });
      }
      cont = page.continue;
    } while (cont);
    return agents;
  };

  const onNewLine = (pod: string, line: string) => {
    const recent = seen.get(pod) ?? [];
    if (recent.includes(line)) return; // the overlap of a log followed again
    recent.push(line);
    if (recent.length > SEEN_LINES) recent.splice(0, recent.length - SEEN_LINES);
    seen.set(pod, recent);
    onLine(pod, line);
  };

  const followPod = async (agent: Agent) => {
    const path = `/api/v1/namespaces/${encodeURIComponent(o.agentNamespace)}/pods/${encodeURIComponent(agent.name)}/log`;
    const again = lastEnd.get(agent.name);
    const query = {
      container: o.container,
      follow: o.follow ? 'true' : undefined,
      ...(again
        ? { sinceTime: new Date(again.getTime() - 1000).toISOString().replace(/\.\d+Z$/, 'Z') }
        : { sinceSeconds: String(o.sinceSeconds) }),
    };
    let resolveEnded!: () => void;
    const ended = new Promise<void>((r) => {
      resolveEnded = r;
    });
    const entry: { controller: AbortController | undefined; ended: Promise<void> } = {
      controller: undefined,
      ended,
    };
    streams.set(agent.name, entry);
    entry.controller = await client.followLines(
      path,
      query,
      (line) => onNewLine(agent.name, line),
      (error) => {
        lastEnd.set(agent.name, new Date());
        if (streams.get(agent.name) === entry) streams.delete(agent.name);
        const aborted = (error as { name?: unknown } | null)?.name === 'AbortError';
        if (error !== null && !aborted) {
          const e = apiError(`reading the log of ${o.agentNamespace}/${agent.name}`, error);
          // Without follow a log that cannot be read is a failure; following, the next list retries.
          if (!o.follow) failure ??= e;
          else io.err(`tollgate drops: ${e.message}`);
        }
        resolveEnded();
      },
    );
    if (stopped) entry.controller.abort();
  };

  const agents = await listAgents();
  if (agents.length === 0)
    throw new DropsError(
      `no agent pods in ${o.agentNamespace} with ${o.selector}${o.node ? ` on node ${o.node}` : ''}`,
    );
  for (const a of agents) await followPod(a);
  if (!o.follow) {
    await Promise.all([...streams.values()].map((s) => s.ended));
    if (failure) throw failure;
    return;
  }
  const relist = setInterval(() => {
    void listAgents()
      .then(async (now) => {
        for (const a of now) if (!stopped && !streams.has(a.name)) await followPod(a);
      })
      .catch((error: unknown) => io.err(`tollgate drops: ${(error as Error).message}`));
  }, o.relistMs ?? RELIST_MS);
  try {
    await stop;
  } finally {
    stopped = true;
    clearInterval(relist);
    for (const s of streams.values()) s.controller?.abort();
  }
}

export const dropsCommand: Command = {
  name: 'drops',
  usage: [
    'Usage: tollgate drops [--kubeconfig FILE] [filters] [--since 10m] [--output text|json] [--no-follow]',
    '',
    'Follows the connections the agents deny (and would deny, for audit-mode policies) as they report',
    'them in their logs, read through the API with your own credentials (get/list pods, get pods/log in the',
    "agents' namespace). One line per report: time, node, `SRC -> DST:PORT/PROTO DIRECTION POLICIES",
    "[would-deny]`, the form of a scenario file's drops step; --output json prints each report as JSON.",
    '',
    'Filters (all must hold):',
    '  --namespace, -n NS   a pod of this namespace at either end',
    '  --pod NS/NAME        this pod at either end',
    '  --policy NS/NAME     this policy among what denied it (a ClusterNetworkPolicy: cnp/NAME)',
    "  --node NAME          reported by this node (ingress: the destination's, egress: the source's)",
    '',
    'Options:',
    '  --kubeconfig FILE    the cluster (default: the in-cluster configuration)',
    '  --since DURATION     start this far back in the logs: 30s, 10m (default), 2h',
    '  --no-follow          print what the logs hold and exit',
    `  --agent-namespace NS the agents' namespace (default ${AGENT_NAMESPACE})`,
    `  --agent-selector SEL their pods' labels (default ${AGENT_SELECTOR})`,
    '  --output text|json',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(this, argv, {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      pod: { type: 'string' },
      policy: { type: 'string' },
      node: { type: 'string' },
      'no-follow': { type: 'boolean' },
      output: { type: 'string' },
      ...AGENT_LOG_FLAGS,
    });
    rejectPositionals(positionals, this.usage);
    const output = values.output ?? 'text';
    if (output !== 'text' && output !== 'json')
      throw new UsageError(`--output: '${output}' is not text or json\n\n${this.usage}`);
    for (const flag of ['pod', 'policy'] as const) {
      const v = values[flag];
      if (v !== undefined && !/^[^/\s]+\/[^/\s]+$/.test(v))
        throw new UsageError(`--${flag}: '${v}' is not NAMESPACE/NAME`);
    }
    const sinceSeconds = parseSince(values.since ?? '10m');
    const client = await clusterClient(values.kubeconfig);
    const follow = values['no-follow'] !== true;
    const stop = new Promise<void>((resolve) => {
      if (follow) {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      }
    });
    await followDrops(
      client,
      {
        agentNamespace: values['agent-namespace'] ?? AGENT_NAMESPACE,
        selector: values['agent-selector'] ?? AGENT_SELECTOR,
        container: AGENT_CONTAINER,
        filter: { namespace: values.namespace, pod: values.pod, policy: values.policy, node: values.node },
        sinceSeconds,
        follow,
        output,
      },
      io,
      stop,
    );
    return 0;
  },
};
