// Pods moving between chains in a staged diff (compile/program.ts): a dispatch map key that changes its
// verdict. Moves that do not fit the switch batch go through `drop`, never through a state without the key
// (an unlisted pod is not isolated) or with any other verdict; the end state is the new table. Root-free:
// the batches are committed to FakeNft and the map is read back after each one.
import t from 'tap';
import { BASE_CHAIN, type DesiredChain, type DesiredState } from '../../src/compile/desired.ts';
import { MIN_BATCH_BYTES, programBatches } from '../../src/compile/program.ts';
import { GroupElements } from '../../src/compile/runs.ts';
import { compareTable } from '../../src/compile/verify.ts';
import { FakeNft, type MapVerdict } from '../../src/nft/index.ts';

const PODS = 300;
const FIRST = 0x0af40100; // 10.244.1.0

const chain = (name: string, verdict: 'return' | 'drop'): DesiredChain => ({
  name,
  base: false,
  rules: [{ kind: 'final', verdict, counter: false, comment: undefined }],
  comment: name,
});

/** One base chain dispatching PODS isolated pods to the chain `target` gives each. */
function state(target: (pod: number) => string): DesiredState {
  const groups = Array.from({ length: PODS }, (_, i) => ({
    bounds: [FIRST + i, FIRST + i],
    tail: [],
    verdict: { kind: 'jump', chain: target(i) } as MapVerdict,
  }));
  return {
    chains: new Map([
      [
        BASE_CHAIN,
        {
          name: BASE_CHAIN,
          base: true,
          rules: [{ kind: 'dispatch', family: 4, field: 'saddr', map: 'egress4' }],
          comment: 'base',
        },
      ],
      ['eg-a', chain('eg-a', 'return')],
      ['eg-b', chain('eg-b', 'drop')],
    ]),
    sets: new Map([
      [
        'egress4',
        {
          name: 'egress4',
          key: ['ipv4_addr'],
          map: true,
          interval: false,
          comment: 'egress-isolated local pods',
          isolates: true,
          elements: new GroupElements(groups),
        },
      ],
    ]),
    podChains: new Map(),
  };
}

t.test('pods that move between chains pass through drop, never out of the map', async (t) => {
  const prev = state(() => 'eg-a');
  // Every other pod moves; the rest stay.
  const next = state((i) => (i % 2 === 0 ? 'eg-b' : 'eg-a'));
  const fake = new FakeNft();
  for (const tx of programBatches({ kernel: undefined }, prev).batches) await tx.run(fake);
  const program = programBatches({ programmed: prev }, next, { maxBatchBytes: MIN_BATCH_BYTES });
  t.ok(program.staged && program.batches.length > 2, `staged: ${program.batches.length} batches`);
  let dropping = 0;
  for (const [b, tx] of program.batches.entries()) {
    t.ok(tx.encode().buf.length <= MIN_BATCH_BYTES, `batch ${b} fits the cap`);
    await tx.run(fake);
    const map = (await fake.listRuleset()).sets.find((s) => s.name === 'egress4')!;
    const verdicts = new Map(map.elements.map((e) => [e.fields[0]!.from.readUInt32BE(0), e.data]));
    let bad: string | undefined;
    for (let i = 0; i < PODS && bad === undefined; i++) {
      const v = verdicts.get(FIRST + i) as MapVerdict | undefined;
      const allowed = i % 2 === 0 ? ['jump eg-a', 'jump eg-b', 'drop'] : ['jump eg-a'];
      const text =
        v === undefined ? 'missing' : v.kind === 'drop' ? 'drop' : `${v.kind} ${'chain' in v ? v.chain : ''}`;
      if (!allowed.includes(text)) bad = `pod ${i}: ${text}`;
      if (text === 'drop') dropping++;
    }
    t.equal(bad, undefined, `after batch ${b}: every pod dispatched to its old chain, its new one or drop`);
  }
  t.ok(dropping > 0, 'some moves went through drop (they do not fit one switch batch)');
  const end = compareTable(next, await fake.listRuleset());
  t.ok(end.equal, `the end state is the new table${end.detail ? `: ${end.detail}` : ''}`);
});
