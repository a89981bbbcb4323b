// `tollgate explain --policy NS/NAME` (or cnp/NAME): what one policy selects and allows, from the objects,
// and with a live cluster how many new connections it allowed and denied, summed from the agents'
// `policy usage` log lines read through the API (src/agent/usage.ts writes them). Reads only.
import { USAGE_MESSAGE, type UsageRecord } from '../agent/usage.ts';
import type { ApiClient } from '../k8s/client.ts';
import { withClusterPolicies } from '../policy/cluster-normalize.ts';
import type { ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule } from '../policy/cluster-types.ts';
import { formatIssue } from '../policy/errors.ts';
import { ClusterIndex } from '../policy/index.ts';
import { buildState } from '../policy/normalize.ts';
import { matchesSelector } from '../policy/selector.ts';
import { subjectSelects } from '../policy/tiers.ts';
import type { Direction, LabelSelector, Peer, Pod, Policy, PolicyPort, Rule } from '../policy/types.ts';
import { UsageError } from '../util/errors.ts';
import type { CommandIO } from './command.ts';
import {
  AGENT_CONTAINER,
  AGENT_NAMESPACE,
  AGENT_SELECTOR,
  type AgentLogOptions,
  followAgentLogs,
  parseSince,
} from './drops.ts';
import { clusterClient, loadObjects, type ObjectSource } from './explain.ts';

/** Pods listed by name at most, per list; the rest are counted. */
const LIST_CAP = 10;

function selectorText(s: LabelSelector): string {
  const parts = Object.entries(s.matchLabels).map(([k, v]) => `${k}=${v}`);
  for (const e of s.matchExpressions)
    parts.push(
      e.operator === 'Exists'
        ? e.key
        : e.operator === 'DoesNotExist'
          ? `!${e.key}`
          : `${e.key} ${e.operator.toLowerCase()} (${e.values.join(',')})`,
    );
  return parts.join(',');
}

const podsText = (s: LabelSelector) => (selectorText(s) === '' ? 'every pod' : `pods ${selectorText(s)}`);
const namespacesText = (s: LabelSelector) =>
  selectorText(s) === '' ? 'every namespace' : `namespaces ${selectorText(s)}`;

function listPods(pods: readonly Pod[]): string {
  if (pods.length === 0) return 'none now';
  const names = pods.slice(0, LIST_CAP).map((p) => p.key);
  const more = pods.length > LIST_CAP ? ` and ${pods.length - LIST_CAP} more` : '';
  return `${names.join(', ')}${more}`;
}

function peerText(index: ClusterIndex, policy: Policy, peer: Peer): string {
  if (peer.kind === 'ipBlock')
    return `ipBlock ${peer.cidr}${peer.except.length > 0 ? ` except ${peer.except.join(', ')}` : ''}`;
  const where =
    peer.namespaces.kind === 'own'
      ? `in namespace ${policy.namespace}`
      : `in ${namespacesText(peer.namespaces.selector)}`;
  return `${podsText(peer.pods)} ${where} (now: ${listPods(index.podPeerMembers(peer, policy.namespace))})`;
}

function portText(p: PolicyPort): string {
  if (p.port === undefined) return `every ${p.protocol} port`;
  if (p.endPort !== undefined) return `${p.port}-${p.endPort}/${p.protocol}`;
  if (typeof p.port === 'string') return `${p.port}/${p.protocol} (named port)`;
  return `${p.port}/${p.protocol}`;
}

function ruleText(index: ClusterIndex, policy: Policy, direction: Direction, rule: Rule): string {
  if (rule.invalid) return `rule ${rule.index}: invalid, allows nothing (see the warnings)`;
  const list = direction === 'ingress' ? 'from' : 'to';
  const peers =
    rule.peers === undefined
      ? `${list} anywhere`
      : `${list} ${rule.peers.map((p) => peerText(index, policy, p)).join('; or ')}`;
  const ports = rule.ports === undefined ? 'every port' : `ports ${rule.ports.map(portText).join(', ')}`;
  return `rule ${rule.index}: ${peers}; ${ports}`;
}

function networkPolicyLines(index: ClusterIndex, policy: Policy): string[] {
  const selected = index.livePods.filter((pod) =>
    (policy.audit ? index.auditPoliciesSelecting(pod) : index.policiesSelecting(pod)).some(
      (p) => p.key === policy.key,
    ),
  );
  const lines = [
    `NetworkPolicy ${policy.key}${policy.audit ? ' (audit mode: enforces nothing, reports what it would deny)' : ''}`,
    `  selects ${podsText(policy.podSelector)} in namespace ${policy.namespace}: ${selected.length} pod(s) (${listPods(selected)})`,
  ];
  for (const direction of ['ingress', 'egress'] as const) {
    const rules = policy[direction];
    if (rules === undefined) {
      lines.push(`  ${direction}: not in policyTypes (this policy does not isolate it)`);
      continue;
    }
    lines.push(
      rules.length === 0
        ? `  ${direction}: isolates, allows nothing`
        : `  ${direction}: isolates; allowed (any rule):`,
    );
    for (const rule of rules) lines.push(`    ${ruleText(index, policy, direction, rule)}`);
  }
  return lines;
}

