// ClusterIndex's pod peers are made of label groups (pods of one namespace sharing one labels object,
// issue 14): a new peer costs its groups, and what the planner and compiler rely on still holds — the
// members and their sorted IPv4 keys equal a fresh index's, and a member replaced in place keeps its
// position (the planner compares member lists position by position to keep a set and its chains).
import fc from 'fast-check';
import t from 'tap';
import { ClusterIndex } from '../../src/policy/index.ts';
import { Memo } from '../../src/policy/memo.ts';
import { normalizeNamespace, normalizeNode, normalizePod } from '../../src/policy/normalize.ts';
import type { ClusterState, Peer, Pod } from '../../src/policy/types.ts';
import { deepFreeze, nodes, pod } from './builders.ts';

const memo = new Memo();
const ns = (name: string, labels: Record<string, string> = {}) =>
  normalizeNamespace({ metadata: { name, labels } }, memo);
// Replicas share their labels object through the memo, so they make one group.
const replica = (key: string, labels: Record<string, string>, ip: string) => {
  const raw = pod(key, labels, { ip });
  return normalizePod({ ...raw, status: { ...raw.status, podIPs: [{ ip }] } }, memo); // IPv4 only
};

// The same namespaces and nodes in every state, as the agent keeps them while they do not change (a
// namespace change recomputes the peers that select namespaces).
const namespaces = new Map([ns('x', { team: 'a' }), ns('y', { team: 'a' }), ns('z')].map((n) => [n.name, n]));
const nodeList = nodes.map((n) => normalizeNode(n));
const clusterState = (pods: readonly Pod[]): ClusterState =>
  deepFreeze({ namespaces, nodes: nodeList, pods, policies: [] });

const tierPeer = (tier: string): Peer & { kind: 'pods' } => ({
  kind: 'pods',
  namespaces: {
    kind: 'selector',
    selector: { matchLabels: { team: 'a' }, matchExpressions: [] },
  },
  pods: { matchLabels: { tier }, matchExpressions: [] },
});

const ips = (pods: readonly Pod[]) => pods.map((p) => p.ips.map((a) => a.value).join(',')).sort();

t.test('a new peer over several groups: its members and sorted IPv4 keys equal a fresh index', async (t) => {
  const pods = [
    replica('x/a1', { app: 'a', tier: 'web' }, '10.244.1.30'),
    replica('x/a2', { app: 'a', tier: 'web' }, '10.244.1.10'),
    replica('y/b1', { app: 'b', tier: 'web' }, '10.244.1.20'),
    replica('y/b2', { app: 'b', tier: 'web' }, '10.244.1.40'),
    replica('z/c1', { app: 'c', tier: 'web' }, '10.244.1.50'), // namespace z: not selected
    replica('x/d1', { app: 'd', tier: 'db' }, '10.244.1.15'),
  ];
  const index = new ClusterIndex(clusterState(pods), memo);
  const web = tierPeer('web');
  t.same(ips(index.podPeerMembers(web, 'x')), ips(pods.slice(0, 4)));
  const v4 = (addresses: string[]) =>
    addresses.map((a) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0));
  t.same(index.podPeerV4(web, 'x'), v4(['10.244.1.10', '10.244.1.20', '10.244.1.30', '10.244.1.40']));

  // A pod joining a group the peer already holds, and a new group: the kept keys follow.
  const next = [...pods, replica('x/a3', { app: 'a', tier: 'web' }, '10.244.1.5')];
  next.push(replica('y/e1', { app: 'e', tier: 'web' }, '10.244.1.60'));
  index.update(clusterState(next));
  const fresh = new ClusterIndex(clusterState(next), new Memo());
  t.same(index.podPeerV4(web, 'x'), fresh.podPeerV4(web, 'x'));
  t.same(ips(index.podPeerMembers(web, 'x')), ips(fresh.podPeerMembers(web, 'x')));

  // Every pod of a group gone: the group goes, and the peer with it.
  const fewer = next.filter((p) => !p.key.startsWith('x/a'));
  index.update(clusterState(fewer));
  t.same(index.podPeerV4(web, 'x'), new ClusterIndex(clusterState(fewer), new Memo()).podPeerV4(web, 'x'));
});

