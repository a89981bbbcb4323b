// Random clusters with ClusterNetworkPolicies and NetworkPolicies for the tier property tests (the tier
// evaluator against a reference, the plan against the evaluator); generators and builders only.
import fc from 'fast-check';
import { parseAddress } from '../../src/policy/address.ts';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { endpointAt } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import {
  normalizeNamespace,
  normalizeNode,
  normalizePod,
  normalizePolicy,
} from '../../src/policy/normalize.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { nodes } from './builders.ts';

export type Labels = Record<string, string>;
export type Sel = { matchLabels?: Labels };

export const NAMESPACES = ['x', 'y', 'z'];
export const NODE_IPS: Record<string, string> = { n1: '192.0.2.1', n2: '192.0.2.2' };
const EXTERNALS = ['203.0.113.5', '10.244.1.250'];
const PORT_POOL: [string, number, string][] = [
  ['http', 80, 'TCP'],
  ['http', 8080, 'TCP'],
  ['dns', 53, 'UDP'],
  ['alt', 81, 'SCTP'],
];

const podSel: fc.Arbitrary<Sel> = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: fc.record({ pod: fc.constantFrom('a', 'b') }) }),
  fc.record({ matchLabels: fc.record({ role: fc.constantFrom('db', 'web') }) }),
);
const nsSel: fc.Arbitrary<Sel> = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: fc.record({ team: fc.constantFrom('a', 'b') }) }),
  fc.record({ matchLabels: fc.record({ 'kubernetes.io/metadata.name': fc.constantFrom(...NAMESPACES) }) }),
);
const podPeer = fc.record(
  { podSelector: podSel, namespaceSelector: nsSel },
  { requiredKeys: ['podSelector'] },
);
const cnpPeer = (egress: boolean) =>
  fc.oneof(
    fc.record({ namespaces: nsSel }),
    fc.record({ pods: podPeer }),
    // An empty peer: an unknown field of a newer CRD, fails closed.
    ...(egress
      ? [
          fc.record({
            nodes: fc.oneof(
              fc.constant({}),
              fc.record({
                matchLabels: fc.record({ 'kubernetes.io/hostname': fc.constantFrom('n1', 'n2') }),
              }),
            ),
          }),
          fc.record({
            networks: fc.subarray(
              ['10.244.1.0/24', '10.244.2.16/28', '192.0.2.0/31', '203.0.113.0/24', '0.0.0.0/0'],
              { minLength: 1 },
            ),
          }),
          fc.constant({}),
        ]
      : []),
  );
const protocolArb = fc.oneof(
  fc
    .record({
      proto: fc.constantFrom('tcp', 'udp', 'sctp'),
      port: fc.oneof(
        fc.record({ number: fc.constantFrom(53, 80, 81, 8080) }),
        fc.record({ range: fc.constantFrom({ start: 79, end: 81 }, { start: 53, end: 8080 }) }),
      ),
    })
    .map(({ proto, port }) => ({ [proto]: { destinationPort: port } })),
  fc.record({ destinationNamedPort: fc.constantFrom('http', 'dns', 'alt', 'none') }),
);
const cnpRule = (egress: boolean) =>
  fc.record(
    {
      action: fc.constantFrom('Accept', 'Deny', 'Pass'),
      peers: fc.array(cnpPeer(egress), { minLength: 1, maxLength: 2 }),
      protocols: fc.array(protocolArb, { minLength: 1, maxLength: 2 }),
    },
    { requiredKeys: ['action', 'peers'] },
  );
const cnpArb = fc.record({
  tier: fc.constantFrom('Admin', 'Baseline'),
  // Few priorities: ties (ordered by name) come up often.
  priority: fc.constantFrom(1, 2, 3),
  subject: fc.oneof(fc.record({ namespaces: nsSel }), fc.record({ pods: podPeer })),
  ingress: fc.array(cnpRule(false), { maxLength: 3 }),
  egress: fc.array(cnpRule(true), { maxLength: 3 }),
});
const npRule = (dir: 'from' | 'to') =>
  fc.record(
    {
      [dir]: fc.array(fc.oneof(fc.record({ podSelector: podSel }), fc.record({ namespaceSelector: nsSel })), {
        maxLength: 2,
      }),
      ports: fc.array(
        fc.record({ protocol: fc.constantFrom('TCP', 'UDP'), port: fc.constantFrom(80, 53, 'http') }),
        { maxLength: 1 },
      ),
    },
    { requiredKeys: [] },
  );