/** The live pods a CNP pod or namespace peer matches now (semantics 22). */
function clusterPeerPods(index: ClusterIndex, namespaces: LabelSelector, pods: LabelSelector | undefined) {
  return index.livePods.filter((pod) => {
    const ns = index.namespace(pod.namespace)?.labels;
    return (
      ns !== undefined &&
      matchesSelector(namespaces, ns) &&
      (pods === undefined || matchesSelector(pods, pod.labels))
    );
  });
}

function clusterPeerText(index: ClusterIndex, peer: ClusterPeer): string {
  switch (peer.kind) {
    case 'namespaces':
      return `every pod in ${namespacesText(peer.namespaces)} (now: ${listPods(clusterPeerPods(index, peer.namespaces, undefined))})`;
    case 'pods':
      return `${podsText(peer.pods)} in ${namespacesText(peer.namespaces)} (now: ${listPods(clusterPeerPods(index, peer.namespaces, peer.pods))})`;
    case 'nodes':
      return `nodes ${selectorText(peer.nodes) || '(every node)'} (${index.state.nodes.length} in the cluster)`;
    case 'networks':
      return `networks ${peer.cidrs.join(', ')}`;
  }
}

function clusterPortText(p: ClusterPort): string {
  if (p.kind === 'named') return `named port ${p.name}`;
  return p.first === p.last ? `${p.first}/${p.protocol}` : `${p.first}-${p.last}/${p.protocol}`;
}

function clusterRuleText(index: ClusterIndex, direction: Direction, rule: ClusterRule): string {
  const name = rule.name === '' ? '' : ` (${rule.name})`;
  if (rule.invalid)
    return `rule ${rule.index}${name}: invalid, fails closed (${rule.action === 'Accept' ? 'matches nothing' : 'denies'})`;
  const list = direction === 'ingress' ? 'from' : 'to';
  const ports =
    rule.ports === undefined ? 'every port' : `ports ${rule.ports.map(clusterPortText).join(', ')}`;
  return `rule ${rule.index}${name}: ${rule.action} ${list} ${rule.peers.map((p) => clusterPeerText(index, p)).join('; or ')}; ${ports}`;
}

function clusterPolicyLines(index: ClusterIndex, policy: ClusterPolicy): string[] {
  const selected = index.livePods.filter((pod) => subjectSelects(index, policy, pod));
  const subject =
    policy.subject.kind === 'namespaces'
      ? `every pod in ${namespacesText(policy.subject.namespaces)}`
      : `${podsText(policy.subject.pods)} in ${namespacesText(policy.subject.namespaces)}`;
  const lines = [
    `ClusterNetworkPolicy ${policy.name} (cnp/${policy.name}), tier ${policy.tier}, priority ${policy.priority}`,
    `  subject: ${subject}: ${selected.length} pod(s) (${listPods(selected)})`,
  ];
  for (const direction of ['ingress', 'egress'] as const) {
    const rules = policy[direction];
    if (rules.length === 0) {
      lines.push(`  ${direction}: no rules (does not affect it)`);
      continue;
    }
    lines.push(`  ${direction} (first matching rule decides):`);
    for (const rule of rules) lines.push(`    ${clusterRuleText(index, direction, rule)}`);
  }
  return lines;
}

/** The policy `name` names: NS/NAME (a NetworkPolicy) or cnp/NAME; a UsageError when there is none. */
export function describePolicy(index: ClusterIndex, name: string): string[] {
  if (name.startsWith('cnp/')) {
    const cnp = (index.state.clusterPolicies ?? []).find((c) => c.key === name.slice(4));
    if (cnp) return clusterPolicyLines(index, cnp);
  }
  const policy = index.state.policies.find((p) => p.key === name);
  if (policy) return networkPolicyLines(index, policy);
  const ns = name.slice(0, name.indexOf('/'));
  const there = index.state.policies.filter((p) => p.namespace === ns).map((p) => p.key);
  throw new UsageError(
    `--policy ${name}: no such NetworkPolicy${name.startsWith('cnp/') ? ' or ClusterNetworkPolicy' : ''}` +
      (there.length > 0 ? ` (namespace ${ns} has ${there.slice(0, LIST_CAP).join(', ')})` : ''),
  );
}

/** One policy's counts over the cluster: the newest line of each agent pod, summed over the nodes. */
export interface PolicyUsageSum {
  /** Agent pods whose logs (within --since) have a count for the policy. */
  counting: string[];
  byDirection: Record<Direction, { allowed: number; denied: number; wouldDeny: number }>;
}