t.test('a member relabelled into another group of the same peer keeps its place in the list', async (t) => {
  const pods = [
    replica('x/a1', { app: 'a', tier: 'web' }, '10.244.1.10'),
    replica('x/a2', { app: 'a', tier: 'web' }, '10.244.1.11'),
    replica('y/b1', { app: 'b', tier: 'web' }, '10.244.1.12'),
  ];
  const index = new ClusterIndex(clusterState(pods), memo);
  const web = tierPeer('web');
  const before = index.podPeerMembers(web, 'x');
  const beforeKeys = before.map((p) => p.key);
  // x/a1 leaves the app=a group for a group of its own that the peer also selects.
  const moved = replica('x/a1', { app: 'a', tier: 'web', canary: 'yes' }, '10.244.1.10');
  const next = [moved, pods[1]!, pods[2]!];
  index.update(clusterState(next), [[moved.key, moved]]);
  const after = index.podPeerMembers(web, 'x');
  t.not(after, before, 'a new list: a member changed');
  t.same(
    after.map((p) => p.key),
    beforeKeys,
    'same members in the same positions (the planner keeps the set)',
  );
  t.equal(after[beforeKeys.indexOf('x/a1')], moved);
  t.same(
    before.map((p) => p.key),
    beforeKeys,
    'the list handed out before is not changed',
  );
});

t.test('IPv4 keys come back once the member with an IPv6 address leaves', async (t) => {
  const v4Only = replica('x/a1', { app: 'a', tier: 'web' }, '10.244.1.10');
  const dual = normalizePod(pod('x/a2', { app: 'a', tier: 'web' }, { ip: '10.244.1.11' }), memo);
  const index = new ClusterIndex(clusterState([v4Only, dual]), memo);
  const web = tierPeer('web');
  t.equal(index.podPeerV4(web, 'x'), undefined, 'a member has an IPv6 address: the general path');
  index.update(clusterState([v4Only]), [[dual.key, undefined]]);
  t.same(index.podPeerV4(web, 'x'), [167772160 + 244 * 65536 + 256 + 10]);
});

