// Turns NetworkPolicy, Pod, Namespace and Node objects (from the API or from YAML files) into the
// normalized model: defaulting as the API server does it, validation that names the object and field.
// Pure functions; an invalid rule is kept but marked so that it allows nothing (fail closed).

import { asList, asObj, type Obj } from '../util/objects.ts';
import type { Address, AddressRange } from './address.ts';
import { cidrRange, formatCidr, parseAddress, parseCidr, subtractRanges } from './address.ts';
import { ValidationError } from './errors.ts';
import { Memo } from './memo.ts';
import { everything, normalizeSelector } from './selector.ts';
import type {
  ClusterState,
  ContainerPort,
  Labels,
  Namespace,
  Node,
  Peer,
  PeerNamespaces,
  Pod,
  Policy,
  PolicyPort,
  Protocol,
  Rule,
  ValidationIssue,
} from './types.ts';
import { PROTOCOLS } from './types.ts';

export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
/** A NetworkPolicy annotated with this set to "true" is in audit mode (point 25). */
export const AUDIT_ANNOTATION = 'tollgate.dev/audit';

/**
 * The string labels of an object. Objects with the same labels (the replicas of a workload) share one
 * labels object through `memo`, which is never mutated: 100k pods keep a few thousand label objects
 * instead of 100k (Memo.labels is bounded, so label sets that come and go do not pile up).
 */
function labelsOf(metadata: Obj, memo: Memo | undefined): Labels {
  const labels = asObj(metadata.labels);
  const make = () => {
    const out: Record<string, string> = {};
    for (const k in labels) {
      const v = labels[k];
      if (Object.hasOwn(labels, k) && typeof v === 'string') out[k] = v;
    }
    return out;
  };
  if (memo === undefined) return make();
  let key = '';
  for (const k in labels) {
    const v = labels[k];
    // NUL separates: it is in no label key or value.
    if (Object.hasOwn(labels, k) && typeof v === 'string') key += `${k}\0${v}\0`;
  }
  return memo.labels.get(key, make);
}

/** IANA_SVC_NAME, as Kubernetes validates port names: 1-15 chars, a-z0-9 and '-', at least one letter. */
export function isValidPortName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= 15 &&
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name) &&
    !name.includes('--') &&
    /[a-z]/.test(name)
  );
}

const isPortNumber = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;

function normalizeProtocol(
  raw: unknown,
  field: string,
  report: (f: string, m: string) => void,
): Protocol | undefined {
  if (raw === undefined || raw === null) return 'TCP'; // point 8: protocol defaults to TCP
  if (typeof raw === 'string' && (PROTOCOLS as readonly string[]).includes(raw)) return raw as Protocol;
  report(field, `unknown protocol '${String(raw)}' (must be TCP, UDP or SCTP)`);
  return undefined;
}

/** An object's namespace: absent or empty is `default`, as the API server defaults it. */
const namespaceOf = (metadata: Record<string, unknown>): string =>
  typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default';

const nameOf = (metadata: Record<string, unknown>): string =>
  typeof metadata.name === 'string' ? metadata.name : '';

/**
 * The parts of a Pod, Namespace or Node every normalizer reads. A missing name throws: unlike a policy's
 * (reported, fail closed), such an object cannot be keyed at all.
 */
function named(raw: unknown, kind: 'Pod' | 'Namespace' | 'Node') {
  const obj = asObj(raw);
  const metadata = asObj(obj.metadata);
  const name = nameOf(metadata);
  // Only pods are namespaced among these.
  const namespace = namespaceOf(metadata);
  if (name === '') {
    const object = kind === 'Pod' ? `${kind} ${namespace}/<no name>` : `${kind} <no name>`;
    throw new ValidationError([{ object, field: 'metadata.name', message: 'is required' }]);
  }
  return { metadata, spec: asObj(obj.spec), status: asObj(obj.status), name, namespace };
}