const npArb = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  podSelector: podSel,
  policyTypes: fc.subarray(['Ingress', 'Egress'], { minLength: 1 }),
  ingress: fc.array(npRule('from'), { maxLength: 2 }),
  egress: fc.array(npRule('to'), { maxLength: 2 }),
});
const podArb = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  labels: fc.record(
    { pod: fc.constantFrom('a', 'b', 'c'), role: fc.constantFrom('db', 'web') },
    { requiredKeys: [] },
  ),
  node: fc.constantFrom('n1', 'n2'),
  kind: fc.constantFrom('live', 'live', 'live', 'live', 'hostNetwork', 'succeeded'),
  ports: fc.subarray(PORT_POOL),
});
export const clusterArb = fc.record({
  nsLabels: fc.array(fc.record({ team: fc.constantFrom('a', 'b') }, { requiredKeys: [] }), {
    minLength: 3,
    maxLength: 3,
  }),
  pods: fc.array(podArb, { minLength: 1, maxLength: 7 }),
  cnps: fc.array(cnpArb, { maxLength: 6 }),
  nps: fc.array(npArb, { maxLength: 3 }),
});
export const flowsArb = fc.array(
  fc.tuple(
    fc.nat(),
    fc.nat(),
    fc.constantFrom('TCP', 'UDP', 'SCTP', 'ICMP'),
    fc.constantFrom(53, 80, 81, 8080),
  ),
  { minLength: 15, maxLength: 15 },
);

export type Input = typeof clusterArb extends fc.Arbitrary<infer T> ? T : never;
export type RawCnp = Input['cnps'][number];
export type RawRule = RawCnp['ingress'][number];

export const podIp = (i: number, node: string) => `10.244.${node === 'n1' ? 1 : 2}.${10 + i}`;

export function build(input: Input, withCnps: boolean) {
  const pods = input.pods.map((p, i) =>
    normalizePod({
      metadata: { name: `p${i}`, namespace: p.ns, labels: p.labels },
      spec: {
        nodeName: p.node,
        hostNetwork: p.kind === 'hostNetwork',
        containers: [
          { ports: p.ports.map(([name, containerPort, protocol]) => ({ name, containerPort, protocol })) },
        ],
      },
      status: {
        phase: p.kind === 'succeeded' ? 'Succeeded' : 'Running',
        podIPs: [{ ip: p.kind === 'hostNetwork' ? NODE_IPS[p.node] : podIp(i, p.node) }],
      },
    }),
  );
  const policies = input.nps.map((p, i) =>
    normalizePolicy({ metadata: { name: `np${i}`, namespace: p.ns }, spec: { ...p, ns: undefined } }),
  );
  const clusterPolicies = withCnps
    ? input.cnps.map((c, i) =>
        normalizeClusterPolicy({
          kind: 'ClusterNetworkPolicy',
          metadata: { name: `cnp${i}` },
          spec: {
            tier: c.tier,
            priority: c.priority,
            subject: c.subject,
            ingress: c.ingress.map(({ peers, ...r }) => ({ ...r, from: peers })),
            egress: c.egress.map(({ peers, ...r }) => ({ ...r, to: peers })),
          },
        }),
      )
    : [];
  const namespaces = new Map(
    NAMESPACES.map((name, i) => [
      name,
      normalizeNamespace({ metadata: { name, labels: input.nsLabels[i] } }),
    ]),
  );
  // Listed against name order (as an API may list them): ties must still go by name.
  clusterPolicies.reverse();
  const state: ClusterState = {
    pods,
    policies,
    namespaces,
    nodes: nodes.map(normalizeNode),
    clusterPolicies,
  };
  return new ClusterIndex(state);
}

/** Every address a flow may use, with what the reference knows it is. */
export function candidates(input: Input): [string, Ref][] {
  const out: [string, Ref][] = [];
  input.pods.forEach((p, i) => {
    if (p.kind === 'live')
      out.push([podIp(i, p.node), { kind: 'pod', i }], [podIp(i, p.node), { kind: 'pod', i }]);
    else if (p.kind === 'succeeded') out.push([podIp(i, p.node), { kind: 'external' }]);
  });
  for (const [name, ip] of Object.entries(NODE_IPS)) out.push([ip, { kind: 'node', name }]);
  for (const ip of EXTERNALS) out.push([ip, { kind: 'external' }]);
  return out;
}

export function flowsOf(input: Input, seeds: [number, number, string, number][]) {
  const c = candidates(input);
  return seeds.map(([a, b, protocol, port]) => ({
    from: c[a % c.length]!,
    to: c[b % c.length]!,
    protocol,
    port,
  }));
}

/** A generated flow as the evaluators take it. */
export function flowIn(index: ClusterIndex, f: ReturnType<typeof flowsOf>[number]) {
  const at = (text: string) => endpointAt(index, parseAddress(text)!);
  return { from: at(f.from[0]), to: at(f.to[0]), protocol: f.protocol, port: f.port };
}

/** What an address is, from the generator's point of view. */
export type Ref = { kind: 'pod'; i: number } | { kind: 'node'; name: string } | { kind: 'external' };
