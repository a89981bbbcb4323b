// Property: on random clusters, policies and flows, the per-node plans (read by a tiny matcher, as the
// dataplane will read them) and the reference evaluator always agree. Thousands of cases.
import fc from 'fast-check';
import t from 'tap';
import { DesiredCache, type DesiredSet, type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { elementTexts } from '../../src/compile/verify.ts';
import { type AddressRange, formatRange, mergeRanges, parseAddress } from '../../src/policy/address.ts';
import { endpointAt, evaluate } from '../../src/policy/evaluate.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import {
  normalizeNamespace,
  normalizeNode,
  normalizePod,
  normalizePolicy,
} from '../../src/policy/normalize.ts';
import { PlanCache, Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { runs, scale } from '../_tier.ts';
import { deepFreeze, nodes, replaceSlot } from './builders.ts';
import { PlanMatcher } from './plan-matcher.ts';

const NAMESPACES = ['x', 'y', 'z'];
const PORT_POOL: [string, number, string][] = [
  ['http', 80, 'TCP'],
  ['http', 8080, 'TCP'],
  ['dns', 53, 'UDP'],
  ['alt', 81, 'TCP'],
  ['alt', 81, 'UDP'],
  ['sctp', 80, 'SCTP'],
];

const labels = fc.record(
  { pod: fc.constantFrom('a', 'b', 'c'), role: fc.constantFrom('db', 'web') },
  { requiredKeys: [] },
);
const selector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: labels }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: fc.constantFrom('pod', 'role', 'team'),
          operator: fc.constantFrom('In', 'NotIn'),
          values: fc.array(fc.constantFrom('a', 'b', 'db', 'x', 'y'), { minLength: 1, maxLength: 2 }),
        }),
        fc.record({
          key: fc.constantFrom('pod', 'role', 'team'),
          operator: fc.constantFrom('Exists', 'DoesNotExist'),
        }),
      ),
      { maxLength: 2 },
    ),
  }),
);
const nsSelector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: fc.record({ team: fc.constantFrom('a', 'b') }) }),
  fc.record({ matchLabels: fc.record({ 'kubernetes.io/metadata.name': fc.constantFrom(...NAMESPACES) }) }),
);
const ipBlock = fc.oneof(
  fc.record({
    cidr: fc.constantFrom('10.244.0.0/16', '10.244.1.0/24', '0.0.0.0/0', '203.0.113.0/24'),
    except: fc.subarray(['10.244.1.0/25', '10.244.2.16/28', '10.244.1.12/32']),
  }),
  fc.record({
    cidr: fc.constantFrom('::/0', 'fd00:10:244:1::/64', '2001:db8:ff::/48'),
    except: fc.subarray(['fd00:10:244:1::10/126']),
  }),
  fc.record({ cidr: fc.constantFrom('10.244.1.77/24', '192.0.2.0/24') }),
);
const peer = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: nsSelector }),
  fc.record({ podSelector: selector, namespaceSelector: nsSelector }),
  fc.record({ ipBlock }),
);
const port = fc.record(
  {
    protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'),
    port: fc.constantFrom(80, 81, 53, 8000, 'http', 'dns', 'alt', 'nope'),
    endPort: fc.constantFrom(81, 8080),
  },
  { requiredKeys: [] },
);
const rule = (dir: 'from' | 'to') =>
  fc.record(
    {
      [dir]: fc.oneof(fc.constant([]), fc.array(peer, { minLength: 1, maxLength: 3 })),
      ports: fc.oneof(fc.constant([]), fc.array(port, { minLength: 1, maxLength: 2 })),
    },
    { requiredKeys: [] },
  );
const rules = (dir: 'from' | 'to') => fc.option(fc.array(rule(dir), { maxLength: 3 }), { nil: undefined });
const policyArb = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  podSelector: fc.oneof(fc.constant({}), selector),
  policyTypes: fc.option(fc.subarray(['Ingress', 'Egress'], { minLength: 1 }), { nil: undefined }),
  ingress: rules('from'),
  egress: rules('to'),
});
const podArb = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  labels,
  node: fc.constantFrom(1, 2),
  kind: fc.constantFrom('normal', 'normal', 'normal', 'normal', 'normal', 'hostNetwork', 'succeeded', 'noIp'),
  ports: fc.subarray(PORT_POOL),
});
const clusterArb = fc.record({
  nsLabels: fc.array(fc.record({ team: fc.constantFrom('a', 'b') }, { requiredKeys: [] }), {
    minLength: 3,
    maxLength: 3,
  }),
  pods: fc.array(podArb, { minLength: 1, maxLength: 8 }),
  policies: fc.array(policyArb, { minLength: 1, maxLength: 6 }),
  // IPv4-only clusters too: peer sets of IPv4 members take the index's sorted-number path.
  ipv6: fc.boolean(),
});

