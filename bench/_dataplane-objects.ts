// The cluster of the dataplane benchmark as Kubernetes objects: three real pods (client, server, other) on
// the two enforced lab nodes and 10,000 pods that exist only as API objects, plus the policies of each shape.
// Pure data, no I/O: bench/dataplane.ts feeds these objects to the enforcers.
import type { ClusterObjects } from '../src/policy/normalize.ts';
import { syntheticPolicy } from './_synthetic.ts';

export const FAKE_PODS = 10_000;
const NAMESPACES = 50;
/** Fake pods on each enforced node (so shape (a) fills the tables that the measured packets traverse). */
const PER_REAL_NODE = 2_500;
const PER_FAKE_NODE = 250;
/** Fake nodes hold the rest; node3 and node4 are the lab's unenforced baseline pair, so fakes start at 5. */
const FIRST_FAKE_NODE = 5;

/**
 * The enforced nodes: the lab wires the /24 of `lab`, while the API objects give the node a /18 around it
 * so that 2,500 fake pods fit beside the real ones (the unknown-local rule then covers the whole /18).
 */
export const ENFORCED = [
  { index: 1, name: 'node1', lab: '10.244.64.0/24', api: '10.244.64.0/18', fakeBase: 65 },
  { index: 2, name: 'node2', lab: '10.244.128.0/24', api: '10.244.128.0/18', fakeBase: 129 },
] as const;

export const CLIENT = { key: 'bench/client', node: 1, labels: { role: 'client' } };
export const SERVER = { key: 'bench/server', node: 2, labels: { role: 'server' } };
/** A pod that no policy allows: shape (b) checks that it is denied. */
export const OTHER = { key: 'bench/other', node: 1, labels: { role: 'other' } };

/** The port the load runs against (a fast HTTP server in the server pod) and the lab agent's port. */
export const LOAD_PORT = 8080;
export const AGENT_PORT = 80;
/** Shape (b): policy p < N-1 allows its own peer on FIRST_PEER_PORT + p. */
const FIRST_PEER_PORT = 10_000;

export interface RealPod {
  key: string;
  node: number;
  labels: Record<string, string>;
  ip4: string;
  ip6: string;
}

function fakePod(i: number) {
  let nodeName: string;
  let ip: string;
  if (i < PER_REAL_NODE * ENFORCED.length) {
    const node = ENFORCED[Math.floor(i / PER_REAL_NODE)]!;
    const k = i % PER_REAL_NODE;
    nodeName = node.name;
    ip = `10.244.${node.fakeBase + Math.floor(k / 250)}.${2 + (k % 250)}`;
  } else {
    const k = i - PER_REAL_NODE * ENFORCED.length;
    const index = FIRST_FAKE_NODE + Math.floor(k / PER_FAKE_NODE);
    nodeName = `node${index}`;
    ip = `10.244.${index}.${2 + (k % PER_FAKE_NODE)}`;
  }
  return { nodeName, ip };
}

/** The IPv4 address of fake pod i (shape (b) uses some as ipBlock peers). */
export function fakePodIP(i: number): string {
  return fakePod(i).ip;
}