t.test(
  'keys kept through incremental changes equal a fresh index for a peer used only afterwards',
  async (t) => {
    // The groups' sorted keys are built by the full update and from then on patched per change (a new group
    // starts empty and is patched too): a peer first asked for after any run of changes must see exactly
    // the keys of a fresh index of the same pods.
    const labelSets: Record<string, string>[] = [
      { app: 'a', tier: 'web' },
      { app: 'b', tier: 'web' },
      { app: 'c', tier: 'db' },
      { app: 'd', tier: 'web', canary: 'yes' },
    ];
    const op = fc.record({
      slot: fc.integer({ min: 0, max: 11 }),
      kind: fc.constantFrom('set', 'remove'),
      labels: fc.integer({ min: 0, max: labelSets.length - 1 }),
      ns: fc.constantFrom('x', 'y', 'z'),
      host: fc.integer({ min: 1, max: 40 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.integer({ min: 0, max: 29 }), (ops, askAt) => {
        const m = new Memo();
        const make = (slot: number, labels: number, namespace: string, host: number) => {
          const raw = pod(`${namespace}/p${slot}`, labelSets[labels]!, { ip: `10.244.2.${host}` });
          return normalizePod({ ...raw, status: { ...raw.status, podIPs: [{ ip: raw.status.podIP }] } }, m);
        };
        const bySlot = new Map<number, Pod>();
        for (let s = 0; s < 4; s++) bySlot.set(s, make(s, s % labelSets.length, 'x', 100 + s));
        const index = new ClusterIndex(clusterState([...bySlot.values()]), m);
        const early = tierPeer('web');
        ops.forEach((o, i) => {
          // One peer asked for midway: its keys are patched from then on, the other's built at the end.
          if (i === askAt) index.podPeerV4(early, 'x');
          const old = bySlot.get(o.slot);
          const changes: [string, Pod | undefined][] = [];
          if (old !== undefined) changes.push([old.key, undefined]);
          if (o.kind === 'set') {
            const next = make(o.slot, o.labels, o.ns, o.host);
            bySlot.set(o.slot, next);
            if (old?.key === next.key) changes.length = 0;
            changes.push([next.key, next]);
          } else bySlot.delete(o.slot);
          index.update(clusterState([...bySlot.values()]), changes);
        });
        const fresh = new ClusterIndex(clusterState([...bySlot.values()]), new Memo());
        for (const peer of [early, tierPeer('web'), tierPeer('db')])
          for (const from of ['x', 'z']) {
            const got = index.podPeerV4(peer, from);
            const want = fresh.podPeerV4(peer, from);
            if (JSON.stringify(got) !== JSON.stringify(want))
              throw new Error(`peer ${JSON.stringify(peer.pods)} from ${from}: ${got} != ${want}`);
          }
      }),
      { numRuns: 300 },
    );
    t.pass('300 random runs of changes');
  },
);

t.test('a peer over many groups of shuffled addresses has every key once, in order', async (t) => {
  // 3,000 pods in 60 groups over 10.244.3.0-10.244.14.255, addresses shuffled between the groups: the
  // peer's keys span less than four times their number, the case mergeSorted counts.
  const addresses = Array.from({ length: 3000 }, (_, i) => 0x0af40300 + i + Math.floor(i / 250) * 6);
  for (let i = addresses.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [addresses[i], addresses[j]] = [addresses[j]!, addresses[i]!];
  }
  const text = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  const pods = addresses.map((a, i) =>
    replica(`${i % 2 === 0 ? 'x' : 'y'}/d${i}`, { app: `g${i % 30}`, tier: 'web' }, text(a)),
  );
  const index = new ClusterIndex(clusterState(pods), memo);
  const want = [...addresses].sort((a, b) => a - b);
  t.same(index.podPeerV4(tierPeer('web'), 'x'), want);
  // And kept up to date from there: one member leaves, one joins.
  const gone = pods[5]!;
  const joined = replica('x/new', { app: 'g1', tier: 'web' }, '10.244.20.1');
  index.update(clusterState([...pods.filter((p) => p !== gone), joined]), [
    [gone.key, undefined],
    [joined.key, joined],
  ]);
  const next = [...want.filter((v) => v !== addresses[5]), 0x0af41401].sort((a, b) => a - b);
  t.same(index.podPeerV4(tierPeer('web'), 'x'), next);
});

t.test("podPeerAddresses: the same object while the members' addresses are", async (t) => {
  const a1 = replica('x/a1', { app: 'a', tier: 'web' }, '10.244.4.10');
  const a2 = replica('x/a2', { app: 'a', tier: 'web' }, '10.244.4.11');
  let pods = [a1, a2];
  const index = new ClusterIndex(clusterState(pods), memo);
  const web = tierPeer('web');
  const step = (changed: Pod | undefined, key: string) => {
    pods = [...pods.filter((p) => p.key !== key), ...(changed ? [changed] : [])];
    index.update(clusterState(pods), [[key, changed]]);
    return index.podPeerAddresses(web, 'x');
  };
  const v0 = index.podPeerAddresses(web, 'x');
  t.equal(index.podPeerAddresses(web, 'x'), v0, 'asked twice');
  // Relabelled into another group of the peer, same address: the set stays.
  const moved = replica('x/a1', { app: 'a', tier: 'web', canary: 'yes' }, '10.244.4.10');
  t.equal(step(moved, 'x/a1'), v0, 'a member relabelled within the peer, same address');
  const v1 = step(replica('x/a1', { app: 'a', tier: 'web', canary: 'yes' }, '10.244.4.12'), 'x/a1');
  t.not(v1, v0, 'a member with a new address');
  const v2 = step(replica('y/b1', { app: 'b', tier: 'web' }, '10.244.4.20'), 'y/b1');
  t.not(v2, v1, 'a member joins');
  const v3 = step(undefined, 'x/a2');
  t.not(v3, v2, 'a member leaves');
  t.equal(
    step(replica('z/c1', { app: 'c', tier: 'web' }, '10.244.4.30'), 'z/c1'),
    v3,
    'a pod outside the peer',
  );
});
