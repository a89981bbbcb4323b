// Kernel tests of the compiled table in throwaway network namespaces: `tollgate compile` text loaded with
// `nft -f` equals the netlink programming of the same state; step-by-step diffs converge to the table a
// fresh full program gives; verify() finds and repairs drift made behind the reconciler's back; a diff
// the kernel rejects converges in the same sync, programmed again from what the kernel lists.
import t from 'tap';
import { elementTexts } from '../../src/compile/verify.ts';
import { compileText, enforcer, listTable, makeNs, nft, nftFile, nftOk, rawListing } from './_kernel.ts';
import { changingSteps, podChain, removedElement, scenarioFile, scenarioStates } from './_scenarios.ts';

const compared: Array<[string, Array<number | 'last'>]> = [
  ['seed-db-only-from-api', ['last']],
  ['u19-egress-named-port', ['last']],
  ['u34-egress-cidr', ['last']],
  ['seed-default-deny-dns-cassandra', [2, 6, 10, 'last']],
];

for (const [name, which] of compared) {
  for (const node of [1, 2]) {
    const { nodeName, steps } = scenarioStates(name, node);
    // Step numbers are the corpus file's; a shorter stand-in (no ../shared) keeps those it has.
    const picked = which.map((s) => (s === 'last' ? steps.length - 1 : s)).filter((s) => s < steps.length);
    for (const step of picked) {
      t.test(`${name} node ${node} step ${step}: nft -f of compile == netlink, no drift`, async (t) => {
        const a = makeNs(t, 'a');
        const b = makeNs(t, 'b');
        const loaded = nftFile(a, compileText(scenarioFile(name), node, step));
        t.equal(loaded.status, 0, `nft -f accepts the compile output ${loaded.stderr}`);
        const e = enforcer(t, b, nodeName);
        t.equal((await e.sync(steps[step]!.objects, true)).kind, 'full');
        const viaNft = listTable(a);
        t.ok(viaNft && viaNft.length > 10, 'the table is not trivially empty');
        t.same(listTable(b), viaNft, 'identical nft -j list table inet tollgate');
        t.same(
          await e.verify(),
          { drift: false, repaired: false },
          'the read-back matches the expected state',
        );
      });
    }
  }
}

const sequences = [
  'seed-db-only-from-api',
  'seed-default-deny-dns-cassandra',
  'u20-policy-update',
  'u33-delete-policy',
];

for (const name of sequences) {
  for (const node of [1, 2]) {
    t.test(`${name} node ${node}: step-by-step diffs converge to a fresh full program`, async (t) => {
      const { nodeName, steps } = scenarioStates(name, node);
      const inc = enforcer(t, makeNs(t, 'i'), nodeName);
      const fresh = enforcer(t, makeNs(t, 'f'), nodeName);
      let first = true;
      for (const s of changingSteps(steps)) {
        const r = await inc.sync(s.objects);
        t.equal(r.kind === 'full', first, `step ${s.step}: ${first ? 'full first' : `then ${r.kind}`}`);
        first = false;
        await fresh.sync(s.objects, true);
        t.same(listTable(inc.ns), listTable(fresh.ns), `step ${s.step}: incremental == full`);
        t.same(await inc.verify(), { drift: false, repaired: false }, `step ${s.step}: no drift`);
      }
    });
  }
}

// Drift on the node that holds prod/db (its ingress chain and sets).
const db = scenarioStates('seed-db-only-from-api', 1);
const dbLast = db.steps[db.steps.length - 1]!;
const chain = podChain(dbLast.desired);
const local4Set = dbLast.desired.sets.get('local4');
const local4 = local4Set ? elementTexts(local4Set) : [];

t.test('verify on an untouched table reports no drift and commits nothing', async (t) => {
  const e = enforcer(t, makeNs(t, 'v'), db.nodeName);
  await e.sync(dbLast.objects);
  const before = rawListing(e.ns);
  t.same(await e.verify(), { drift: false, repaired: false });
  t.same(await e.verify(), { drift: false, repaired: false });
  t.equal(rawListing(e.ns), before, 'same handles: no batch was sent');
});

const drifts: Array<[string, string[][], RegExp]> = [
  [
    'delete element',
    [['delete', 'element', 'inet', 'tollgate', 'local4', `{ ${local4[0]} }`]],
    /- add element inet tollgate local4/,
  ],
  [
    'add element',
    [['add', 'element', 'inet', 'tollgate', 'local4', '{ 10.244.1.250 }']],
    /\+ add element inet tollgate local4 \{ 10\.244\.1\.250 \}/,
  ],
  [
    'accept rule at the top of a pod chain',
    [['insert', 'rule', 'inet', 'tollgate', `${chain}`, 'accept']],
    /\+ add rule inet tollgate \S+ accept/,
  ],
  [
    'flush chain',
    [['flush', 'chain', 'inet', 'tollgate', `${chain}`]],
    /missing, 0 unexpected: - add rule inet tollgate/,
  ],
  [
    'flush set',
    [['flush', 'set', 'inet', 'tollgate', 'local4']],
    /missing, 0 unexpected: - add element inet tollgate local4/,
  ],
  [
    'foreign chain and set',
    [
      ['add', 'chain', 'inet', 'tollgate', 'intruder'],
      ['add', 'set', 'inet', 'tollgate', 'x', '{ type ipv4_addr; }'],
    ],
    /0 missing, 2 unexpected/,
  ],
  [
    'rule order',
    [
      ['add', 'rule', 'inet', 'tollgate', 'forward', 'ct', 'state', 'established,related', 'accept'],
      ['delete', 'rule', 'inet', 'tollgate', 'forward', 'handle', 'FIRST'],
    ],
    /rules in a different order/,
  ],
  ['delete table', [['delete', 'table', 'inet', 'tollgate']], /^table missing$/],
];