type ClusterInput = typeof clusterArb extends fc.Arbitrary<infer T> ? T : never;

function build(input: ClusterInput) {
  const pods = input.pods.map((p, i) => {
    const ip = p.kind === 'hostNetwork' ? `192.0.2.${p.node}` : `10.244.${p.node}.${10 + i}`;
    const ip6 = p.kind === 'hostNetwork' ? `2001:db8::${p.node}` : `fd00:10:244:${p.node}::${10 + i}`;
    return normalizePod({
      metadata: { name: `p${i}`, namespace: p.ns, labels: p.labels },
      spec: {
        nodeName: `n${p.node}`,
        hostNetwork: p.kind === 'hostNetwork',
        containers: [
          { ports: p.ports.map(([name, containerPort, protocol]) => ({ name, containerPort, protocol })) },
        ],
      },
      status: {
        phase: p.kind === 'succeeded' ? 'Succeeded' : 'Running',
        ...(p.kind === 'noIp' ? {} : { podIPs: input.ipv6 === false ? [{ ip }] : [{ ip }, { ip: ip6 }] }),
      },
    });
  });
  const policies = input.policies.map((p, i) =>
    normalizePolicy({
      metadata: { name: `np${i}`, namespace: p.ns },
      spec: {
        podSelector: p.podSelector,
        ...(p.policyTypes ? { policyTypes: p.policyTypes } : {}),
        ...(p.ingress ? { ingress: p.ingress } : {}),
        ...(p.egress ? { egress: p.egress } : {}),
      },
    }),
  );
  const namespaces = new Map(
    NAMESPACES.map((name, i) => [
      name,
      normalizeNamespace({ metadata: { name, labels: input.nsLabels[i] } }),
    ]),
  );
  // Frozen with its lists (a write by the index, planner or compiler throws); the steps below make new
  // states around the same objects.
  const state: ClusterState = deepFreeze({ pods, policies, namespaces, nodes: nodes.map(normalizeNode) });
  return { state };
}

t.test('per-node plans agree with the evaluator on random clusters and flows', async (t) => {
  let flows = 0;
  let allowedCount = 0;
  fc.assert(
    fc.property(
      clusterArb,
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.nat(),
          fc.constantFrom('TCP', 'UDP', 'SCTP', 'ICMP'),
          fc.constantFrom(53, 80, 81, 8000, 8080, 9999),
        ),
        { minLength: 20, maxLength: 20 },
      ),
      (input, flowSeeds) => {
        const { state } = build(input);
        const index = new ClusterIndex(state);
        const planner = new Planner(index);
        const matcher = new PlanMatcher(['n1', 'n2'].map((n) => planner.planNode(n)));
        // Pod addresses twice: flows between pods are the interesting ones.
        const candidates = [
          ...state.pods.flatMap((p) => p.ips),
          ...state.pods.flatMap((p) => p.ips),
          ...[
            '192.0.2.1',
            '192.0.2.2',
            '2001:db8::1',
            '203.0.113.5',
            '2001:db8:ff::1',
            '10.244.1.250',
            'fd00:10:244:1::11',
          ].map((a) => parseAddress(a)!),
        ];
        for (const [a, b, protocol, port] of flowSeeds) {
          const src = candidates[a % candidates.length]!;
          const dsts = candidates.filter((c) => c.family === src.family);
          const dst = dsts[b % dsts.length]!;
          const verdict = evaluate(index, {
            from: endpointAt(index, src),
            to: endpointAt(index, dst),
            protocol,
            port,
          });
          const planned = matcher.decide(src, dst, protocol, port);
          flows++;
          if (verdict.allowed) allowedCount++;
          if (planned !== verdict.allowed) return false;
        }
        return true;
      },
    ),
    { numRuns: runs(3000), seed: 20261122 },
  );
  t.ok(flows >= scale(60000, 3000), `${flows} flows compared`);
  // Both outcomes must be well represented, or the property proves little.
  t.ok(allowedCount > flows * 0.1 && allowedCount < flows * 0.9, `${allowedCount} of ${flows} allowed`);
});

/** A node's desired table as comparable text: chains with their rules, sets with sorted elements. */
function tableText(index: ClusterIndex, node: string): string {
  return stateText(desiredState(new Planner(index).planNode(node)));
}

/**
 * Address set elements in canonical form: a set patched across changes may keep two neighbouring
 * ranges apart where a fresh build merges them (runs.ts: a neighbour joining is a pure add), which
 * covers the same addresses. Maps and port sets as their nft texts.
 */
