// Root: FakeNft is held to the real kernel. The same batches (the nft corpus, and batches the kernel
// refuses) run on both: the same errno and message type, the same ruleset listed back. And a golden table
// (test/golden, `tollgate compile` text) loaded by nft into a kernel lists as the fake holds it.
import { join } from 'node:path';
import t from 'tap';
import { fullTransaction } from '../../src/compile/diff.ts';
import { FakeNft } from '../../src/nft/index.ts';
import { desiredOf, GOLDEN, goldenScenarios } from '../compile/_golden.ts';
import { type CaseOutcome, clear, FAKE_CASES, runCase } from './_fake-cases.ts';
import { makeNs, nsExec } from './_ns.ts';

const child = join(import.meta.dirname, '_fake-child.ts');

function inNs(ns: string, ...args: string[]): unknown {
  const r = nsExec(ns, process.execPath, [child, ...args]);
  if (r.status !== 0) throw new RangeError(`_fake-child.ts ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
}

t.test('the same batches: the same outcome on the fake and in the kernel', async (t) => {
  const kernel = inNs(makeNs(t, 'f')) as CaseOutcome[];
  const fake = new FakeNft();
  for (const [i, c] of FAKE_CASES.entries()) {
    await clear(fake);
    const got = await runCase(fake, c);
    t.same(got, kernel[i], c.name);
  }
  t.ok(
    kernel.filter((o) => o.error !== undefined).length >= 4,
    'the refused batches were refused by the kernel too',
  );
});

/** Goldens held to the kernel: the tables nft loads from them are listed back too (our decoder lacks the
 *  byteorder expression nft emits for some rules of db-only-from-api, so that one is loaded only). */
const KERNEL_GOLDENS: Record<string, { listNftLoaded: boolean }> = {
  'db-only-from-api': { listNftLoaded: false },
  'three-tier': { listNftLoaded: false },
  'seed-three-tier': { listNftLoaded: true },
};

for (const s of goldenScenarios().filter((x) => x.name in KERNEL_GOLDENS)) {
  t.test(`golden ${s.group}/${s.name} node 1 in a kernel: as the fake holds it`, async (t) => {
    const fake = new FakeNft();
    await fullTransaction(desiredOf(s.file, 1), { replace: false }).run(fake);
    const programmed = inNs(makeNs(t, 'p'), '--program', s.file) as string[];
    t.ok(programmed.length > 10, `${programmed.length} lines listed`);
    t.equal(`${programmed.join('\n')}\n`, fake.dump(), 'our batch: the kernel lists what the fake holds');
    const ns = makeNs(t, 'g');
    const r = nsExec(ns, 'nft', ['-f', join(GOLDEN, 'tables', s.group, s.name, 'node-1.nft')]);
    t.equal(r.status, 0, `nft -f accepts the golden text ${r.stderr.slice(0, 500)}`);
    if (KERNEL_GOLDENS[s.name]!.listNftLoaded) {
      const loaded = inNs(ns, '--list') as string[];
      t.equal(`${loaded.join('\n')}\n`, fake.dump(), 'the golden text, loaded by nft: the same table');
    }
  });
}
