// Property: the agent's incremental path (store objects reused while unchanged, podChanges, the
// reconciler's long-lived index, plan and desired caches, diffs against its record) always programs exactly
// what a fresh full computation from newly normalized objects gives, over random edit sequences.
import fc from 'fast-check';
import t from 'tap';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { DesiredCache, desiredState } from '../../src/compile/desired.ts';
import {
  canonicalLines,
  canonicalSetNames,
  compareTable,
  expectedRuleset,
} from '../../src/compile/verify.ts';
import type { NamedSet, Ruleset } from '../../src/nft/index.ts';
import type { PodChanges } from '../../src/policy/index.ts';
import {
  normalizeNamespace,
  normalizeNode,
  normalizePod,
  normalizePolicy,
} from '../../src/policy/normalize.ts';
import { planNode } from '../../src/policy/plan.ts';
import type { ClusterState, Namespace, Node, Pod, Policy } from '../../src/policy/types.ts';
import { runs, scale } from '../_tier.ts';
import { deepFreeze } from '../policy/builders.ts';
import { FakeKernel } from './_fixtures.ts';

type Raw = Record<string, unknown>;

const NAMESPACES = ['x', 'y', 'z'];
const NODES = ['n1', 'n2'] as const;

// A small universe, so that edits collide: the same keys, labels, addresses and ports come back.
const labels = fc.record(
  { app: fc.constantFrom('a', 'b', 'c'), tier: fc.constantFrom('web', 'db') },
  { requiredKeys: [] },
);
const nsLabels = fc.record(
  { team: fc.constantFrom('red', 'blue'), env: fc.constant('prod') },
  { requiredKeys: [] },
);
const selector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: labels }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: fc.constantFrom('app', 'tier', 'team'),
          operator: fc.constantFrom('In', 'NotIn'),
          values: fc.subarray(['a', 'b', 'web', 'red'], { minLength: 1 }),
        }),
        fc.record({
          key: fc.constantFrom('app', 'tier', 'team', 'env'),
          operator: fc.constantFrom('Exists', 'DoesNotExist'),
        }),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  }),
);
const ipBlock = fc.oneof(
  fc.constant({ cidr: '10.244.0.0/16', except: ['10.244.1.0/24'] }),
  fc.constant({ cidr: '10.244.1.8/29' }),
  fc.constant({ cidr: '10.244.2.0/24', except: ['10.244.2.12/30', '10.244.2.10/32'] }),
  fc.constant({ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }),
  fc.constant({ cidr: '203.0.113.0/24' }),
  fc.constant({ cidr: 'fd00:10:244::/48', except: ['fd00:10:244:1::/64'] }),
  fc.constant({ cidr: '::/0' }),
);
// Namespace selectors ask about the keys namespaces have, so that relabelling a namespace moves peers.
const nsSelector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: nsLabels }),
  fc.record({
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: fc.constant('team'),
          operator: fc.constantFrom('In', 'NotIn'),
          values: fc.subarray(['red', 'blue'], { minLength: 1 }),
        }),
        fc.record({
          key: fc.constantFrom('team', 'env'),
          operator: fc.constantFrom('Exists', 'DoesNotExist'),
        }),
      ),
      { minLength: 1, maxLength: 2 },
    ),
  }),
);
const peer = fc.oneof(
  fc.record({ podSelector: selector }),
  fc.record({ namespaceSelector: nsSelector }),
  fc.record({ namespaceSelector: nsSelector, podSelector: selector }),
  fc.record({ ipBlock }),
);
const port = fc.oneof(
  fc.record({ port: fc.constantFrom(80, 53, 8080) }, { requiredKeys: [] }),
  fc.record({ protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'), port: fc.constantFrom(80, 53, 81) }),
  fc.record({ port: fc.constantFrom('http', 'http', 'dns', 'alt', 'nope') }),
  fc.record({ port: fc.constant('http') }),
  fc.record({ port: fc.constant(8000), endPort: fc.constantFrom(8080, 9000) }),
  fc.record({ protocol: fc.constant('UDP') }),
);
const rule = fc.record({ peers: fc.array(peer, { maxLength: 2 }), ports: fc.array(port, { maxLength: 2 }) });
const policySpec = fc
  .record({
    podSelector: selector,
    types: fc.constantFrom(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
    ingress: fc.array(rule, { maxLength: 2 }),
    egress: fc.array(rule, { maxLength: 2 }),
  })
  .map(({ podSelector, types, ingress, egress }) => ({
    podSelector,
    ...(types ? { policyTypes: types } : {}),
    ingress: ingress.map((r) => ({ from: r.peers, ports: r.ports })),
    egress: egress.map((r) => ({ to: r.peers, ports: r.ports })),
  }));

const podKey = fc.tuple(fc.constantFrom(...NAMESPACES), fc.constantFrom('p0', 'p1', 'p2', 'p3', 'p4'));
/** An edit of an existing pod: the which-th (modulo) of those there are. */
const which = fc.nat(63);
const policyKey = fc.tuple(fc.constantFrom(...NAMESPACES), fc.constantFrom('q0', 'q1', 'q2'));
// Addresses may repeat across pods (IP reuse, contested addresses) and may sit outside the node's CIDR.
const v4 = fc.constantFrom('10.244.1.10', '10.244.1.11', '10.244.1.12', '10.244.2.10', '10.244.2.11');
const v6 = fc.constantFrom(undefined, 'fd00:10:244:1::10', 'fd00:10:244:2::10', 'fd00:10:244:2::11');
// A named port may move to another number when a pod is replaced (a named-port set follows it).
const ports = fc.tuple(fc.constantFrom(80, 8080), fc.subarray([0, 1, 2])).map(([http, picked]) =>
  picked.map(
    (i) =>
      [
        { name: 'http', containerPort: http, protocol: 'TCP' },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
        { name: 'alt', containerPort: 81, protocol: 'SCTP' },
      ][i]!,
  ),
);
const podSpec = fc.record({
  labels,
  node: fc.constantFrom('n1', 'n2', 'n2', undefined),
  ip: fc.option(v4, { freq: 8 }),
  ip6: v6,
  phase: fc.constantFrom('Running', 'Running', 'Running', 'Pending', 'Succeeded'),
  hostNetwork: fc.constantFrom(false, false, false, false, true),
  ports,
});
type PodSpec = typeof podSpec extends fc.Arbitrary<infer T> ? T : never;

type Op =
  | { op: 'pod'; key: [string, string]; spec: PodSpec }
  | { op: 'relabel'; which: number; labels: Record<string, string> }
  | { op: 'move'; which: number; node: string | undefined }
  | { op: 'ip'; which: number; ip: string | null }
  | { op: 'phase'; which: number; phase: string }
  | { op: 'delpod'; which: number }
  | { op: 'ns'; name: string; labels: Record<string, string> }
  | { op: 'delns'; name: string }
  | { op: 'policy'; key: [string, string]; spec: Raw }
  | { op: 'delpolicy'; key: [string, string] }
  | { op: 'node'; name: string; extra: boolean }
  | { op: 'sync' }
  /** The node's next `times` commits fail (the kernel refused or the socket broke). */
  | { op: 'fail'; node: number; times: number }
  /** Someone deletes the node's table; with `verify` the agent's periodic verify runs before the sync. */
  | { op: 'drift'; node: number; verify: boolean }
  /** The agent's periodic verify runs before the node's sync. */
  | { op: 'verify'; node: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('pod' as const), key: podKey, spec: podSpec }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('relabel' as const), which, labels }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('move' as const),
      which,
      node: fc.constantFrom('n1', 'n2', undefined),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('ip' as const), which, ip: fc.option(v4) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('phase' as const),
      which,
      phase: fc.constantFrom('Running', 'Pending', 'Succeeded', 'Failed'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delpod' as const), which }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('ns' as const),
      name: fc.constantFrom(...NAMESPACES),
      labels: nsLabels,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('delns' as const), name: fc.constantFrom(...NAMESPACES) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('policy' as const), key: policyKey, spec: policySpec }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delpolicy' as const), key: policyKey }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('node' as const),
      name: fc.constantFrom(...NODES),
      extra: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ op: 'sync' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('fail' as const),
      node: fc.constantFrom(0, 1),
      times: fc.constantFrom(1, 2),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('drift' as const),
      node: fc.constantFrom(0, 1),
      verify: fc.boolean(),
    }),
  },
);