function canonical(s: DesiredSet): string[] {
  const family = s.key[0] === 'ipv4_addr' ? 4 : s.key[0] === 'ipv6_addr' ? 6 : undefined;
  if (s.map || family === undefined) return elementTexts(s).sort();
  const byTail = new Map<string, AddressRange[]>();
  for (const g of s.elements.groups()) {
    const tail = JSON.stringify(g.tail);
    const list = byTail.get(tail) ?? [];
    for (let at = 0; at < g.bounds.length; at += 2)
      list.push({ family, first: BigInt(g.bounds[at]!), last: BigInt(g.bounds[at + 1]!) });
    byTail.set(tail, list);
  }
  const out: string[] = [];
  for (const [tail, list] of byTail) for (const r of mergeRanges(list)) out.push(`${formatRange(r)} ${tail}`);
  return out.sort();
}

function stateText(d: DesiredState, canon = false): string {
  const chains = [...d.chains.values()].map((c) => `${c.name} ${JSON.stringify(c.rules)}`).sort();
  const sets = [...d.sets.values()]
    .map((s) => `${s.name} {${(canon ? canonical(s) : elementTexts(s).sort()).join(', ')}}`)
    .sort();
  return [...chains, ...sets].join('\n');
}

type PodEdit = [number, ClusterInput['pods'][number] | undefined];
const editsArb = fc.array(fc.tuple(fc.nat(9), fc.option(podArb, { nil: undefined })), {
  minLength: 1,
  maxLength: 8,
});

/**
 * Replays pod edits on the cluster of `input`: pod slots 0..9, an edit replaces or removes the pod of one
 * slot (slots past the initial pods are additions); every other pod stays the very same object, as in
 * the agent. `start` gets the initial state and returns the check of each next state and its changes.
 */
function replay(
  input: ClusterInput,
  edits: PodEdit[],
  start: (state: ClusterState) => (next: ClusterState, changes: ReturnType<typeof replaceSlot>) => boolean,
): boolean {
  const { state } = build(input);
  const slots = new Map(state.pods.map((p, i) => [i, p]));
  const check = start(state);
  for (const [slot, next] of edits) {
    // Built at its slot's position, so it gets that slot's name (p<slot>) and addresses.
    const padded = Array.from({ length: slot + 1 }, (_, i) => input.pods[i] ?? next!);
    padded[slot] = next!;
    const placed = next && build({ ...input, pods: padded }).state.pods[slot]!;
    const changes = replaceSlot(slots, slot, placed);
    if (!check(deepFreeze({ ...state, pods: [...slots.values()] }), deepFreeze(changes))) return false;
  }
  return true;
}

t.test('an index kept up to date with pod changes plans exactly like a fresh index', async (t) => {
  let steps = 0;
  fc.assert(
    fc.property(clusterArb, editsArb, (input, edits) =>
      replay(input, edits, (state) => {
        const incremental = new ClusterIndex(state);
        return (next, changes) => {
          incremental.update(next, changes);
          const fresh = new ClusterIndex(next);
          steps++;
          return ['n1', 'n2'].every((node) => tableText(incremental, node) === tableText(fresh, node));
        };
      }),
    ),
    { numRuns: runs(300), seed: 20261122 },
  );
  t.ok(steps >= scale(1000, 300), `${steps} updates compared`);
});

t.test('plans and tables kept across syncs (plan and desired caches) equal fresh ones', async (t) => {
  // As the reconciler: one index, PlanCache and DesiredCache per node, kept for the whole run. Edits
  // replace a slot's pod with one of the same addresses (new labels, ports, phase), add or remove pods:
  // sets kept because their members' addresses did not change, and address unions shared between
  // chains, must still give exactly what a fresh computation gives.
  let steps = 0;
  fc.assert(
    fc.property(clusterArb, editsArb, (input, edits) =>
      replay(input, edits, (state) => {
        const caches = ['n1', 'n2'].map((node) => ({
          node,
          index: new ClusterIndex(state),
          plan: new PlanCache(),
          desired: new DesiredCache(),
        }));
        const cached = (c: (typeof caches)[number]) => {
          const planner = new Planner(c.index, c.plan);
          const plan = planner.planNode(c.node);
          c.index.retainPeers(planner.peerKeysUsed());
          return stateText(desiredState(plan, c.desired), true);
        };
        for (const c of caches) cached(c);
        return (next, changes) => {
          for (const c of caches) c.index.update(next, changes);
          const fresh = new ClusterIndex(next);
          steps++;
          return caches.every(
            (c) => cached(c) === stateText(desiredState(new Planner(fresh).planNode(c.node)), true),
          );
        };
      }),
    ),
    { numRuns: runs(300), seed: 20261201 },
  );
  t.ok(steps >= scale(1000, 300), `${steps} updates compared`);
});
