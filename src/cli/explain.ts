// `tollgate explain`: the verdict for one connection and why, from the live cluster or from files.
// Reads objects, runs the reference evaluator, prints its explanation; changes nothing anywhere.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiClient } from '../k8s/client.ts';
import { type Address, parseAddress } from '../policy/address.ts';
import { CLUSTER_POLICY_KIND, withClusterPolicies } from '../policy/cluster-normalize.ts';
import { formatIssue } from '../policy/errors.ts';
import { endpointAt } from '../policy/evaluate.ts';
import { ClusterIndex } from '../policy/index.ts';
import { buildState, type ClusterObjects } from '../policy/normalize.ts';
import { evaluateTiers, explainTierVerdict, priorityTies } from '../policy/tiers.ts';
import { UsageError } from '../util/errors.ts';
import { yamlDocuments } from '../util/yaml.ts';
import { type Command, parseCommandArgs, rejectPositionals } from './command.ts';

/** The files --manifests PATH names: the file itself, or every .yaml/.yml below a directory, sorted. */
export function manifestFiles(path: string): string[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (error) {
    throw new UsageError(`${path}: no such file or directory`, { cause: error });
  }
  return isDir
    ? readdirSync(path, { recursive: true })
        .map(String)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => join(path, f))
    : [path];
}

/** ClusterObjects and the ClusterNetworkPolicies (raw), which buildState does not read. */
export type ManifestObjects = ClusterObjects & { clusterPolicies?: unknown[] };

/** Kubernetes YAML files (a file or every .yaml/.yml below a directory) sorted into kinds. */
export function readManifests(path: string, files = manifestFiles(path)): ManifestObjects {
  const out: Required<ManifestObjects> = {
    namespaces: [],
    nodes: [],
    pods: [],
    policies: [],
    clusterPolicies: [],
  };
  for (const file of files) {
    for (const doc of yamlDocuments(readFileSync(file, 'utf8'), file)) {
      const o = doc as { kind?: string; items?: unknown[] } | null;
      const items = o?.kind?.endsWith('List') ? (o.items as { kind?: string }[]) : [o];
      for (const item of items as ({ kind?: string } | null)[]) {
        if (item?.kind === 'Namespace') out.namespaces.push(item);
        else if (item?.kind === 'Node') out.nodes.push(item);
        else if (item?.kind === 'Pod') out.pods.push(item);
        else if (item?.kind === 'NetworkPolicy') out.policies.push(item);
        else if (item?.kind === CLUSTER_POLICY_KIND) out.clusterPolicies.push(item);
      }
    }
  }
  // Namespaces that pods or policies use but no file declares still exist (with their name label).
  const declared = new Set(out.namespaces.map((n) => (n as { metadata?: { name?: string } }).metadata?.name));
  for (const o of [...out.pods, ...out.policies] as { metadata?: { namespace?: string } }[]) {
    const ns = o.metadata?.namespace ?? 'default';
    if (!declared.has(ns)) {
      declared.add(ns);
      out.namespaces.push({ metadata: { name: ns } });
    }
  }
  return out;
}

function parsePort(text: string): { port: number; protocol: string } {
  const m = /^(\d{1,5})?(?:\/([A-Za-z]+))?$/.exec(text);
  const protocol = (m?.[2] ?? 'TCP').toUpperCase();
  if (!m || (m[1] === undefined && !['ICMP', 'ICMPV6'].includes(protocol))) {
    throw new UsageError(`--port must be PORT[/TCP|UDP|SCTP] or /ICMP, not '${text}'`);
  }
  return { port: Number(m[1] ?? 0), protocol };
}

/** NS/POD or an IP address; a pod uses the address of `family` (or its first). */
function resolve(index: ClusterIndex, text: string, family: 4 | 6 | undefined): Address {
  const ip = parseAddress(text);
  if (ip) return ip;
  const pod = index.state.pods.find((p) => p.key === text);
  if (!pod) throw new UsageError(`'${text}' is neither an IP address nor a known pod (NAMESPACE/NAME)`);
  if (pod.hostNetwork) {
    const node = index.node(pod.nodeName);
    const a = node?.addresses.find((x) => family === undefined || x.family === family);
    if (!a)
      throw new UsageError(
        `pod ${text} uses the host network and node ${pod.nodeName ?? '?'} has no known address`,
      );
    return a;
  }
  const a = pod.ips.find((x) => family === undefined || x.family === family);
  if (!a) throw new UsageError(`pod ${text} has no ${family ? `IPv${family} ` : ''}address (status.podIPs)`);
  return a;
}

/** Where a command reads the cluster from: one of these, or the in-cluster configuration. */
export interface ObjectSource {
  kubeconfig?: string | undefined;
  scenario?: string | undefined;
  step?: string | undefined;
  manifests?: string | undefined;
}

/** The flags that give an ObjectSource (explain, lint). */
export const OBJECT_SOURCE_FLAGS = {
  kubeconfig: { type: 'string' },
  scenario: { type: 'string' },
  step: { type: 'string' },
  manifests: { type: 'string' },
} as const;

/** The flags of the commands that read the agents' logs through the API (drops, explain --policy). */
export const AGENT_LOG_FLAGS = {
  since: { type: 'string' },
  'agent-namespace': { type: 'string' },
  'agent-selector': { type: 'string' },
} as const;