function rawPod([namespace, name]: [string, string], s: PodSpec, rv: number): Raw {
  const podIPs = [s.ip, s.ip6].flatMap((x) => (typeof x === 'string' ? [x] : [])).map((ip) => ({ ip }));
  return {
    metadata: { name, namespace, labels: { ...s.labels }, resourceVersion: String(rv) },
    spec: {
      ...(s.node ? { nodeName: s.node } : {}),
      hostNetwork: s.hostNetwork,
      containers: [{ name: 'c', ports: s.ports }],
    },
    status: { phase: s.phase, ...(podIPs.length ? { podIP: podIPs[0]!.ip, podIPs } : {}) },
  };
}

function rawNode(name: string, extra: boolean): Raw {
  const n = name === 'n1' ? 1 : 2;
  const addresses = [{ type: 'InternalIP', address: `198.51.100.${n}` }];
  if (extra) addresses.push({ type: 'ExternalIP', address: `2001:db8::${n}` });
  return {
    metadata: { name },
    spec: { podCIDRs: [`10.244.${n}.0/24`, `fd00:10:244:${n}::/64`] },
    status: { addresses },
  };
}

type Kind = 'pods' | 'namespaces' | 'policies' | 'nodes';

/** What one agent's store remembers between syncs: the keys changed since, and the last state. */
class StoreView {
  readonly changed: Record<Kind, Set<string>> = {
    pods: new Set(),
    namespaces: new Set(),
    policies: new Set(),
    nodes: new Set(),
  };
  private last: ClusterState | undefined;
  private readonly world: World;

