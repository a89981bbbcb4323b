// Staged programming (compile/program.ts) on random plans and random batch caps: every state the batches
// leave in the FakeNft (read back after each batch) allows nothing that neither the old nor the new
// table allows, every batch fits the cap, and the end state equals a fresh full program. From our record
// (a diff), from the kernel's listing (a full replace, also of a table a crash left half-programmed).
import fc from 'fast-check';
import t from 'tap';
import { DesiredCache, type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { MIN_BATCH_BYTES, type ProgramFrom, programBatches } from '../../src/compile/program.ts';
import {
  canonicalLines,
  canonicalSetNames,
  compareTable,
  expectedRuleset,
} from '../../src/compile/verify.ts';
import { Chain, m, NamedSet, Rule, Transaction } from '../../src/nft/index.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import {
  normalizeNamespace,
  normalizeNode,
  normalizePod,
  normalizePolicy,
} from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { runs, scale, unitSeed } from '../_tier.ts';
import { FakeKernel } from '../agent/_fixtures.ts';
import { nodes } from '../policy/builders.ts';
import { type Packet, TableEvaluator } from './_eval.ts';

const NAMESPACES = ['x', 'y'];
const label = fc.constantFrom('a', 'b', 'c');
const cidr = fc
  .tuple(
    fc.constantFrom('10.244.1', '10.244.2', '203.0.113'),
    fc.integer({ min: 0, max: 255 }),
    fc.constantFrom(32, 30, 28, 26, 24),
  )
  .map(([net, host, len]) => `${net}.${host}/${len}`);
const peer = fc.oneof(
  fc.record({ podSelector: fc.record({ matchLabels: fc.record({ app: label }) }) }),
  fc.record({ namespaceSelector: fc.constant({}) }),
  fc.record({ ipBlock: fc.record({ cidr }) }),
  fc.record({ ipBlock: fc.record({ cidr: fc.constant('fd00:10:244:2::/64') }) }),
);
const port = fc.record(
  {
    protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'),
    port: fc.integer({ min: 80, max: 90 }),
    endPort: fc.constantFrom(91, 95),
  },
  { requiredKeys: ['port'] },
);
const rule = (dir: 'from' | 'to') =>
  fc.record(
    {
      [dir]: fc.array(peer, { minLength: 1, maxLength: 12 }),
      ports: fc.array(port, { minLength: 1, maxLength: 4 }),
    },
    { requiredKeys: [] },
  );
const policyArb = fc.record({
  ns: fc.constantFrom(...NAMESPACES),
  app: fc.option(label, { nil: undefined }),
  ingress: fc.option(fc.array(rule('from'), { maxLength: 3 }), { nil: undefined }),
  egress: fc.option(fc.array(rule('to'), { maxLength: 2 }), { nil: undefined }),
});
const podArb = fc.record({ ns: fc.constantFrom(...NAMESPACES), app: label, node: fc.constantFrom(1, 1, 2) });
const clusterArb = fc.record({
  pods: fc.array(podArb, { minLength: 1, maxLength: 8 }),
  policies: fc.array(policyArb, { maxLength: 5 }),
});
type ClusterInput = typeof clusterArb extends fc.Arbitrary<infer T> ? T : never;

function build(input: ClusterInput): ClusterState {
  return {
    namespaces: new Map(NAMESPACES.map((name) => [name, normalizeNamespace({ metadata: { name } })])),
    nodes: nodes.map(normalizeNode),
    pods: input.pods.map((p, i) =>
      normalizePod({
        metadata: { name: `p${i}`, namespace: p.ns, labels: { app: p.app } },
        spec: { nodeName: `n${p.node}`, containers: [{ ports: [] }] },
        status: {
          phase: 'Running',
          podIPs: [{ ip: `10.244.${p.node}.${10 + i}` }, { ip: `fd00:10:244:${p.node}::${10 + i}` }],
        },
      }),
    ),
    policies: input.policies.map((p, i) =>
      normalizePolicy({
        metadata: { name: `np${i}`, namespace: p.ns },
        spec: {
          podSelector: p.app ? { matchLabels: { app: p.app } } : {},
          policyTypes: [...(p.ingress ? ['Ingress'] : []), ...(p.egress ? ['Egress'] : [])],
          ...(p.ingress ? { ingress: p.ingress } : {}),
          ...(p.egress ? { egress: p.egress } : {}),
        },
      }),
    ),
  };
}

/** fuseUpTo 0: address classes wherever they are smaller than the fused set. */
const desired = (input: ClusterInput, fuseUpTo = 512, cache = new DesiredCache({ fuseUpTo })): DesiredState =>
  desiredState(new Planner(new ClusterIndex(build(input))).planNode('n1'), cache);