/** A `policy usage` log line's records, or undefined for any other line (or one that does not parse). */
export function usageOfLogLine(line: string): UsageRecord[] | undefined {
  if (!line.includes(USAGE_MESSAGE)) return undefined;
  const json = line.slice(line.indexOf('{'));
  let o: { msg?: unknown; usage?: unknown };
  try {
    o = JSON.parse(json) as typeof o;
  } catch {
    return undefined;
  }
  if (o.msg !== USAGE_MESSAGE || !Array.isArray(o.usage)) return undefined;
  return (o.usage as UsageRecord[]).filter(
    (r) => typeof r?.policy === 'string' && (r.direction === 'ingress' || r.direction === 'egress'),
  );
}

/** Sums one policy's counts from agents' log lines: each agent's newest record per direction, over the agents. */
export class UsageSummer {
  private readonly policy: string;
  private readonly newest = new Map<string, UsageRecord>(); // `agent direction` -> its newest record
  private readonly counting = new Set<string>();
  constructor(policy: string) {
    this.policy = policy;
  }

  /** One log line of agent (pod) `agent`, in the order the agent wrote them. */
  add(agent: string, line: string): void {
    for (const r of usageOfLogLine(line) ?? []) {
      if (r.policy !== this.policy) continue;
      this.newest.set(`${agent} ${r.direction}`, r);
      this.counting.add(agent);
    }
  }

  sum(): PolicyUsageSum {
    const zero = () => ({ allowed: 0, denied: 0, wouldDeny: 0 });
    const byDirection = { ingress: zero(), egress: zero() };
    for (const r of this.newest.values()) {
      const d = byDirection[r.direction];
      d.allowed += Number(r.allowed) || 0;
      d.denied += Number(r.denied) || 0;
      d.wouldDeny += Number(r.wouldDeny) || 0;
    }
    return { counting: [...this.counting].sort(), byDirection };
  }
}

/** Reads every agent's log within `sinceSeconds` and sums its newest counts of `policy`. */
export async function readPolicyUsage(
  client: Pick<ApiClient, 'listPage' | 'followLines'>,
  o: Omit<AgentLogOptions, 'follow'>,
  policy: string,
  io: CommandIO,
): Promise<PolicyUsageSum> {
  const summer = new UsageSummer(policy);
  await followAgentLogs(client, { ...o, follow: false }, io, Promise.resolve(), (pod, line) =>
    summer.add(pod, line),
  );
  return summer.sum();
}

/** The usage lines explain prints. */
export function usageLines(sum: PolicyUsageSum, since: string): string[] {
  const lines = [
    `usage (new connections since each agent started, newest counts within --since ${since}, from ${sum.counting.length} agent(s) with counts):`,
  ];
  for (const direction of ['ingress', 'egress'] as const) {
    const d = sum.byDirection[direction];
    lines.push(
      `  ${direction}: allowed ${d.allowed}, denied ${d.denied}${d.wouldDeny > 0 ? `, would-deny ${d.wouldDeny}` : ''}`,
    );
  }
  if (sum.counting.length === 0)
    lines.push(
      '  no agent logged a count for this policy within --since: unused there (or --policy-usage is off)',
    );
  lines.push(
    '  allowed: sampled from conntrack (a connection opened and closed within one --policy-usage-interval-ms is',
    "  missed); denied: from the drop reports (denials over the node's report limit are not counted per policy)",
  );
  return lines;
}

/** `explain --policy`: the policy from the objects, and its use when the source is a live cluster. */
export async function explainPolicy(
  name: string,
  values: ObjectSource & {
    since?: string | undefined;
    'agent-namespace'?: string | undefined;
    'agent-selector'?: string | undefined;
  },
  io: CommandIO,
): Promise<number> {
  if (!/^[^/\s]+\/[^/\s]+$/.test(name))
    throw new UsageError(`--policy: '${name}' is not NAMESPACE/NAME or cnp/NAME`);
  const live = values.scenario === undefined && values.manifests === undefined;
  if (!live && (values.since || values['agent-namespace'] || values['agent-selector']))
    throw new UsageError('--since, --agent-namespace and --agent-selector need a live cluster');
  const since = values.since ?? '1h';
  const sinceSeconds = parseSince(since);
  const objects = await loadObjects(values);
  const index = new ClusterIndex(withClusterPolicies(buildState(objects), objects.clusterPolicies));
  const lines = describePolicy(index, name);
  const policy =
    index.state.policies.find((p) => p.key === name) ??
    (index.state.clusterPolicies ?? []).find((c) => `cnp/${c.key}` === name);
  for (const issue of policy?.issues ?? []) io.err(`warning: ${formatIssue(issue)}`);
  io.out(lines.join('\n'));
  if (!live) return 0;
  const sum = await readPolicyUsage(
    await clusterClient(values.kubeconfig),
    {
      agentNamespace: values['agent-namespace'] ?? AGENT_NAMESPACE,
      selector: values['agent-selector'] ?? AGENT_SELECTOR,
      container: AGENT_CONTAINER,
      sinceSeconds,
    },
    name,
    io,
  );
  io.out(usageLines(sum, since).join('\n'));
  return 0;
}