export function normalizePolicy(raw: unknown): Policy {
  const obj = asObj(raw);
  const metadata = asObj(obj.metadata);
  const name = nameOf(metadata);
  const namespace = namespaceOf(metadata);
  const object = `NetworkPolicy ${namespace}/${name || '<no name>'}`;
  const issues: ValidationIssue[] = [];
  const report = (field: string, message: string) => issues.push({ object, field, message });
  if (name === '') report('metadata.name', 'is required');

  const spec = asObj(obj.spec);
  const sel = normalizeSelector(spec.podSelector);
  for (const [f, m] of sel.problems)
    report(`spec.podSelector${f}`, `${m}; the policy isolates every pod of the namespace`);

  // Point 2: policyTypes defaults to Ingress, plus Egress only when the egress list is non-empty.
  const egressList = asList(spec.egress);
  let types: Set<string>;
  const rawTypes = asList(spec.policyTypes);
  if (rawTypes === undefined || rawTypes.length === 0) {
    types = new Set(['Ingress', ...(egressList && egressList.length > 0 ? ['Egress'] : [])]);
  } else {
    types = new Set();
    rawTypes.forEach((t, i) => {
      if (t === 'Ingress' || t === 'Egress') types.add(t);
      else {
        report(
          `spec.policyTypes[${i}]`,
          `'${String(t)}' is not Ingress or Egress; isolating both directions`,
        );
        types.add('Ingress').add('Egress');
      }
    });
  }

  const rules = (direction: 'ingress' | 'egress'): Rule[] => {
    const list = asList(spec[direction]);
    if (spec[direction] !== undefined && spec[direction] !== null && list === undefined) {
      report(`spec.${direction}`, 'must be a list of rules');
      return [];
    }
    return (list ?? []).map((r, i) =>
      normalizeRule(r, `spec.${direction}[${i}]`, direction, namespace, i, report),
    );
  };

  return {
    namespace,
    name,
    key: `${namespace}/${name}`,
    podSelector: sel.problems.length > 0 ? everything : sel.selector,
    podSelectorValid: sel.problems.length === 0,
    ingress: types.has('Ingress') ? rules('ingress') : undefined,
    egress: types.has('Egress') ? rules('egress') : undefined,
    issues,
    ...(auditOf(metadata, report) ? { audit: true } : {}),
  };
}

/** Point 25. Any value but "true" or "false" is reported and enforces the policy (fail closed). */
function auditOf(metadata: Obj, report: (field: string, message: string) => void): boolean {
  const value = asObj(metadata.annotations)[AUDIT_ANNOTATION];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  report(
    `metadata.annotations["${AUDIT_ANNOTATION}"]`,
    `${JSON.stringify(value)} is not "true" or "false"; the policy is enforced`,
  );
  return false;
}

function normalizeRule(
  raw: unknown,
  field: string,
  direction: 'ingress' | 'egress',
  _namespace: string,
  index: number,
  report: (f: string, m: string) => void,
): Rule {
  let invalid = false;
  const bad = (f: string, m: string) => {
    invalid = true;
    report(f, `${m}; this rule allows nothing`);
  };
  const rule = asObj(raw);
  const peerField = direction === 'ingress' ? 'from' : 'to';
  const rawPeers = rule[peerField];
  let peers: Peer[] | undefined;
  const peerList = asList(rawPeers);
  if (rawPeers !== undefined && rawPeers !== null && peerList === undefined)
    bad(`${field}.${peerField}`, 'must be a list');
  if (peerList && peerList.length > 0) {
    peers = [];
    peerList.forEach((p, j) => {
      const peer = normalizePeer(p, `${field}.${peerField}[${j}]`, bad);
      if (peer) peers!.push(peer);
    });
  }
  let ports: PolicyPort[] | undefined;
  const portList = asList(rule.ports);
  if (rule.ports !== undefined && rule.ports !== null && portList === undefined)
    bad(`${field}.ports`, 'must be a list');
  if (portList && portList.length > 0) {
    ports = [];
    portList.forEach((p, j) => {
      const port = normalizePort(p, `${field}.ports[${j}]`, bad);
      if (port) ports!.push(port);
    });
  }
  return { index, peers, ports, invalid };
}