  constructor(world: World) {
    this.world = world;
    world.views.push(this);
  }

  /** What Agent.state() hands the reconciler: unchanged kinds keep their list, pods come as changes. */
  take(): { state: ClusterState; podChanges: PodChanges } {
    const changedPods = [...this.changed.pods];
    this.changed.pods.clear();
    const items = this.world.items;
    const podChanges: PodChanges = {
      *[Symbol.iterator]() {
        for (const key of changedPods) yield [key, items.pods.get(key)] as const;
      },
    };
    const last = this.last;
    const changed = (kind: 'namespaces' | 'policies' | 'nodes') => {
      const any = this.changed[kind].size > 0;
      this.changed[kind].clear();
      return any;
    };
    let pods: readonly Pod[] | undefined;
    // Frozen with its lists and the changes (a write by the index, planners or compilers throws); the
    // lazy pod list freezes itself when built.
    const state: ClusterState = deepFreeze({
      namespaces: !last || changed('namespaces') ? new Map(items.namespaces) : last.namespaces,
      nodes: !last || changed('nodes') ? [...items.nodes.values()] : last.nodes,
      get pods() {
        pods ??= deepFreeze([...items.pods.values()]);
        return pods;
      },
      policies: !last || changed('policies') ? [...items.policies.values()] : last.policies,
    });
    this.last = state;
    return { state, podChanges };
  }
}

/**
 * The watched cluster as the agent's store holds it: raw objects and their normalized forms by key
 * (insertion-ordered like a reflector's map), the changed keys since the last sync, and the states built
 * the way Agent.state() builds them (an unchanged kind keeps its very list; pods via podChanges).
 */
