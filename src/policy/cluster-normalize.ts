// Turns ClusterNetworkPolicy objects (from the API or YAML files) into the normalized model of
// cluster-types.ts, with issues that name the object and the field. Pure; a bad rule is kept, marked
// invalid (it fails closed, see ClusterRule.invalid), never silently dropped.

import { asObj, isObj, type Obj } from '../util/objects.ts';
import { cidrRange, formatCidr, parseCidr } from './address.ts';
import type {
  ClusterAction,
  ClusterPeer,
  ClusterPolicy,
  ClusterPort,
  ClusterRule,
  ClusterSubject,
  ClusterTier,
} from './cluster-types.ts';
import { CLUSTER_ACTIONS, CLUSTER_TIERS, MAX_CLUSTER_PRIORITY } from './cluster-types.ts';
import { isValidPortName } from './normalize.ts';
import { everything, normalizeSelector } from './selector.ts';
import type { ClusterState, LabelSelector, Protocol, ValidationIssue } from './types.ts';

export const CLUSTER_POLICY_KIND = 'ClusterNetworkPolicy';
export const CLUSTER_POLICY_API_VERSION = 'policy.networking.k8s.io/v1alpha2';

type Report = (field: string, message: string) => void;

const present = (v: unknown): boolean => v !== undefined && v !== null;
/** The keys of an object that hold something: upstream's "exactly one field must be set". */
const setKeys = (o: Obj): string[] => Object.keys(o).filter((k) => present(o[k]));

const isPortNumber = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;

/** Upstream caps every list of a policy (rules, peers, protocols, networks) at 25 items. */
const MAX_ITEMS = 25;
const MAX_RULE_NAME = 100;

/** A selector, or undefined (reported) when invalid. */
function selector(raw: unknown, field: string, report: Report): LabelSelector | undefined {
  const s = normalizeSelector(raw);
  for (const [f, m] of s.problems) report(`${field}${f}`, m);
  return s.problems.length > 0 ? undefined : s.selector;
}

function normalizeSubject(raw: unknown, report: Report): ClusterSubject | undefined {
  if (!isObj(raw)) {
    report('spec.subject', 'is required: set namespaces or pods');
    return undefined;
  }
  const keys = setKeys(raw);
  if (keys.length !== 1 || !['namespaces', 'pods'].includes(keys[0]!)) {
    report('spec.subject', `must set exactly one of namespaces, pods (has: ${keys.join(', ') || 'none'})`);
    return undefined;
  }
  if (keys[0] === 'namespaces') {
    const namespaces = selector(raw.namespaces, 'spec.subject.namespaces', report);
    return namespaces && { kind: 'namespaces', namespaces };
  }
  const pods = namespacedPod(raw.pods, 'spec.subject.pods', report);
  return pods && { kind: 'pods', ...pods };
}

/** NamespacedPod: podSelector is required, namespaceSelector absent means every namespace. */
function namespacedPod(
  raw: unknown,
  field: string,
  report: Report,
): { namespaces: LabelSelector; pods: LabelSelector } | undefined {
  const o = asObj(raw);
  if (!present(o.podSelector)) {
    report(`${field}.podSelector`, 'is required ({} selects every pod)');
    return undefined;
  }
  const pods = selector(o.podSelector, `${field}.podSelector`, report);
  const namespaces = present(o.namespaceSelector)
    ? selector(o.namespaceSelector, `${field}.namespaceSelector`, report)
    : everything;
  return pods && namespaces && { namespaces, pods };
}

function normalizePeer(
  raw: unknown,
  field: string,
  direction: 'ingress' | 'egress',
  bad: Report,
): ClusterPeer | undefined {
  const o = asObj(raw);
  const keys = setKeys(o);
  const allowed =
    direction === 'ingress'
      ? ['namespaces', 'pods']
      : ['namespaces', 'pods', 'nodes', 'networks', 'domainNames'];
  if (keys.length !== 1 || !allowed.includes(keys[0]!)) {
    bad(field, `must set exactly one of ${allowed.join(', ')} (has: ${keys.join(', ') || 'none'})`);
    return undefined;
  }
  const kind = keys[0]!;
  if (kind === 'namespaces') {
    const namespaces = selector(o.namespaces, `${field}.namespaces`, bad);
    return namespaces && { kind: 'namespaces', namespaces };
  }
  if (kind === 'pods') {
    const pods = namespacedPod(o.pods, `${field}.pods`, bad);
    return pods && { kind: 'pods', ...pods };
  }
  if (kind === 'nodes') {
    const nodes = selector(o.nodes, `${field}.nodes`, bad);
    return nodes && { kind: 'nodes', nodes };
  }
  if (kind === 'domainNames') {
    bad(
      `${field}.domainNames`,
      'domain name peers are not supported: tollgate enforces in the kernel, which sees addresses, ' +
        'not the names a pod looked up',
    );
    return undefined;
  }
  return normalizeNetworks(o.networks, `${field}.networks`, bad);
}

