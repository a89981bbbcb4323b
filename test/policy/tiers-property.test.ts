// Property (semantics 20-24): on random clusters with random ClusterNetworkPolicies and NetworkPolicies,
// the tier evaluator agrees with a plain reference written here from the raw objects (its own selector,
// CIDR and port matching; only the NetworkPolicy tier's verdict is taken from evaluate(), whose own tests
// cover it). And with no ClusterNetworkPolicy the tier evaluator is evaluate(), exactly.
import fc from 'fast-check';
import t from 'tap';
import { parseAddress } from '../../src/policy/address.ts';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { type DirectionVerdict, endpointAt, evaluate } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import {
  normalizeNamespace,
  normalizeNode,
  normalizePod,
  normalizePolicy,
} from '../../src/policy/normalize.ts';
import { evaluateTiers } from '../../src/policy/tiers.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { runs, unitSeed } from '../_tier.ts';
import { nodes } from './builders.ts';

type Labels = Record<string, string>;
type Sel = { matchLabels?: Labels };

const NAMESPACES = ['x', 'y', 'z'];
const NODE_IPS: Record<string, string> = { n1: '192.0.2.1', n2: '192.0.2.2' };
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
const clusterArb = fc.record({
  nsLabels: fc.array(fc.record({ team: fc.constantFrom('a', 'b') }, { requiredKeys: [] }), {
    minLength: 3,
    maxLength: 3,
  }),
  pods: fc.array(podArb, { minLength: 1, maxLength: 7 }),
  cnps: fc.array(cnpArb, { maxLength: 6 }),
  nps: fc.array(npArb, { maxLength: 3 }),
});
const flowsArb = fc.array(
  fc.tuple(
    fc.nat(),
    fc.nat(),
    fc.constantFrom('TCP', 'UDP', 'SCTP', 'ICMP'),
    fc.constantFrom(53, 80, 81, 8080),
  ),
  { minLength: 15, maxLength: 15 },
);

type Input = typeof clusterArb extends fc.Arbitrary<infer T> ? T : never;
type RawCnp = Input['cnps'][number];
type RawRule = RawCnp['ingress'][number];

const podIp = (i: number, node: string) => `10.244.${node === 'n1' ? 1 : 2}.${10 + i}`;