export function baseObjects(real: RealPod[]): Omit<ClusterObjects, 'policies'> {
  const namespaces = [
    ...Array.from({ length: NAMESPACES }, (_, n) => ({
      metadata: { name: `ns${n}`, labels: { team: `t${n % 7}` } },
    })),
    { metadata: { name: 'bench', labels: { team: 'bench' } } },
  ];
  const fakeNodes = Math.ceil((FAKE_PODS - PER_REAL_NODE * ENFORCED.length) / PER_FAKE_NODE);
  const nodes = [
    ...ENFORCED.map((n) => ({
      metadata: { name: n.name },
      spec: { podCIDR: n.api, podCIDRs: [n.api, `fd00:10:244:${n.index}::/64`] },
      status: { addresses: [{ type: 'InternalIP', address: `198.51.100.${n.index}` }] },
    })),
    ...Array.from({ length: fakeNodes }, (_, k) => {
      const index = FIRST_FAKE_NODE + k;
      return {
        metadata: { name: `node${index}` },
        spec: { podCIDR: `10.244.${index}.0/24`, podCIDRs: [`10.244.${index}.0/24`] },
        status: { addresses: [{ type: 'InternalIP', address: `198.51.100.${index}` }] },
      };
    }),
  ];
  const fakes = Array.from({ length: FAKE_PODS }, (_, i) => {
    const { nodeName, ip } = fakePod(i);
    return {
      metadata: {
        name: `pod${i}`,
        namespace: `ns${i % NAMESPACES}`,
        labels: { app: `app${i % 40}`, tier: `tier${i % 5}`, id: `pod${i}` },
      },
      spec: {
        nodeName,
        containers: [
          { name: 'c', ports: [{ name: 'http', containerPort: 8000 + (i % 3), protocol: 'TCP' }] },
        ],
      },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
    };
  });
  const reals = real.map((p) => {
    const [namespace, name] = p.key.split('/') as [string, string];
    return {
      metadata: { name, namespace, labels: p.labels },
      spec: {
        nodeName: `node${p.node}`,
        containers: [
          {
            name: 'c',
            ports: [
              { name: 'http', containerPort: LOAD_PORT, protocol: 'TCP' },
              { name: 'agent', containerPort: AGENT_PORT, protocol: 'TCP' },
            ],
          },
        ],
      },
      status: { phase: 'Running', podIP: p.ip4, podIPs: [{ ip: p.ip4 }, { ip: p.ip6 }] },
    };
  });
  return { namespaces, nodes, pods: [...fakes, ...reals] };
}

/**
 * Shape (a): policies in the fake pods' namespaces selecting fake pods (a quarter each of pod-selector
 * ingress, namespace-selector ingress, ipBlock ingress, ingress+egress), as in bench/policy.ts. The real
 * pods live in namespace `bench`, which no policy of this shape selects.
 */
export function otherPodsPolicies(count: number): unknown[] {
  return Array.from({ length: count }, (_, p) => syntheticPolicy(p, NAMESPACES));
}

/**
 * Shape (b): every policy selects the server. Policy p < count-1 allows one fake pod (by a unique label
 * on even p, by its address as an ipBlock on odd p) on its own port FIRST_PEER_PORT + p; only the last
 * allows the client, on LOAD_PORT. The agent port and every other pod stay denied.
 */
export function serverPolicies(count: number): unknown[] {
  return Array.from({ length: count }, (_, p) => {
    const last = p === count - 1;
    // 7 is coprime with 10,000: a different fake pod for every policy.
    const peer = (p * 7) % FAKE_PODS;
    const from = last
      ? [{ podSelector: { matchLabels: CLIENT.labels } }]
      : p % 2 === 0
        ? [{ namespaceSelector: {}, podSelector: { matchLabels: { id: `pod${peer}` } } }]
        : [{ ipBlock: { cidr: `${fakePodIP(peer)}/32` } }];
    return {
      metadata: { name: `server-${p}`, namespace: 'bench' },
      spec: {
        podSelector: { matchLabels: SERVER.labels },
        policyTypes: ['Ingress'],
        ingress: [{ from, ports: [{ port: last ? LOAD_PORT : FIRST_PEER_PORT + p, protocol: 'TCP' }] }],
      },
    };
  });
}

/** The ClusterNetworkPolicies' first peer port (Pass and Deny rules for other traffic use 9000 + c...). */
const FIRST_CNP_PORT = 9000;