const v4 = (text: string) => text.split('.').reduce((n, x) => (n << 8n) | BigInt(Number(x)), 0n);
/** Pod addresses of both nodes, addresses at block boundaries, and outside hosts. */
const ADDRESSES: Packet['saddr'][] = [
  ...Array.from({ length: 8 }, (_, i) => v4(`10.244.1.${10 + i}`)),
  ...Array.from({ length: 8 }, (_, i) => v4(`10.244.2.${10 + i}`)),
  v4('10.244.1.0'),
  v4('10.244.1.200'),
  v4('10.244.2.3'),
  v4('203.0.113.7'),
  v4('203.0.113.64'),
  v4('198.51.100.1'),
];
const V6 = 0xfd000010024400010000000000000000n;
const ADDRESSES6 = [V6 + 10n, V6 + 11n, V6 + (1n << 64n) + 12n, V6 + 99n];

function packets(seed: number): Packet[] {
  const out: Packet[] = [];
  let x = seed >>> 0 || 1;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  for (let i = 0; i < 160; i++) {
    const six = rnd(6) === 0;
    const pool = six ? ADDRESSES6 : ADDRESSES;
    out.push({
      family: six ? 6 : 4,
      saddr: pool[rnd(pool.length)]!,
      daddr: pool[rnd(pool.length)]!,
      protocol: (['tcp', 'udp', 'sctp', 'icmp'] as const)[rnd(4)]!,
      dport: 78 + rnd(20),
    });
  }
  return out;
}

const show = (p: Packet) =>
  `${p.family} ${p.saddr.toString(16)} -> ${p.daddr.toString(16)} ${p.protocol}/${p.dport}`;

async function commitAll(
  fp: FakeKernel,
  from: ProgramFrom,
  next: DesiredState,
  cap: number,
  check: (fp: FakeKernel, batch: number) => Promise<void>,
  stopAfter = Number.POSITIVE_INFINITY,
) {
  const program = programBatches(from, next, { maxBatchBytes: cap });
  let i = 0;
  for (const tx of program.batches) {
    if (i >= stopAfter) break;
    const bytes = tx.encode().buf.length;
    if (bytes > cap)
      throw new Error(`batch ${i} of ${program.batches.length}: ${bytes} bytes over the cap of ${cap}`);
    await fp.commit(tx);
    await check(fp, i++);
  }
  return program;
}

t.test('every state between batches allows at most what old or new allows (property)', async (t) => {
  let staged = 0;
  let batches = 0;
  let checked = 0;
  let inherited = 0;
  await fc.assert(
    fc.asyncProperty(
      clusterArb,
      clusterArb,
      fc.integer({ min: MIN_BATCH_BYTES, max: 24_000 }),
      fc.constantFrom('programmed', 'kernel', 'crash'),
      fc.nat(),
      fc.constantFrom(0, 512),
      fc.constantFrom(0, 512),
      fc.boolean(),
      async (a, b, cap, mode, seed, fuseA, fuseB, shared) => {
        // shared: `next` is built with the cache that built `old`, as the agent builds its syncs, so
        // a new chain takes over the sets of the chain its pods leave (DesiredCache.lineage).
        const cache = new DesiredCache({ fuseUpTo: fuseA });
        const old = desired(a, fuseA, cache);
        const next = shared ? desired(b, fuseA, cache) : desired(b, fuseB);
        const fp = new FakeKernel();
        await commitAll(fp, { kernel: undefined }, old, cap, async () => {});
        const first = compareTable(old, await fp.readTable());
        if (!first.equal) throw new Error(`the first program is incomplete: ${first.detail}`);
        const sample = packets(seed);
        const oldEval = new TableEvaluator(await fp.readTable());
        const newEval = new TableEvaluator(expectedRuleset(next));
        const either = sample.map((p) => oldEval.allows(p) || newEval.allows(p));
        const check = async (f: FakeKernel, batch: number) => {
          const mid = new TableEvaluator(await f.readTable());
          sample.forEach((p, i) => {
            if (mid.allows(p) && !either[i])
              throw new Error(`after batch ${batch}: ${show(p)} allowed by neither`);
          });
          checked++;
        };
        if (mode === 'crash') {
          // A staged program stops half-way (the agent died); the next one starts from the listing.
          const full = programBatches({ programmed: old }, next, { maxBatchBytes: cap });
          await commitAll(fp, { programmed: old }, next, cap, check, seed % (full.batches.length + 1));
        }
        const from: ProgramFrom =
          mode === 'programmed' ? { programmed: old } : { kernel: await fp.readTable() };
        const program = await commitAll(fp, from, next, cap, check);
        if (program.staged) staged++;
        batches += program.batches.length;
        const end = compareTable(next, await fp.readTable());
        if (!end.equal) throw new Error(`end state differs from the program: ${end.detail}`);
        if (shared) {
          // Against a fresh program: the same objects and rules, and elements that allow the same. The
          // incremental path keeps an element and adds its neighbour beside it where a fresh build merges
          // the two (10.244.1.10 + .11 against 10.244.1.10/31), on purpose (see incremental.test.ts).
          const fresh = expectedRuleset(desired(b, fuseA));
          const kernel = await fp.readTable();
          if (kernel === undefined) throw new Error('the end state has no table');
          const objects = (r: typeof fresh) =>
            canonicalLines(r)
              .filter((l) => !l.startsWith('add element '))
              .join('\n');
          if (objects(kernel) !== objects(fresh))
            throw new Error(`end state's objects differ from a fresh program:\n${objects(kernel)}`);
          const freshEval = new TableEvaluator(fresh);
          const endEval = new TableEvaluator(kernel);
          for (const p of sample)
            if (freshEval.allows(p) !== endEval.allows(p))
              throw new Error(`end state and a fresh program disagree on ${show(p)}`);
          // Sets a new chain took over from the chain its pods left (named after that chain).
          inherited += canonicalSetNames(expectedRuleset(next)).size;
        }
      },
    ),
    { numRuns: runs(150, 30), ...unitSeed() },
  );
  t.ok(
    staged > scale(20, 150, 30),
    `${staged} of ${runs(150, 30)} programs were staged (${batches} batches, ${checked} states checked)`,
  );
  // The lineage itself has deterministic cases (lineage.test.ts); here it must show up over the full run.
  t.ok(
    inherited >= scale(1, 150, 30),
    `${inherited} sets programmed under the name of the chain they came from`,
  );
});