function build(input: Input, withCnps: boolean) {
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

// ---- The reference, from the raw input ----

/** What an address is, from the generator's point of view. */
type Ref = { kind: 'pod'; i: number } | { kind: 'node'; name: string } | { kind: 'external' };

const selects = (sel: Sel | undefined, labels: Labels) =>
  Object.entries(sel?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

function v4(text: string): number {
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(v4(ip) / size) === Math.floor(v4(base) / size);
}

function reference(
  input: Input,
  from: Ref,
  fromIp: string,
  to: Ref,
  toIp: string,
  protocol: string,
  port: number,
  np: (dir: 'ingress' | 'egress') => DirectionVerdict | undefined,
): boolean {
  const nsLabels = (ns: string): Labels => ({
    ...input.nsLabels[NAMESPACES.indexOf(ns)],
    'kubernetes.io/metadata.name': ns,
  });
  const pod = (r: Ref) => (r.kind === 'pod' ? input.pods[r.i]! : undefined);
  if (from.kind === 'pod' && to.kind === 'pod' && from.i === to.i) return true;
  if (from.kind === 'pod' && to.kind === 'node' && pod(from)!.node === to.name) return true;
  if (from.kind === 'node' && to.kind === 'pod' && pod(to)!.node === from.name) return true;

  const peerHits = (peer: Record<string, unknown>, other: Ref, otherIp: string): boolean => {
    const o = pod(other);
    if ('namespaces' in peer) return o !== undefined && selects(peer.namespaces as Sel, nsLabels(o.ns));
    if ('pods' in peer) {
      const p = peer.pods as { podSelector: Sel; namespaceSelector?: Sel };
      return (
        o !== undefined && selects(p.namespaceSelector, nsLabels(o.ns)) && selects(p.podSelector, o.labels)
      );
    }
    if ('nodes' in peer)
      return other.kind === 'node' && selects(peer.nodes as Sel, { 'kubernetes.io/hostname': other.name });
    return (peer.networks as string[]).some((c) => inCidr(otherIp, c));
  };
  const portHits = (
    proto: Record<string, unknown>,
    dest: (typeof input.pods)[number] | undefined,
  ): boolean => {
    if (!['TCP', 'UDP', 'SCTP'].includes(protocol)) return false;
    if ('destinationNamedPort' in proto)
      return (
        dest?.ports.some(([n, p, pr]) => n === proto.destinationNamedPort && p === port && pr === protocol) ??
        false
      );
    const [key, value] = Object.entries(proto)[0] as [
      string,
      { destinationPort: { number?: number; range?: { start: number; end: number } } },
    ];
    if (key.toUpperCase() !== protocol) return false;
    const d = value.destinationPort;
    return d.number !== undefined ? d.number === port : d.range!.start <= port && port <= d.range!.end;
  };
  /** 'Accept' | 'Deny' | 'Pass' when the rule matches, else undefined; broken rules fail closed. */
  const ruleAction = (
    rule: RawRule,
    dir: 'ingress' | 'egress',
    subject: Ref,
    other: Ref,
    otherIp: string,
  ) => {
    const peers = rule.peers as Record<string, unknown>[];
    const named = (rule.protocols ?? []).some((p) => 'destinationNamedPort' in p);
    const broken =
      peers.some((p) => Object.keys(p).length === 0) ||
      (named && peers.some((p) => 'nodes' in p || 'networks' in p));
    if (broken) return rule.action === 'Accept' ? undefined : 'Deny';
    if (!peers.some((p) => peerHits(p, other, otherIp))) return undefined;
    const dest = dir === 'ingress' ? pod(subject) : pod(other);
    if (rule.protocols && !rule.protocols.some((p) => portHits(p, dest))) return undefined;
    return rule.action;
  };
  const tierDecision = (
    tier: string,
    dir: 'ingress' | 'egress',
    subject: Ref,
    other: Ref,
    otherIp: string,
  ) => {
    const s = pod(subject)!;
    const hits: { priority: number; name: string; i: number; action: string }[] = [];
    input.cnps.forEach((c, n) => {
      if (c.tier !== tier) return;
      const subj = c.subject as { namespaces?: Sel; pods?: { podSelector: Sel; namespaceSelector?: Sel } };
      const inSubject = subj.namespaces
        ? selects(subj.namespaces, nsLabels(s.ns))
        : selects(subj.pods!.namespaceSelector, nsLabels(s.ns)) && selects(subj.pods!.podSelector, s.labels);
      if (!inSubject) return;
      c[dir].forEach((rule, i) => {
        const action = ruleAction(rule, dir, subject, other, otherIp);
        if (action) hits.push({ priority: c.priority, name: `cnp${n}`, i, action });
      });
    });
    hits.sort(
      (a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) || a.i - b.i,
    );
    return hits[0]?.action;
  };
  const direction = (dir: 'ingress' | 'egress', subject: Ref, other: Ref, otherIp: string): boolean => {
    const admin = tierDecision('Admin', dir, subject, other, otherIp);
    if (admin === 'Accept') return true;
    if (admin === 'Deny') return false;
    const v = np(dir)!;
    if (v.isolatedBy.length > 0) return v.allowed;
    return tierDecision('Baseline', dir, subject, other, otherIp) !== 'Deny';
  };
  const egress = from.kind === 'pod' ? direction('egress', from, to, toIp) : true;
  const ingress = to.kind === 'pod' ? direction('ingress', to, from, fromIp) : true;
  return egress && ingress;
}

/** Every address a flow may use, with what the reference knows it is. */
function candidates(input: Input): [string, Ref][] {
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

function flowsOf(input: Input, seeds: [number, number, string, number][]) {
  const c = candidates(input);
  return seeds.map(([a, b, protocol, port]) => ({
    from: c[a % c.length]!,
    to: c[b % c.length]!,
    protocol,
    port,
  }));
}

/** A generated flow as the evaluators take it. */
function flowIn(index: ClusterIndex, f: ReturnType<typeof flowsOf>[number]) {
  const at = (text: string) => endpointAt(index, parseAddress(text)!);
  return { from: at(f.from[0]), to: at(f.to[0]), protocol: f.protocol, port: f.port };
}

t.test('the tier evaluator agrees with the reference (points 20-24)', async (t) => {
  let flows = 0;
  const decided = { Admin: 0, NetworkPolicy: 0, Baseline: 0, default: 0 };
  fc.assert(
    fc.property(clusterArb, flowsArb, (input, seeds) => {
      const index = build(input, true);
      for (const f of flowsOf(input, seeds)) {
        const flow = flowIn(index, f);
        const got = evaluateTiers(index, flow);
        const np = evaluate(index, flow);
        const want = reference(
          input,
          f.from[1],
          f.from[0],
          f.to[1],
          f.to[0],
          f.protocol,
          f.port,
          (d) => np[d],
        );
        if (got.allowed !== want) return false;
        for (const d of [got.egress, got.ingress]) if (d) decided[d.decidedBy]++;
        flows++;
      }
      return true;
    }),
    { numRuns: runs(400), ...unitSeed() },
  );
  t.ok(flows > 0, `${flows} flows compared`);
  // The property is only worth something if every tier decides some of them.
  for (const [tier, n] of Object.entries(decided)) t.ok(n > 0, `${n} directions decided by ${tier}`);
});

t.test('without ClusterNetworkPolicies the tier evaluator is evaluate(), exactly', async (t) => {
  let flows = 0;
  fc.assert(
    fc.property(clusterArb, flowsArb, (input, seeds) => {
      const index = build(input, false);
      for (const f of flowsOf(input, seeds)) {
        const flow = flowIn(index, f);
        const got = evaluateTiers(index, flow);
        const want = evaluate(index, flow);
        if (got.allowed !== want.allowed || got.reason !== want.reason) return false;
        if (JSON.stringify(got.egress?.networkPolicy) !== JSON.stringify(want.egress)) return false;
        if (JSON.stringify(got.ingress?.networkPolicy) !== JSON.stringify(want.ingress)) return false;
        flows++;
      }
      return true;
    }),
    { numRuns: runs(200) },
  );
  t.ok(flows > 0, `${flows} flows compared`);
});