class World {
  rv = 1;
  readonly raw = {
    pods: new Map<string, Raw>(),
    namespaces: new Map<string, Raw>(),
    policies: new Map<string, Raw>(),
    nodes: new Map<string, Raw>(),
  };
  readonly items = {
    pods: new Map<string, Pod>(),
    namespaces: new Map<string, Namespace>(),
    policies: new Map<string, Policy>(),
    nodes: new Map<string, Node>(),
  };
  /** One store view per node's agent: each has its own changed keys and last state. */
  readonly views: StoreView[] = [];
  private readonly normalize = {
    pods: normalizePod,
    namespaces: normalizeNamespace,
    policies: normalizePolicy,
    nodes: normalizeNode,
  } as const;

  constructor() {
    for (const n of NAMESPACES) this.put('namespaces', n, { metadata: { name: n, labels: { team: 'red' } } });
    for (const n of NODES) this.put('nodes', n, rawNode(n, false));
  }

  /** A watch event: a new raw object (new resourceVersion) and a new normalized object for the key. */
  put(kind: Kind, key: string, raw: Raw | undefined): void {
    for (const v of this.views) v.changed[kind].add(key);
    if (raw === undefined) {
      this.raw[kind].delete(key);
      this.items[kind].delete(key);
      return;
    }
    (raw.metadata as Raw).resourceVersion = String(++this.rv);
    this.raw[kind].set(key, raw);
    // biome-ignore lint/suspicious/noExplicitAny: one normalizer per kind, chosen by the same key
    (this.items[kind] as Map<string, any>).set(key, deepFreeze(this.normalize[kind](raw)));
  }

  apply(o: Op): void {
    const pk = (k: [string, string]) => `${k[0]}/${k[1]}`;
    const existing = (n: number) => {
      const keys = [...this.raw.pods.keys()].sort();
      return keys.length === 0 ? undefined : keys[n % keys.length];
    };
    const editPod = (n: number, edit: (r: Raw) => void) => {
      const key = existing(n);
      if (key === undefined) return;
      const copy = structuredClone(this.raw.pods.get(key)!);
      edit(copy);
      this.put('pods', key, copy);
    };
    switch (o.op) {
      case 'pod':
        this.put('pods', pk(o.key), rawPod(o.key, o.spec, 0));
        break;
      case 'relabel':
        editPod(o.which, (r) => {
          (r.metadata as Raw).labels = { ...o.labels };
        });
        break;
      case 'move':
        editPod(o.which, (r) => {
          (r.spec as Raw).nodeName = o.node;
        });
        break;
      case 'ip':
        editPod(o.which, (r) => {
          const status = r.status as Raw;
          if (o.ip === null) {
            delete status.podIP;
            delete status.podIPs;
          } else {
            status.podIP = o.ip;
            status.podIPs = [{ ip: o.ip }];
          }
        });
        break;
      case 'phase':
        editPod(o.which, (r) => {
          (r.status as Raw).phase = o.phase;
        });
        break;
      case 'delpod': {
        const key = existing(o.which);
        if (key !== undefined) this.put('pods', key, undefined);
        break;
      }
      case 'ns':
        this.put('namespaces', o.name, { metadata: { name: o.name, labels: { ...o.labels } } });
        break;
      case 'delns':
        this.put('namespaces', o.name, undefined);
        break;
      case 'policy':
        this.put('policies', pk(o.key), {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { namespace: o.key[0], name: o.key[1] },
          spec: structuredClone(o.spec),
        });
        break;
      case 'delpolicy':
        this.put('policies', pk(o.key), undefined);
        break;
      case 'node':
        this.put('nodes', o.name, rawNode(o.name, o.extra));
        break;
      case 'sync':
      case 'fail':
      case 'drift':
      case 'verify':
        break;
    }
  }

  /** The same cluster normalized again from its raw objects: no object shared with the incremental path. */
  fresh(): ClusterState {
    const again = <T>(m: Map<string, Raw>, f: (r: unknown) => T) =>
      [...m.values()].map((r) => f(structuredClone(r)));
    return deepFreeze({
      namespaces: new Map(again(this.raw.namespaces, normalizeNamespace).map((n) => [n.name, n])),
      nodes: again(this.raw.nodes, normalizeNode),
      pods: again(this.raw.pods, normalizePod),
      policies: again(this.raw.policies, normalizePolicy),
    });
  }
}