function normalizeNetworks(raw: unknown, field: string, bad: Report): ClusterPeer | undefined {
  if (!Array.isArray(raw) || raw.length === 0) {
    bad(field, 'must be a non-empty list of CIDRs');
    return undefined;
  }
  if (raw.length > MAX_ITEMS) bad(field, `has ${raw.length} CIDRs, at most ${MAX_ITEMS} are allowed`);
  const cidrs: string[] = [];
  const ranges = [];
  let ok = true;
  for (const [k, text] of raw.entries()) {
    const c = typeof text === 'string' ? parseCidr(text) : `'${String(text)}' is not a CIDR string`;
    if (typeof c === 'string') {
      bad(`${field}[${k}]`, c);
      ok = false;
      continue;
    }
    cidrs.push(formatCidr(c));
    ranges.push(cidrRange(c));
  }
  return ok ? { kind: 'networks', cidrs, ranges } : undefined;
}

const PROTOCOL_KEYS: Readonly<Record<string, Protocol>> = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' };

function normalizeProtocol(raw: unknown, field: string, bad: Report): ClusterPort | undefined {
  const o = asObj(raw);
  const keys = setKeys(o);
  const allowed = ['tcp', 'udp', 'sctp', 'destinationNamedPort'];
  if (keys.length !== 1 || !allowed.includes(keys[0]!)) {
    bad(field, `must set exactly one of ${allowed.join(', ')} (has: ${keys.join(', ') || 'none'})`);
    return undefined;
  }
  const key = keys[0]!;
  if (key === 'destinationNamedPort') {
    const name = o.destinationNamedPort;
    if (typeof name !== 'string' || !isValidPortName(name)) {
      bad(`${field}.destinationNamedPort`, `'${String(name)}' is not a valid port name`);
      return undefined;
    }
    return { kind: 'named', name };
  }
  const protocol = PROTOCOL_KEYS[key]!;
  const f = `${field}.${key}.destinationPort`;
  const port = asObj(asObj(o[key]).destinationPort);
  const portKeys = setKeys(port);
  if (portKeys.length !== 1 || !['number', 'range'].includes(portKeys[0]!)) {
    bad(f, `must set exactly one of number, range (has: ${portKeys.join(', ') || 'none'})`);
    return undefined;
  }
  if (portKeys[0] === 'number') {
    if (!isPortNumber(port.number)) {
      bad(`${f}.number`, `${String(port.number)} is not a port number (1-65535)`);
      return undefined;
    }
    return { kind: 'port', protocol, first: port.number, last: port.number };
  }
  const range = asObj(port.range);
  for (const end of ['start', 'end'] as const)
    if (!isPortNumber(range[end])) {
      bad(`${f}.range.${end}`, `${String(range[end])} is not a port number (1-65535)`);
      return undefined;
    }
  const [first, last] = [range.start as number, range.end as number];
  if (first >= last) {
    bad(`${f}.range`, `start ${first} must be less than end ${last}`);
    return undefined;
  }
  return { kind: 'port', protocol, first, last };
}

function normalizeRule(
  raw: unknown,
  field: string,
  direction: 'ingress' | 'egress',
  index: number,
  broken: boolean,
  report: Report,
): ClusterRule {
  const rule = asObj(raw);
  let action: ClusterAction = 'Deny';
  if ((CLUSTER_ACTIONS as readonly unknown[]).includes(rule.action)) action = rule.action as ClusterAction;
  let invalid = broken;
  const effect = () =>
    action === 'Accept' ? 'this Accept rule matches nothing' : `this ${action} rule denies everything`;
  const bad: Report = (f, m) => {
    invalid = true;
    report(f, `${m}; ${effect()}`);
  };
  if (!(CLUSTER_ACTIONS as readonly unknown[]).includes(rule.action))
    bad(`${field}.action`, `'${String(rule.action)}' is not one of ${CLUSTER_ACTIONS.join(', ')}`);
  const name = typeof rule.name === 'string' ? rule.name : '';
  if (name.length > MAX_RULE_NAME)
    report(`${field}.name`, `is longer than ${MAX_RULE_NAME} characters (kept, it only labels the rule)`);

  const peerField = direction === 'ingress' ? 'from' : 'to';
  const rawPeers = rule[peerField];
  const peers: ClusterPeer[] = [];
  if (!Array.isArray(rawPeers) || rawPeers.length === 0)
    bad(`${field}.${peerField}`, 'is required and must list at least one peer');
  else {
    if (rawPeers.length > MAX_ITEMS)
      bad(`${field}.${peerField}`, `has ${rawPeers.length} peers, at most ${MAX_ITEMS} are allowed`);
    rawPeers.forEach((p, j) => {
      const peer = normalizePeer(p, `${field}.${peerField}[${j}]`, direction, bad);
      if (peer) peers.push(peer);
    });
  }

  let ports: ClusterPort[] | undefined;
  if (present(rule.protocols)) {
    if (!Array.isArray(rule.protocols) || rule.protocols.length === 0)
      bad(`${field}.protocols`, 'must be a non-empty list when set');
    else {
      if (rule.protocols.length > MAX_ITEMS)
        bad(`${field}.protocols`, `has ${rule.protocols.length} entries, at most ${MAX_ITEMS} are allowed`);
      ports = [];
      rule.protocols.forEach((p, k) => {
        const port = normalizeProtocol(p, `${field}.protocols[${k}]`, bad);
        if (port) ports!.push(port);
      });
      // Upstream's CEL rule: nodes and networks have no container ports to name.
      const namedAt = ports.findIndex((p) => p.kind === 'named');
      const hostPeer = peers.findIndex((p) => p.kind === 'nodes' || p.kind === 'networks');
      if (namedAt >= 0 && hostPeer >= 0)
        bad(
          `${field}.protocols[${namedAt}].destinationNamedPort`,
          `a named port cannot be used with the ${peers[hostPeer]!.kind} peer ${peerField}[${hostPeer}] (no named ports there)`,
        );
    }
  }
  return { index, name, action, peers, ports, invalid };
}