t.test('address classes enforce exactly what the fused sets do (property)', async (t) => {
  let classes = 0;
  let allowed = 0;
  fc.assert(
    fc.property(clusterArb, fc.nat(), (input, seed) => {
      const split = desired(input, 0);
      const fused = desired(input, Number.POSITIVE_INFINITY);
      if ([...split.sets.keys()].some((n) => n.endsWith('-m4'))) classes++;
      const a = new TableEvaluator(expectedRuleset(split));
      const b = new TableEvaluator(expectedRuleset(fused));
      for (const p of packets(seed)) {
        const v = a.allows(p);
        if (v !== b.allows(p)) throw new Error(`${show(p)}: classes ${v}, fused ${!v}`);
        if (v) allowed++;
      }
    }),
    { numRuns: runs(300, 30), ...unitSeed() },
  );
  t.ok(
    classes > scale(10, 300, 30),
    `${classes} of ${runs(300, 30)} tables had address classes (${allowed} allowed packets)`,
  );
});

t.test('a staged replace over a table with foreign objects and names it would use', async (t) => {
  const input: ClusterInput = {
    pods: [
      { ns: 'x', app: 'a', node: 1 },
      { ns: 'x', app: 'b', node: 1 },
    ],
    policies: [
      {
        ns: 'x',
        app: 'a',
        ingress: [
          { from: [{ ipBlock: { cidr: '203.0.113.0/24' } }], ports: [{ port: 80, protocol: 'TCP' }] },
        ],
        egress: undefined,
      },
    ],
  };
  const next = desired(input);
  const fp = new FakeKernel();
  await commitAll(
    fp,
    { kernel: undefined },
    desired({ pods: input.pods, policies: [] }),
    1 << 20,
    async () => {},
  );
  // Someone's base chain, and objects under the names a first staging copy would take.
  const tamper = new Transaction()
    .add(
      new Chain({
        family: 'inet',
        table: 'tollgate',
        name: 'sneaky',
        type: 'filter',
        hook: 'forward',
        priority: 5,
      }),
    )
    .add(new Rule({ family: 'inet', table: 'tollgate', chain: 'sneaky', exprs: [m.verdict('accept')] }))
    .add(new Chain({ family: 'inet', table: 'tollgate', name: 'forward.s1' }))
    .add(new NamedSet({ family: 'inet', table: 'tollgate', name: 'local4.s1', key: 'ipv4_addr' }));
  await fp.commit(tamper);
  const program = await commitAll(
    fp,
    { kernel: await fp.readTable() },
    next,
    MIN_BATCH_BYTES,
    async () => {},
  );
  t.ok(program.staged && program.batches.length > 2, `staged in ${program.batches.length} batches`);
  const end = await fp.readTable();
  t.equal(compareTable(next, end).detail, undefined, 'the end state is a fresh full program');
  t.same(
    end?.chains.filter((c) => c.isBase).map((c) => c.name),
    ['forward'],
    'only our base chain is hooked',
  );
});