/**
 * What a table means, compared between two states: every line but the elements exactly (chains, rules in
 * order, set definitions), and each set's elements by the keys they match (and the verdict a map gives
 * each): the incremental path keeps an element that is still valid and adds a neighbour beside it where a
 * fresh computation merges the two (fd00::10 + fd00::11 against fd00::10/127), on purpose (see the
 * reconciler tests). Also reports overlapping elements in one set, which the kernel refuses.
 */
function difference(want: Ruleset, got: Ruleset): string | undefined {
  const structure = (r: Ruleset) => canonicalLines(r).filter((l) => !l.startsWith('add element '));
  const ws = structure(want);
  const gs = structure(got);
  const problems: string[] = [];
  if (ws.join('\n') !== gs.join('\n')) problems.push(lineDiff(ws, gs));
  // Sets by the names a fresh build gives them: a chain that took over its predecessor's sets keeps
  // their names (DesiredCache.lineage).
  const gotNames = canonicalSetNames(got);
  const wantNames = canonicalSetNames(want);
  const gotSets = new Map(got.sets.map((x) => [gotNames.get(x.name) ?? x.name, x]));
  for (const w of want.sets) {
    const g = gotSets.get(wantNames.get(w.name) ?? w.name);
    if (g === undefined) continue; // reported above
    const wb = boxes(w);
    const gb = boxes(g);
    for (const [side, b] of [
      ['fresh', wb],
      ['incremental', gb],
    ] as const) {
      const o = overlap(b);
      if (o) problems.push(`${side} set ${w.name}: elements ${o} overlap`);
    }
    const probe = meaningDiff(wb, gb);
    if (probe) problems.push(`set ${w.name}: ${probe}`);
  }
  return problems.length ? problems.join('\n') : undefined;
}

interface Box {
  text: string;
  fields: [bigint, bigint][];
  data: string;
}

const big = (b: Buffer) => (b.length === 0 ? 0n : BigInt(`0x${b.toString('hex')}`));

function boxes(set: NamedSet): Box[] {
  return set.elements.map((e) => {
    const text = set.formatElement(e);
    return {
      text,
      fields: e.fields.map((f) => [big(f.from), big(f.to)] as [bigint, bigint]),
      data: text.split(' : ')[1] ?? 'member',
    };
  });
}

const intersects = (a: Box, b: Box) =>
  a.fields.every(([f, t], i) => f <= b.fields[i]![1] && b.fields[i]![0] <= t);

function overlap(bs: Box[]): string | undefined {
  for (let i = 0; i < bs.length; i++)
    for (let j = i + 1; j < bs.length; j++)
      if (intersects(bs[i]!, bs[j]!)) return `${bs[i]!.text} and ${bs[j]!.text}`;
  return undefined;
}

/** Membership is constant between the boxes' edges: probing one point per cell of their grid decides. */
function meaningDiff(a: Box[], b: Box[]): string | undefined {
  const key = (x: Box) => x.text;
  const as = a.map(key).sort().join('|');
  if (as === b.map(key).sort().join('|')) return undefined;
  const dims = (a[0] ?? b[0])?.fields.length ?? 0;
  const edges: bigint[][] = [];
  for (let d = 0; d < dims; d++) {
    const e = new Set<bigint>([0n]);
    for (const x of [...a, ...b]) {
      e.add(x.fields[d]![0]);
      e.add(x.fields[d]![1] + 1n);
    }
    edges.push([...e]);
  }
  const at = (bs: Box[], point: bigint[]) =>
    bs
      .filter((x) => x.fields.every(([f, t], i) => f <= point[i]! && point[i]! <= t))
      .map((x) => x.data)
      .sort()
      .join(',') || 'none';
  const point: bigint[] = [];
  const walk = (d: number): string | undefined => {
    if (d === dims) {
      const [va, vb] = [at(a, point), at(b, point)];
      return va === vb ? undefined : `at ${point.join(' . ')}: fresh ${va}, incremental ${vb}`;
    }
    for (const v of edges[d]!) {
      point[d] = v;
      const r = walk(d + 1);
      if (r) return r;
    }
    return undefined;
  };
  return walk(0);
}