function normalizePeer(raw: unknown, field: string, bad: (f: string, m: string) => void): Peer | undefined {
  const peer = asObj(raw);
  const hasPods = peer.podSelector !== undefined && peer.podSelector !== null;
  const hasNs = peer.namespaceSelector !== undefined && peer.namespaceSelector !== null;
  const hasBlock = peer.ipBlock !== undefined && peer.ipBlock !== null;
  if (!hasPods && !hasNs && !hasBlock) {
    bad(field, 'empty peer: set podSelector, namespaceSelector or ipBlock');
    return undefined;
  }
  if (hasBlock) {
    if (hasPods || hasNs) {
      bad(field, 'ipBlock cannot be combined with podSelector or namespaceSelector in one peer');
      return undefined;
    }
    return normalizeIpBlock(asObj(peer.ipBlock), `${field}.ipBlock`, bad);
  }
  const pods = normalizeSelector(peer.podSelector);
  for (const [f, m] of pods.problems) bad(`${field}.podSelector${f}`, m);
  let namespaces: PeerNamespaces = { kind: 'own' };
  if (hasNs) {
    const ns = normalizeSelector(peer.namespaceSelector);
    for (const [f, m] of ns.problems) bad(`${field}.namespaceSelector${f}`, m);
    if (ns.problems.length > 0) return undefined;
    namespaces = { kind: 'selector', selector: ns.selector };
  }
  if (pods.problems.length > 0) return undefined;
  return { kind: 'pods', namespaces, pods: pods.selector };
}

function normalizeIpBlock(block: Obj, field: string, bad: (f: string, m: string) => void): Peer | undefined {
  if (typeof block.cidr !== 'string') {
    bad(`${field}.cidr`, 'is required');
    return undefined;
  }
  const cidr = parseCidr(block.cidr);
  if (typeof cidr === 'string') {
    bad(`${field}.cidr`, cidr);
    return undefined;
  }
  const outer = cidrRange(cidr);
  const holes: AddressRange[] = [];
  const except: string[] = [];
  const list = asList(block.except) ?? [];
  let ok = true;
  list.forEach((e, k) => {
    const f = `${field}.except[${k}]`;
    const c = typeof e === 'string' ? parseCidr(e) : `'${String(e)}' is not a CIDR string`;
    if (typeof c === 'string') {
      bad(f, c);
      ok = false;
      return;
    }
    const inner = cidrRange(c);
    // Kubernetes requires each except to be a strict subset of the cidr, of the same family.
    if (
      c.family !== cidr.family ||
      c.prefix <= cidr.prefix ||
      inner.first < outer.first ||
      inner.last > outer.last
    ) {
      bad(f, `${String(e)} is not strictly inside cidr ${formatCidr(cidr)}`);
      ok = false;
      return;
    }
    holes.push(inner);
    except.push(formatCidr(c));
  });
  if (!ok) return undefined;
  return { kind: 'ipBlock', cidr: formatCidr(cidr), except, ranges: subtractRanges([outer], holes) };
}

function normalizePort(
  raw: unknown,
  field: string,
  bad: (f: string, m: string) => void,
): PolicyPort | undefined {
  const p = asObj(raw);
  const protocol = normalizeProtocol(p.protocol, `${field}.protocol`, bad);
  if (!protocol) return undefined;
  let port: number | string | undefined;
  if (p.port !== undefined && p.port !== null) {
    if (typeof p.port === 'string') {
      if (!isValidPortName(p.port)) {
        bad(`${field}.port`, `'${p.port}' is neither a port number nor a valid port name`);
        return undefined;
      }
      port = p.port;
    } else if (isPortNumber(p.port)) {
      port = p.port;
    } else {
      bad(`${field}.port`, `${String(p.port)} is not a port number (1-65535)`);
      return undefined;
    }
  }
  let endPort: number | undefined;
  if (p.endPort !== undefined && p.endPort !== null) {
    if (typeof port !== 'number') {
      bad(`${field}.endPort`, 'needs a numeric port');
      return undefined;
    }
    if (!isPortNumber(p.endPort) || p.endPort < port) {
      bad(`${field}.endPort`, `${String(p.endPort)} must be a port number >= port ${port}`);
      return undefined;
    }
    endPort = p.endPort;
  }
  return { protocol, port, endPort };
}

