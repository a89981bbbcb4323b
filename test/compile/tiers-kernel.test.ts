// Kernel tests of the ClusterNetworkPolicy tier chains (compile/tiers.ts, semantics 20-24) in throwaway
// network namespaces: the `tollgate compile` text of a table with tiers loads with `nft -f` and equals the
// netlink programming; step-by-step diffs through adds and deletes of ClusterNetworkPolicies converge to
// a fresh full program with no drift. Packet-level proof: test/scenarios/cnp through `tollgate lab run`.
import { join } from 'node:path';
import t from 'tap';
import { desiredState } from '../../src/compile/desired.ts';
import { Planner } from '../../src/policy/plan.ts';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';
import { compileText, enforcer, listTable, makeNs, nftFile } from './_kernel.ts';

const dir = join(import.meta.dirname, '..', 'scenarios', 'cnp');
const files = ['c-admin-priority', 'c-baseline-gress', 'c-admin-named-ports', 'c-labels-and-deletion'];

function steps(name: string, node: number) {
  const scenario = loadScenario(join(dir, `${name}.yaml`));
  const world = new World(scenario);
  const nodeName = world.node(node).name;
  return {
    nodeName,
    steps: scenario.steps.map((s, step) => {
      world.applyStep(s);
      const objects = structuredClone(world.objects());
      const desired = desiredState(new Planner(world.state()).planNode(nodeName));
      return { step, kind: s.kind, objects, desired };
    }),
  };
}

for (const name of files) {
  t.test(`${name}: nft -f of compile == netlink, diffs converge, no drift`, async (t) => {
    const { nodeName, steps: all } = steps(name, 1);
    const changing = all.filter((s) => s.kind !== 'expect' && s.kind !== 'matrix');
    t.ok(
      changing.some((s) => [...s.desired.chains.keys()].some((c) => /^t[ie]-/.test(c))),
      'some step has tier chains (the test exercises them)',
    );
    const inc = enforcer(t, makeNs(t, 'i'), nodeName);
    const fresh = enforcer(t, makeNs(t, 'f'), nodeName);
    for (const s of changing) {
      await inc.sync(s.objects);
      await fresh.sync(s.objects, true);
      t.same(listTable(inc.ns), listTable(fresh.ns), `step ${s.step}: incremental == full`);
      t.same(await inc.verify(), { drift: false, repaired: false }, `step ${s.step}: no drift`);
      const a = makeNs(t, 'a');
      const loaded = nftFile(a, compileText(join(dir, `${name}.yaml`), 1, s.step));
      t.equal(loaded.status, 0, `step ${s.step}: nft -f accepts the compile output ${loaded.stderr}`);
      t.same(listTable(a), listTable(fresh.ns), `step ${s.step}: compile text == netlink program`);
    }
  });
}

t.test('drop reports on: a Deny rule logs from its own chain', async (t) => {
  const { nodeName, steps: all } = steps('c-admin-priority', 1);
  const s = all.find((x) => x.desired.tierDenies !== undefined && x.desired.tierDenies.size > 0);
  if (s === undefined) return t.fail('c-admin-priority has a Deny rule');
  const e = enforcer(t, makeNs(t, 'r'), nodeName, ['--drop-reports=on']);
  await e.sync(s.objects);
  const table = JSON.stringify(listTable(e.ns));
  for (const chain of s.desired.tierDenies!.keys())
    t.match(table, `tg:${chain.startsWith('in-') ? 'i' : 'e'}:d:${chain}`, `${chain} reports`);
  t.same(await e.verify(), { drift: false, repaired: false });
});