let steps = 0;
/** Node syncs after which the table differed from the node's previous one: the edits reach the table. */
let changes = 0;
/** Syncs that failed by injection (the next one must converge all the same). */
let failures = 0;
/** Syncs whose diff failed and that converged from the kernel's listing instead. */
let recoveries = 0;

async function run(ops: Op[][]): Promise<void> {
  const world = new World();
  const nodes = NODES.map((name) => {
    const fake = new FakeKernel();
    return {
      name,
      fake,
      view: new StoreView(world),
      reconciler: new NodeReconciler(name, fake),
      previous: '',
      /** The table was deleted behind the agent's back and nothing has noticed yet (a sync with nothing
       *  to change sends nothing; the periodic verify finds it). */
      drifted: false,
    };
  });
  for (const [i, batch] of ops.entries()) {
    for (const o of batch) world.apply(o);
    const fresh = world.fresh();
    for (const [k, n] of nodes.entries()) {
      let verify = batch.some((o) => o.op === 'verify' && o.node === k);
      for (const o of batch) {
        if (o.op === 'drift' && o.node === k) {
          n.fake.fake.tamper((m) => m.clear());
          n.drifted = true;
          verify ||= o.verify;
        }
      }
      if (verify) {
        const v = await n.reconciler.verify();
        const last = n.reconciler.lastComplete;
        if (last !== undefined && !compareTable(last, await n.fake.readTable()).equal)
          throw new Error(`step ${i} ${n.name}: verify left the table unlike the last program: ${v.detail}`);
        n.drifted = n.reconciler.lastComplete === undefined;
      }
      // After the verify: the failure is the sync's.
      for (const o of batch) if (o.op === 'fail' && o.node === k) n.fake.fake.failNext = o.times;
      const { state, podChanges } = n.view.take();
      // The injected failure is this sync's only (a sync with nothing to send leaves it unused).
      const failing = n.fake.fake.failNext > 0;
      try {
        const result = await n.reconciler.sync(state, { podChanges });
        if (result.kind !== 'none') n.drifted = false;
        // A failed diff is retried once from the kernel's listing (recovered): that one may succeed.
        if (failing && n.fake.fake.failNext === 0 && result.recovered === undefined)
          throw new Error(`step ${i} ${n.name}: a sync succeeded although its commit failed`);
        if (result.recovered !== undefined) recoveries++;
        n.fake.fake.failNext = 0;
      } catch (e) {
        if (!/injected/.test((e as Error).message)) throw e;
        // Nothing of a failed batch is applied: the kernel still holds the last complete program.
        const last = n.reconciler.lastComplete;
        const kernel = await n.fake.readTable();
        if (last !== undefined && kernel !== undefined && !compareTable(last, kernel).equal)
          throw new Error(`step ${i} ${n.name}: a failed commit changed the kernel`);
        failures++;
        continue;
      }
      const want = desiredState(planNode(fresh, n.name), new DesiredCache());
      const got = n.reconciler.current;
      if (got === undefined) throw new Error(`step ${i} ${n.name}: nothing recorded as programmed`);
      const d = difference(expectedRuleset(want), expectedRuleset(got));
      if (d) throw new Error(`step ${i} ${n.name}: incremental != fresh\n${d}`);
      // The batches applied to the previous table (the fake kernel) give exactly the recorded table.
      const now = canonicalLines(expectedRuleset(got)).join('\n');
      if (now !== n.previous) changes++;
      n.previous = now;
      const kernel = compareTable(got, await n.fake.readTable());
      if (!kernel.equal && !n.drifted)
        throw new Error(`step ${i} ${n.name}: kernel != record: ${kernel.detail}`);
      steps++;
    }
  }
}

