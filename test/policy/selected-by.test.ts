// ClusterIndex.policiesSelecting is cached per pod, and a change to the policies drops only the entries
// of the namespaces whose enforced policies changed (a policy added to one namespace no longer matches
// every pod of the node against every policy again). Property: after any run of policy additions,
// removals and edits, every pod's selection equals a fresh index's, in the same order.
import fc from 'fast-check';
import t from 'tap';
import { ClusterIndex } from '../../src/policy/index.ts';
import { normalizePolicy } from '../../src/policy/normalize.ts';
import type { ClusterState, Policy } from '../../src/policy/types.ts';
import { deepFreeze, pod, policy, state } from './builders.ts';

const base = state({
  pods: ['x', 'y', 'z'].flatMap((ns) =>
    ['a', 'b', 'c'].map((app) => pod(`${ns}/${app}`, { app, tier: app === 'c' ? 'db' : 'web' })),
  ),
});

const selectors = [
  {},
  { matchLabels: { app: 'a' } },
  { matchLabels: { tier: 'web' } },
  { matchLabels: { app: 'c' } },
];
const edit = fc.record({
  ns: fc.constantFrom('x', 'y', 'z'),
  name: fc.constantFrom('p1', 'p2', 'p3'),
  selector: fc.integer({ min: 0, max: selectors.length - 1 }),
  remove: fc.boolean(),
  audit: fc.boolean(),
});

const normalized = (ns: string, name: string, selector: number, audit: boolean): Policy =>
  deepFreeze(
    normalizePolicy({
      ...policy(`${ns}/${name}`, { podSelector: selectors[selector], policyTypes: ['Ingress'] }),
      ...(audit ? { metadata: { name, namespace: ns, annotations: { 'tollgate.dev/mode': 'audit' } } } : {}),
    }),
  );

t.test('policy selections after policy changes equal a fresh index', async (t) => {
  let steps = 0;
  fc.assert(
    fc.property(fc.array(edit, { minLength: 1, maxLength: 12 }), (edits) => {
      const byKey = new Map<string, Policy>();
      const index = new ClusterIndex(base);
      const ask = () => base.pods.map((p) => index.policiesSelecting(p));
      ask(); // every pod cached before the first change
      for (const e of edits) {
        const key = `${e.ns}/${e.name}`;
        if (e.remove) byKey.delete(key);
        else byKey.set(key, normalized(e.ns, e.name, e.selector, e.audit));
        const next: ClusterState = { ...base, policies: [...byKey.values()] };
        index.update(next, []);
        const fresh = new ClusterIndex(next);
        const got = ask();
        const want = base.pods.map((p) => fresh.policiesSelecting(p));
        steps++;
        if (
          JSON.stringify(got.map((l) => l.map((p) => p.key ?? `${p.namespace}/${p.name}`))) !==
          JSON.stringify(want.map((l) => l.map((p) => p.key ?? `${p.namespace}/${p.name}`)))
        )
          return false;
        if (
          !got.every(
            (l, i) =>
              l.length === want[i]!.length &&
              l.every((p, j) => p === byKey.get(`${want[i]![j]!.namespace}/${want[i]![j]!.name}`)),
          )
        )
          return false;
      }
      return true;
    }),
    { numRuns: 300, seed: 20261202 },
  );
  t.ok(steps > 300, `${steps} policy changes compared`);
});

t.test("a policy added to one namespace keeps the other namespaces' cached selections", async (t) => {
  const one = normalized('x', 'p1', 0, false);
  const index = new ClusterIndex({ ...base, policies: [one] });
  const before = base.pods.map((p) => index.policiesSelecting(p));
  const two = normalized('y', 'p2', 0, false);
  index.update({ ...base, policies: [one, two] }, []);
  const after = base.pods.map((p) => index.policiesSelecting(p));
  base.pods.forEach((p, i) => {
    if (p.namespace === 'y') t.not(after[i], before[i], `${p.key}: matched again`);
    else t.equal(after[i], before[i], `${p.key}: the same cached list`);
  });
});
