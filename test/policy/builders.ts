// Small builders for policy tests: raw Kubernetes objects as users write them, normalized like the API does.
import { parseAddress } from '../../src/policy/address.ts';
import { type Endpoint, endpointAt, evaluate, type Verdict } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import {
  normalizeNamespace,
  normalizeNode,
  normalizePod,
  normalizePolicy,
} from '../../src/policy/normalize.ts';
import type { ClusterState, Pod } from '../../src/policy/types.ts';

export interface PodOptions {
  node?: 'n1' | 'n2';
  ip?: string;
  ip6?: string;
  noIp?: boolean;
  hostNetwork?: boolean;
  phase?: string;
  /** [name, port, protocol] */
  ports?: [string, number, string?][];
}

let nextHost = 0;

export function pod(key: string, labels: Record<string, string> = {}, o: PodOptions = {}) {
  const [namespace, name] = key.split('/');
  const node = o.node ?? 'n1';
  const n = node === 'n1' ? 1 : 2;
  // Consecutive pods get distinct addresses; wrapping is harmless since a test cluster has few pods.
  const host = 10 + (nextHost++ % 240);
  const ip = o.hostNetwork ? `192.0.2.${n}` : (o.ip ?? `10.244.${n}.${host}`);
  const ip6 = o.hostNetwork ? `2001:db8::${n}` : (o.ip6 ?? `fd00:10:244:${n}::${host}`);
  const ports = (o.ports ?? [['http', 80, 'TCP']]).map(([pn, port, protocol]) => ({
    name: pn,
    containerPort: port,
    protocol: protocol ?? 'TCP',
  }));
  return {
    metadata: { name, namespace, labels },
    spec: { nodeName: node, hostNetwork: o.hostNetwork === true, containers: [{ name: 'c', ports }] },
    status: { phase: o.phase ?? 'Running', ...(o.noIp ? {} : { podIP: ip, podIPs: [{ ip }, { ip: ip6 }] }) },
  };
}

export function policy(key: string, spec: Record<string, unknown>) {
  const [namespace, name] = key.split('/');
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}

export const nodes = [
  {
    metadata: { name: 'n1', labels: { 'kubernetes.io/hostname': 'n1', 'kubernetes.io/os': 'linux' } },
    spec: { podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
    status: {
      addresses: [
        { type: 'InternalIP', address: '192.0.2.1' },
        { type: 'InternalIP', address: '2001:db8::1' },
      ],
    },
  },
  {
    metadata: { name: 'n2', labels: { 'kubernetes.io/hostname': 'n2', 'kubernetes.io/os': 'linux' } },
    spec: { podCIDRs: ['10.244.2.0/24', 'fd00:10:244:2::/64'] },
    status: {
      addresses: [
        { type: 'InternalIP', address: '192.0.2.2' },
        { type: 'InternalIP', address: '2001:db8::2' },
      ],
    },
  },
];

export interface ClusterSpec {
  namespaces?: Record<string, Record<string, string>>;
  pods: ReturnType<typeof pod>[];
  policies?: ReturnType<typeof policy>[];
}

const defaultNamespaces = { x: { ns: 'x' }, y: { ns: 'y' }, z: { ns: 'z' } };

/**
 * `value` frozen all the way down: objects and arrays frozen, Maps and Sets locked (their writers throw
 * a TypeError, as a frozen array's do) and walked; a getter is left to produce what it will (a lazily
 * built list freezes its own result). The normalized model and ClusterState are read-only
 * (src/policy/types.ts), so a mutation anywhere downstream throws in tests.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value) || ArrayBuffer.isView(value))
    return value;
  if (value instanceof Map || value instanceof Set) {
    for (const name of ['set', 'add', 'delete', 'clear'] as const)
      if (name in value)
        Object.defineProperty(value, name, {
          value: () => {
            throw new TypeError(`cannot ${name}: this ${value.constructor.name} is read-only`);
          },
        });
    Object.freeze(value);
    for (const v of value.values()) deepFreeze(v);
    if (value instanceof Map) for (const k of value.keys()) deepFreeze(k);
    return value;
  }
  Object.freeze(value);
  for (const d of Object.values(Object.getOwnPropertyDescriptors(value)))
    if ('value' in d) deepFreeze(d.value);
  return value;
}

export function state(spec: ClusterSpec): ClusterState {
  const namespaces = spec.namespaces ?? defaultNamespaces;
  return deepFreeze({
    namespaces: new Map(
      Object.entries(namespaces).map(([name, labels]) => [
        name,
        deepFreeze(normalizeNamespace({ metadata: { name, labels } })),
      ]),
    ),
    nodes: nodes.map((n) => deepFreeze(normalizeNode(n))),
    pods: spec.pods.map((p) => deepFreeze(normalizePod(p))),
    policies: (spec.policies ?? []).map((p) => deepFreeze(normalizePolicy(p))),
  });
}

export function cluster(spec: ClusterSpec): ClusterIndex {
  return new ClusterIndex(state(spec));
}

/** An endpoint: a pod key (`x/a`, its IPv4; `x/a@6` for IPv6), `@n1` (a node) or an address (`[v6]`). */
export function endpoint(index: ClusterIndex, text: string): Endpoint {
  if (text.startsWith('@')) {
    const node = index.node(text.slice(1))!;
    return endpointAt(index, node.addresses[0]!);
  }
  const address = parseAddress(text.replace(/^\[(.*)\]$/, '$1'));
  if (address) return endpointAt(index, address);
  const [key, fam] = text.split('@');
  const p = index.state.pods.find((x) => x.key === key);
  if (!p) throw new Error(`no pod ${key}`);
  const ip = p.ips.find((a) => a.family === (fam === '6' ? 6 : 4));
  if (!ip) throw new Error(`pod ${key} has no IPv${fam ?? 4} address`);
  return endpointAt(index, ip);
}

/** `x/a -> y/b:80/TCP`, `x/a -> 203.0.113.9:443`, `x/a -> [2001:db8::9]:80`, `x/a -> y/b ICMP`, `@n1 -> x/a:80`. */
export function check(index: ClusterIndex, probe: string): Verdict {
  const m = /^(\S+) -> (\[[^\]]+\]|[^\s:]+)(?::(\d+))?(?:\/(TCP|UDP|SCTP))?(?: (\w+))?$/.exec(probe);
  if (!m) throw new Error(`bad probe ${probe}`);
  const protocol = m[5] ?? m[4] ?? 'TCP';
  return evaluate(index, {
    from: endpoint(index, m[1]!),
    to: endpoint(index, m[2]!),
    protocol,
    port: Number(m[3] ?? 0),
  });
}

export function allowed(index: ClusterIndex, probe: string): boolean {
  return check(index, probe).allowed;
}

/**
 * Puts `placed` into pod slot `slot` (or empties it) and returns the changes as ClusterIndex.update takes
 * them (the old pod gone, the new one there), for the incremental-update properties.
 */
export function replaceSlot(
  slots: Map<number, Pod>,
  slot: number,
  placed: Pod | undefined,
): Map<string, Pod | undefined> {
  const changes = new Map<string, Pod | undefined>();
  const old = slots.get(slot);
  if (old) changes.set(old.key, undefined);
  if (placed) {
    slots.set(slot, placed);
    changes.set(placed.key, placed);
  } else slots.delete(slot);
  return changes;
}