for (const [what, commands, detail] of drifts) {
  t.test(`verify detects and repairs drift: ${what}`, async (t) => {
    t.ok(chain && local4.length > 0, 'the node has a pod chain and local pods');
    const e = enforcer(t, makeNs(t, 'd'), db.nodeName);
    await e.sync(dbLast.objects);
    const good = listTable(e.ns);
    for (const c of commands) {
      const args = [...c];
      if (args.at(-1) === 'FIRST') args[args.length - 1] = firstRuleHandle(e.ns, 'forward');
      nftOk(e.ns, ...args);
    }
    t.notSame(listTable(e.ns), good, 'the table really drifted');
    t.match(await e.verify(), { drift: true, repaired: true, detail });
    t.same(listTable(e.ns), good, 'the listing equals the expected table again');
    t.same(await e.verify(), { drift: false, repaired: false }, 'and verifies clean');
  });
}

function firstRuleHandle(ns: string, chainName: string): string {
  const r = nft(ns, '-j', '-a', 'list', 'chain', 'inet', 'tollgate', chainName);
  const listing = JSON.parse(r.stdout) as { nftables: Array<{ rule?: { handle: number } }> };
  const rule = listing.nftables.find((x) => x.rule)?.rule;
  if (!rule) throw new Error(`no rule in chain ${chainName}: ${r.stderr}`);
  return String(rule.handle);
}

/** The first pair of consecutive changing steps (on any node of the scenario) that `pick` accepts. */
function findTransition<T>(
  name: string,
  pick: (
    prev: ReturnType<typeof changingSteps>[number],
    next: ReturnType<typeof changingSteps>[number],
  ) => T | undefined,
) {
  for (const node of [1, 2]) {
    const { nodeName, steps } = scenarioStates(name, node);
    const changing = changingSteps(steps);
    for (let i = 1; i < changing.length; i++) {
      const found = pick(changing[i - 1]!, changing[i]!);
      if (found !== undefined) return { node, nodeName, prev: changing[i - 1]!, next: changing[i]!, found };
    }
  }
  throw new Error(`${name}: no transition fits`);
}

t.test(
  'a diff the kernel rejects (element already gone) converges from the kernel in the same sync',
  async (t) => {
    const { node, nodeName, prev, next, found } = findTransition('seed-db-only-from-api', (p, n) =>
      removedElement(p.desired, n.desired),
    );
    const e = enforcer(t, makeNs(t, 'r'), nodeName);
    await e.sync(prev.objects);
    nftOk(e.ns, 'delete', 'element', 'inet', 'tollgate', found.set, `{ ${found.element} }`);
    // The diff is rejected (nothing applied), and the reconciler programs again from what the kernel lists.
    const r = await e.sync(next.objects);
    t.match(
      r.recovered,
      new RegExp(`DELSETELEM for elements of (set|map) inet tollgate ${found.set} failed: ENOENT`),
    );
    t.equal(r.from, 'kernel');
    t.same(await e.verify(), { drift: false, repaired: false }, 'the table is what was programmed');
    const ref = makeNs(t, 'ref');
    t.equal(nftFile(ref, compileText(scenarioFile('seed-db-only-from-api'), node, next.step)).status, 0);
    t.same(listTable(e.ns), listTable(ref), 'equal to nft -f of the compile output');
  },
);

t.test(
  'a diff the kernel rejects (chain still referenced) converges from the kernel in the same sync',
  async (t) => {
    const { nodeName, prev, next, found } = findTransition('seed-db-only-from-api', (p, n) =>
      [...p.desired.chains.keys()].find((c) => !n.desired.chains.has(c)),
    );
    const e = enforcer(t, makeNs(t, 'c'), nodeName);
    await e.sync(prev.objects);
    // Someone else jumps to the chain the diff is about to delete.
    nftOk(e.ns, 'add', 'rule', 'inet', 'tollgate', 'forward', 'jump', found);
    const r = await e.sync(next.objects);
    t.match(r.recovered, new RegExp(`DELCHAIN for chain inet tollgate ${found} failed: EBUSY`));
    t.equal(r.from, 'kernel');
    t.notMatch(rawListing(e.ns), new RegExp(`"jump": \\{"target": "${found}"`), 'the foreign rule is gone');
    t.same(await e.verify(), { drift: false, repaired: false });
    t.equal((await e.sync(next.objects)).kind, 'none', 'and the record is trusted again');
  },
);