function lineDiff(want: string[], got: string[]): string {
  const w = new Set(want);
  const g = new Set(got);
  const out = [...w].filter((l) => !g.has(l)).map((l) => `- ${l}`);
  for (const l of g) if (!w.has(l)) out.push(`+ ${l}`);
  return out.slice(0, 12).join('\n');
}

// 150 runs are about 3,800 node syncs (15-30 s on a loaded 2-core machine; the unit tier runs a tenth,
// test/_tier.ts). INCR_RUNS and INCR_SEED (the seed fast-check prints on failure) replay a run.
const RUNS = Number(process.env.INCR_RUNS ?? runs(150));

t.test('incremental path equals a fresh full computation after every step', async (t) => {
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(
      fc
        .tuple(
          // A populated cluster first (one batch, as a first list), then the edits.
          fc.array(
            fc.oneof(
              fc.record({ op: fc.constant('pod' as const), key: podKey, spec: podSpec }),
              fc.record({ op: fc.constant('policy' as const), key: policyKey, spec: policySpec }),
            ),
            { minLength: 3, maxLength: 14 },
          ),
          fc.array(fc.array(op, { minLength: 1, maxLength: 3 }), { minLength: 5, maxLength: 40 }),
        )
        .map(([first, rest]) => [first as Op[], ...rest]),
      run,
    ),
    { numRuns: RUNS, ...(process.env.INCR_SEED ? { seed: Number(process.env.INCR_SEED) } : {}) },
  );
  t.comment(
    `${RUNS} runs, ${steps} node syncs checked (${changes} changed the table, ${failures} failed by injection, ${recoveries} recovered) in ${Math.round(performance.now() - started)} ms`,
  );
  t.ok(steps > scale(1000, 150), 'thousands of checked steps (a tenth in the unit tier)');
});

t.test('examples: the edits that invalidate each kind of memo', async (t) => {
  const pod = (key: [string, string], labels: Record<string, string>, node: string, ip: string): Op => ({
    op: 'pod',
    key,
    spec: { labels, node, ip, ip6: undefined, phase: 'Running', hostNetwork: false, ports: [] } as PodSpec,
  });
  const local = pod(['x', 'p0'], { app: 'a' }, 'n1', '10.244.1.10');
  const peerPod = pod(['y', 'p1'], { app: 'b' }, 'n2', '10.244.2.10');
  const fromTeam = (team: string): Op => ({
    op: 'policy',
    key: ['x', 'q0'],
    spec: { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team } } }] }] },
  });
  // A namespace relabel moves the members of a namespace-selector peer (semantics point 6).
  await run([
    [local, peerPod, fromTeam('blue')],
    [{ op: 'ns', name: 'y', labels: { team: 'blue' } }],
    [{ op: 'ns', name: 'y', labels: {} }],
  ]);
  t.pass('namespace relabel');
  // A failed sync leaves the desired cache ahead of the kernel; verify then trusts the last complete
  // program again, and the next diff must start from that, not from the cache's newer elements.
  const fromApps: Op = {
    op: 'policy',
    key: ['x', 'q0'],
    spec: {
      podSelector: {},
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'b' } } }] }],
    },
  };
  await run([
    [local, peerPod, fromApps],
    [
      { op: 'fail', node: 0, times: 2 },
      { op: 'ip', which: 1, ip: '10.244.2.11' },
    ],
    [{ op: 'verify', node: 0 }, pod(['y', 'p2'], { app: 'b' }, 'n2', '10.244.2.12')],
  ]);
  t.pass('verify after a failed sync');
  // A named-port peer set depends on the members' ports too, not only on which pods they are.
  const web = (port: number): Op => ({
    op: 'pod',
    key: ['y', 'p1'],
    spec: {
      ...(peerPod as Op & { op: 'pod' }).spec,
      ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
    },
  });
  const toHttp: Op = {
    op: 'policy',
    key: ['x', 'q1'],
    spec: { podSelector: {}, egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }] },
  };
  await run([[local, web(80), toHttp], [web(8080)]]);
  t.pass('named port moved');
});
