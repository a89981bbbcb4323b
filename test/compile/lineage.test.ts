// A pod chain rebuilt for a new plan takes over the sets of the chain its pods leave (DesiredCache.lineage):
// a policy that adds one port to a group's allows rewrites that port's elements, not the group's sets.
import t from 'tap';
import { DesiredCache, type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { diffParts } from '../../src/compile/diff.ts';
import { compareTable, expectedRuleset } from '../../src/compile/verify.ts';
import { Planner } from '../../src/policy/plan.ts';
import { pod, policy, state } from '../policy/builders.ts';

// Ten peers (app=peer, addresses apart so that none merge) and two pods of app=web; every policy
// selects the web pods.
const peers = Array.from({ length: 10 }, (_, i) =>
  pod(
    `x/peer${i}`,
    { app: 'peer' },
    { node: 'n2', ip: `10.244.2.${100 + 2 * i}`, ip6: `fd00:10:244:2::${100 + 2 * i}` },
  ),
);
const web = [pod('x/web0', { app: 'web' }), pod('x/web1', { app: 'web' })];
const allow = (name: string, port: number) =>
  policy(`x/${name}`, {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'peer' } } }], ports: [{ port }] }],
  });

const build = (pods: unknown[], policies: unknown[], cache: DesiredCache): DesiredState =>
  desiredState(new Planner(state({ pods, policies } as Parameters<typeof state>[0])).planNode('n1'), cache);

/** The chain the first web pod's ingress jumps to. */
const chainOf = (s: DesiredState, key = 'x/web0') => s.podChains.get(key)!.ingress!;

t.test('a policy adding a port to a group: renamed chain, its sets patched in place', async (t) => {
  const cache = new DesiredCache();
  const before = build([...peers, ...web], [allow('a', 80)], cache);
  const after = build([...peers, ...web], [allow('a', 80), allow('b', 443)], cache);
  t.not(chainOf(after), chainOf(before), 'the plan changed, so did the chain');
  const d = diffParts(before, after);
  t.equal(d.counts.setsAdded, 0, 'no set is new');
  t.equal(d.counts.setsDeleted, 0, 'no set is gone');
  // 10 peers on the new port in each family, plus the two pods moving from the old chain to the new
  // one in the dispatch maps (one address per family each: 4 out, 4 in).
  t.equal(d.counts.elementsAdded, 2 * 10 + 4, 'only the new port elements and the moved pods are added');
  t.equal(d.counts.elementsDeleted, 4, 'and only the moved pods leave');
  t.same(
    d.elements.map((e) => e.set.name).filter((n) => n.endsWith('-c4')),
    [`${chainOf(before)}-c4`],
    'the peer.proto.port set keeps the old chain name',
  );
  // Without the history the same change writes the chain's sets whole.
  const fresh = diffParts(
    before,
    build([...peers, ...web], [allow('a', 80), allow('b', 443)], new DesiredCache()),
  );
  t.equal(fresh.counts.elementsAdded, 2 * 20 + 4, 'a fresh build writes them whole');
  // And the table the history names is the fresh build's, but for those names.
  const table = expectedRuleset(after);
  t.ok(
    compareTable(build([...peers, ...web], [allow('a', 80), allow('b', 443)], new DesiredCache()), table)
      .equal,
  );
});

t.test('a chain coming back while its old sets live elsewhere takes a name of its own', async (t) => {
  const cache = new DesiredCache();
  const one = build([...peers, ...web], [allow('a', 80)], cache);
  const x = chainOf(one);
  // web0 and web1 move to chain Y (policy b), which takes over X's sets ...
  const two = build([...peers, ...web], [allow('a', 80), allow('b', 443)], cache);
  t.ok(two.sets.has(`${x}-c4`), 'Y holds the sets named after X');
  // ... then a new web pod that only policy a selects (app=web, tier=old) brings chain X back.
  const old = pod('x/web2', { app: 'web', tier: 'old' });
  const b = policy('x/b', {
    podSelector: {
      matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }],
      matchLabels: { app: 'web' },
    },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'peer' } } }], ports: [{ port: 443 }] }],
  });
  const three = build([...peers, ...web, old], [allow('a', 80), b], cache);
  t.equal(chainOf(three, 'x/web2'), x, 'chain X is back');
  t.equal(chainOf(three), chainOf(two), 'Y stays');
  const names = [...three.sets.keys()];
  t.equal(new Set(names).size, names.length);
  t.ok(three.sets.has(`${x}-2-c4`), 'X gets a base of its own');
  t.ok(three.sets.has(`${x}-c4`), 'Y keeps its sets');
  t.doesNotThrow(() => diffParts(two, three), 'no set changes its definition');
  const fresh = build([...peers, ...web, old], [allow('a', 80), b], new DesiredCache());
  t.ok(compareTable(fresh, expectedRuleset(three)).equal, 'the same table as a fresh build, but for names');
  // Every pod chain's sets are its own: no set is named in two pod chains.
  const owners = new Map<string, string>();
  for (const c of three.chains.values())
    for (const r of c.rules)
      if (r.kind === 'lookup' || r.kind === 'dispatch') {
        const set = r.kind === 'lookup' ? r.set : r.map;
        if (c.base) continue;
        t.notOk(owners.has(set) && owners.get(set) !== c.name, `${set} is ${c.name}'s only`);
        owners.set(set, c.name);
      }
});