/** A UsageError when more than one source is given. */
export function assertOneSource(source: ObjectSource): void {
  const given = [source.kubeconfig, source.scenario, source.manifests].filter((v) => v !== undefined);
  if (given.length > 1) throw new UsageError('give at most one of --kubeconfig, --scenario, --manifests');
}

/** The objects of a source (explain's --scenario, --manifests, --kubeconfig or in-cluster). */
export async function loadObjects(source: ObjectSource): Promise<ManifestObjects> {
  // Loaded only here: the agent image leaves the scenario model out (src/scenario).
  if (source.scenario)
    return (await import('./scenario-objects.ts')).scenarioObjects(source.scenario, source.step);
  if (source.manifests) return readManifests(source.manifests);
  const { listCluster } = await import('../k8s/store.ts');
  return listCluster(await clusterClient(source.kubeconfig));
}

/** A client of the cluster of a kubeconfig file, or of the in-cluster configuration (explain, lint, drops). */
export async function clusterClient(kubeconfig: string | undefined): Promise<ApiClient> {
  // Loaded only here: the Kubernetes client library is large and slow to load.
  const { ApiClient, loadClientConfig } = await import('../k8s/client.ts');
  try {
    return new ApiClient(await loadClientConfig(kubeconfig));
  } catch (error) {
    throw new UsageError(
      `cannot load ${kubeconfig ?? 'the in-cluster configuration'}: ${(error as Error).message}`,
    );
  }
}

export const explainCommand: Command = {
  name: 'explain',
  usage: [
    'Usage: tollgate explain --from NS/POD|IP --to NS/POD|IP --port PORT[/PROTO] [SOURCE]',
    '       tollgate explain --policy NS/NAME|cnp/NAME [--since 1h] [SOURCE]',
    '',
    'Prints ALLOW or DENY for a new connection and why: which policies isolate the source (egress) and',
    'the destination (ingress), and which rule (policy, direction, rule, peer and port index) allows it,',
    'or that none does. Validation problems of the policies are printed too (a bad rule allows nothing).',
    'With ClusterNetworkPolicies, each direction shows its tier chain, e.g.',
    '  [Admin] guard rule 2 (from[0]) Pass → [NetworkPolicy] prod/db allows (ingress[0]): allowed',
    '',
    'Source of the objects (default: the live cluster through the in-cluster configuration):',
    '  --kubeconfig FILE   the live cluster through this kubeconfig',
    '  --scenario FILE     a scenario file, after all steps (or --step K: steps 0..K)',
    '  --manifests PATH    a YAML file or a directory of them (Namespaces, Pods with status.podIP, Nodes,',
    '                      NetworkPolicies, ClusterNetworkPolicies)',
    '',
    'PORT/PROTO: 80, 80/TCP, 53/UDP, 9000/SCTP, or /ICMP (rules with ports never allow ICMP).',
    '',
    '--policy: what the policy selects and which peers and ports each rule allows (the pods they match now).',
    'Against a live cluster it adds its use: the new connections it allowed and denied per direction, summed',
    "over the nodes from the agents' `policy usage` log lines within --since (default 1h), read through the",
    "API like `tollgate drops` (get/list pods, get pods/log in the agents' namespace; --agent-namespace,",
    '--agent-selector as there). Allowed counts are sampled from conntrack, denied ones come from the drop',
    'reports (see "Policy usage" in the README).',
    'Exit status: 0 allowed (or --policy), 3 denied, 2 usage error, 1 other error.',
  ].join('\n'),
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(this, argv, {
      from: { type: 'string' },
      to: { type: 'string' },
      port: { type: 'string' },
      policy: { type: 'string' },
      ...AGENT_LOG_FLAGS,
      ...OBJECT_SOURCE_FLAGS,
    });
    rejectPositionals(positionals, this.usage);
    if (values.policy !== undefined) {
      if (values.from || values.to || values.port)
        throw new UsageError(`--policy does not go with --from, --to or --port\n\n${this.usage}`);
      assertOneSource(values);
      // Loaded only here: the agent's usage module is not needed to explain a connection.
      return (await import('./policy-usage.ts')).explainPolicy(values.policy, values, io);
    }
    if (!values.from || !values.to || !values.port)
      throw new UsageError(`--from, --to and --port are required\n\n${this.usage}`);
    assertOneSource(values);
    const { port, protocol } = parsePort(values.port);

    const objects = await loadObjects(values);
    const index = new ClusterIndex(withClusterPolicies(buildState(objects), objects.clusterPolicies));
    const clusterPolicies = index.state.clusterPolicies ?? [];
    for (const p of [...index.state.policies, ...clusterPolicies])
      for (const issue of p.issues) io.err(`warning: ${formatIssue(issue)}`);
    for (const issue of priorityTies(clusterPolicies)) io.err(`warning: ${formatIssue(issue)}`);
    for (const issue of index.addressConflicts()) io.err(`warning: ${formatIssue(issue)}`);
    const fromIp = parseAddress(values.from);
    const toIp = parseAddress(values.to);
    const family = fromIp?.family ?? toIp?.family;
    const from = resolve(index, values.from, family);
    const to = resolve(index, values.to, family ?? from.family);
    if (from.family !== to.family) throw new UsageError('--from and --to are of different address families');
    const flow = { from: endpointAt(index, from), to: endpointAt(index, to), protocol, port };
    const verdict = evaluateTiers(index, flow);
    io.out(explainTierVerdict(index, flow, verdict));
    return verdict.allowed ? 0 : 3;
  },
};