/**
 * `count` ClusterNetworkPolicies, each selecting the real pods (namespace `bench`, by namespace or by pod
 * selector in turn), none of whose rules matches the measured connection (client -> server:LOAD_PORT)
 * except the very last: the first three quarters are Admin (Deny from fake pods to the load port, Pass
 * from every namespace on other ports, Accept from a team; egress Deny to a network, Accept to fake pods
 * by named port, Pass to every namespace on other ports), the rest Baseline (Deny from a team, Deny from
 * every namespace on other ports; egress Deny to a network and to fake pods), and the last one Baseline:
 * Accept the client (ingress) and the server (egress) on the load port, then Deny from every namespace.
 * So the measured SYN walks every Admin rule and every Baseline rule before the last Accept decides it,
 * on both nodes; the other pod and the agent port are denied. Rules whose peers include the client (the
 * "every namespace" ones) miss on the port, so both of their lookups run.
 */
export function clusterPolicies(count: number): unknown[] {
  const admins = count - Math.ceil(count / 4);
  const tcp = (first: number, last = first) => ({
    tcp: { destinationPort: first === last ? { number: first } : { range: { start: first, end: last } } },
  });
  const team = (k: number) => ({ namespaces: { matchLabels: { team: `t${k % 7}` } } });
  const every = { namespaces: {} };
  const fake = (labels: Record<string, string>) => ({
    pods: { namespaceSelector: {}, podSelector: { matchLabels: labels } },
  });
  const network = (c: number) => ({ networks: [`203.0.113.${c % 256}/32`] });
  const bench = (labels: Record<string, string>) => ({
    pods: { namespaceSelector: { matchLabels: { team: 'bench' } }, podSelector: { matchLabels: labels } },
  });
  return Array.from({ length: count }, (_, c) => {
    const port = FIRST_CNP_PORT + 10 * c;
    const subject =
      c % 2 === 0
        ? { namespaces: { matchLabels: { team: 'bench' } } }
        : { pods: { namespaceSelector: { matchLabels: { team: 'bench' } }, podSelector: {} } };
    let ingress: unknown[];
    let egress: unknown[];
    if (c === count - 1) {
      ingress = [
        {
          name: 'accept-client',
          action: 'Accept',
          from: [bench(CLIENT.labels)],
          protocols: [tcp(LOAD_PORT)],
        },
        { name: 'deny-rest', action: 'Deny', from: [every] },
      ];
      egress = [
        { name: 'accept-server', action: 'Accept', to: [bench(SERVER.labels)], protocols: [tcp(LOAD_PORT)] },
      ];
    } else if (c < admins) {
      ingress = [
        {
          name: 'deny-app',
          action: 'Deny',
          from: [fake({ app: `app${c % 40}` })],
          protocols: [tcp(LOAD_PORT)],
        },
        { name: 'pass-ports', action: 'Pass', from: [every], protocols: [tcp(port, port + 9)] },
        { name: 'accept-team', action: 'Accept', from: [team(c)], protocols: [tcp(8000)] },
      ];
      egress = [
        { name: 'deny-net', action: 'Deny', to: [network(c)] },
        {
          name: 'accept-http',
          action: 'Accept',
          to: [fake({ app: `app${c % 40}` })],
          protocols: [{ destinationNamedPort: 'http' }],
        },
        { name: 'pass-ports', action: 'Pass', to: [every], protocols: [tcp(port)] },
      ];
    } else {
      ingress = [
        { name: 'deny-team', action: 'Deny', from: [team(c)] },
        { name: 'deny-ports', action: 'Deny', from: [every], protocols: [tcp(port, port + 9)] },
      ];
      egress = [
        { name: 'deny-net', action: 'Deny', to: [network(c)] },
        {
          name: 'deny-tier',
          action: 'Deny',
          to: [fake({ tier: `tier${c % 5}` })],
          protocols: [tcp(LOAD_PORT)],
        },
      ];
    }
    return {
      apiVersion: 'policy.networking.k8s.io/v1alpha2',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: `bench-cnp${c}` },
      spec: { tier: c < admins ? 'Admin' : 'Baseline', priority: c, subject, ingress, egress },
    };
  });
}