/** Normalizes one ClusterNetworkPolicy; problems are in `issues`, never thrown. */
export function normalizeClusterPolicy(raw: unknown): ClusterPolicy {
  const obj = asObj(raw);
  const metadata = asObj(obj.metadata);
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  const object = `${CLUSTER_POLICY_KIND} ${name || '<no name>'}`;
  const issues: ValidationIssue[] = [];
  const report: Report = (field, message) => issues.push({ object, field, message });
  if (name === '') report('metadata.name', 'is required');
  const spec = asObj(obj.spec);
  // Without a tier, a priority or a subject the policy cannot be placed: every rule fails closed.
  let broken = false;
  const fatal: Report = (f, m) => {
    broken = true;
    report(f, `${m}; every rule of the policy fails closed`);
  };

  // Another version may mean fields this code does not know: upstream asks to fail closed then.
  if (present(obj.apiVersion) && obj.apiVersion !== CLUSTER_POLICY_API_VERSION)
    fatal('apiVersion', `'${String(obj.apiVersion)}' is not ${CLUSTER_POLICY_API_VERSION}`);
  if (present(metadata.namespace) && metadata.namespace !== '')
    report('metadata.namespace', 'a ClusterNetworkPolicy is cluster-scoped; the namespace is ignored');

  let tier: ClusterTier = 'Admin';
  if ((CLUSTER_TIERS as readonly unknown[]).includes(spec.tier)) tier = spec.tier as ClusterTier;
  else
    fatal('spec.tier', `'${String(spec.tier)}' is not one of ${CLUSTER_TIERS.join(', ')} (taken as Admin)`);

  let priority = MAX_CLUSTER_PRIORITY;
  const p = spec.priority;
  if (Number.isInteger(p) && (p as number) >= 0 && (p as number) <= MAX_CLUSTER_PRIORITY)
    priority = p as number;
  else
    fatal(
      'spec.priority',
      `${JSON.stringify(p) ?? 'absent'} is not an integer from 0 to ${MAX_CLUSTER_PRIORITY} (taken as ${MAX_CLUSTER_PRIORITY})`,
    );

  const subject = normalizeSubject(spec.subject, (f, m) =>
    fatal(f, `${m} (the subject is taken as every pod of the cluster)`),
  ) ?? { kind: 'namespaces' as const, namespaces: everything };

  const rules = (direction: 'ingress' | 'egress'): ClusterRule[] => {
    const list = spec[direction];
    if (!present(list)) return [];
    if (!Array.isArray(list)) {
      // A rule list we cannot read stands for one rule that denies everything (fail closed).
      report(`spec.${direction}`, 'must be a list of rules; taken as one rule that denies everything');
      return [{ index: 0, name: '', action: 'Deny', peers: [], ports: undefined, invalid: true }];
    }
    if (list.length > MAX_ITEMS)
      report(`spec.${direction}`, `has ${list.length} rules, at most ${MAX_ITEMS} are allowed (all kept)`);
    return list.map((r, i) => normalizeRule(r, `spec.${direction}[${i}]`, direction, i, broken, report));
  };
  return deepFreeze({
    name,
    key: name,
    tier,
    priority,
    subject,
    ingress: rules('ingress'),
    egress: rules('egress'),
    issues,
  });
}

/** Deeply readonly at run time too: normalized objects are shared and never mutated. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Is this raw object a ClusterNetworkPolicy (by kind; the apiVersion is checked by the caller)? */
export const isClusterPolicyObject = (raw: unknown): boolean => asObj(raw).kind === CLUSTER_POLICY_KIND;

/** A state with these ClusterNetworkPolicies (raw objects) normalized into it; none: the state as is. */
export function withClusterPolicies(state: ClusterState, raws: readonly unknown[] | undefined): ClusterState {
  if (raws === undefined || raws.length === 0) return state;
  return { ...state, clusterPolicies: raws.map(normalizeClusterPolicy) };
}