function podIps(status: Obj): Address[] {
  const texts: string[] = [];
  for (const entry of asList(status.podIPs) ?? []) {
    const ip = asObj(entry).ip;
    if (typeof ip === 'string') texts.push(ip);
  }
  if (texts.length === 0 && typeof status.podIP === 'string' && status.podIP !== '') texts.push(status.podIP);
  const out: Address[] = [];
  for (const t of texts) {
    const a = parseAddress(t);
    if (a && !out.some((o) => o.family === a.family)) out.push(a);
  }
  return out;
}

/** Normalizes a Pod. Containers' ports (and native sidecars' init container ports) are the named ports. */
export function normalizePod(raw: unknown, memo?: Memo): Pod {
  const { metadata, spec, status, name, namespace } = named(raw, 'Pod');
  const ports: ContainerPort[] = [];
  const containers = [
    ...(asList(spec.containers) ?? []),
    ...(asList(spec.initContainers) ?? []).filter((c) => asObj(c).restartPolicy === 'Always'),
  ];
  for (const c of containers) {
    for (const p of asList(asObj(c).ports) ?? []) {
      const port = asObj(p);
      const protocol = port.protocol ?? 'TCP';
      if (!isPortNumber(port.containerPort) || !(PROTOCOLS as readonly unknown[]).includes(protocol))
        continue;
      ports.push({
        name: typeof port.name === 'string' && port.name !== '' ? port.name : undefined,
        port: port.containerPort,
        protocol: protocol as Protocol,
      });
    }
  }
  return {
    namespace,
    name,
    key: `${namespace}/${name}`,
    labels: labelsOf(metadata, memo),
    nodeName: typeof spec.nodeName === 'string' && spec.nodeName !== '' ? spec.nodeName : undefined,
    hostNetwork: spec.hostNetwork === true,
    phase: typeof status.phase === 'string' ? status.phase : 'Pending',
    ips: podIps(status),
    ports,
  };
}

export function normalizeNamespace(raw: unknown, memo?: Memo): Namespace {
  const { metadata, name } = named(raw, 'Namespace');
  // Point 6: every namespace carries the immutable kubernetes.io/metadata.name label.
  const labels: Labels = { ...labelsOf(metadata, memo), [NAMESPACE_NAME_LABEL]: name };
  return asObj(metadata.annotations)['tollgate.dev/drop-reports'] === 'off'
    ? { name, labels, dropReportsOff: true }
    : { name, labels };
}

export function normalizeNode(raw: unknown): Node {
  const { metadata, spec, status, name } = named(raw, 'Node');
  const addresses: Address[] = [];
  for (const entry of asList(status.addresses) ?? []) {
    const e = asObj(entry);
    if (e.type !== 'InternalIP' && e.type !== 'ExternalIP') continue;
    const a = typeof e.address === 'string' ? parseAddress(e.address) : undefined;
    if (a && !addresses.some((o) => o.family === a.family && o.value === a.value)) addresses.push(a);
  }
  const cidrTexts = (asList(spec.podCIDRs) ?? []).filter((c): c is string => typeof c === 'string');
  if (cidrTexts.length === 0 && typeof spec.podCIDR === 'string') cidrTexts.push(spec.podCIDR);
  const podCIDRs: AddressRange[] = [];
  for (const t of cidrTexts) {
    const c = parseCidr(t);
    if (typeof c !== 'string') podCIDRs.push(cidrRange(c));
  }
  return { name, labels: labelsOf(metadata, undefined), addresses, podCIDRs };
}

/** Kubernetes objects as read from the API or files, before normalization. */
export interface ClusterObjects {
  namespaces: unknown[];
  nodes: unknown[];
  pods: unknown[];
  policies: unknown[];
}

/** The normalized state of a whole cluster (pods with equal labels share them through `memo`). */
export function buildState(objects: ClusterObjects, memo: Memo = new Memo()): ClusterState {
  const namespaces = objects.namespaces.map((n) => normalizeNamespace(n, memo));
  return {
    namespaces: new Map(namespaces.map((n) => [n.name, n])),
    nodes: objects.nodes.map((n) => normalizeNode(n)),
    pods: objects.pods.map((p) => normalizePod(p, memo)),
    policies: objects.policies.map((p) => normalizePolicy(p)),
  };
}
