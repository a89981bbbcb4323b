// Golden nft text of the table every node gets for the seed scenarios (../shared/scenarios/seeds, when
// beside the clone) and the project's examples/, compiled offline by the `tollgate compile` path; golden
// bytes of the netlink batch for two of them; and the batch, decoded by FakeNft, holds the compiled table.
// Root-free. Regenerate after an intended change (set names, rule order...) with
//   UPDATE_GOLDEN=1 npx tap --disable-coverage test/compile/golden.test.ts
// and review the diff in test/golden/. test/nft/fake-kernel.test.ts checks a golden against a kernel.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { fullTransaction } from '../../src/compile/diff.ts';
import { canonicalLines, expectedRuleset } from '../../src/compile/verify.ts';
import { HOST_IS_LE } from '../../src/netlink/attr.ts';
import { messageTypeName } from '../../src/netlink/constants.ts';
import { splitMessages } from '../../src/netlink/message.ts';
import { FakeNft } from '../../src/nft/index.ts';
import { REPO, SHARED_SCENARIOS } from '../_corpus.ts';
import { compiled, desiredOf, GOLDEN, goldenScenarios } from './_golden.ts';

const update = process.env.UPDATE_GOLDEN === '1';

/** The batch as text: one line per message, its type and its bytes in hex (header included). */
function batchText(buf: Buffer): string {
  return splitMessages(buf)
    .map((m) => `${messageTypeName(m.type)} ${m.raw.toString('hex')}`)
    .join('\n')
    .concat('\n');
}

/** Compares `got` with the golden file, or writes it under UPDATE_GOLDEN=1. */
function golden(t: Test, path: string, got: string, what: string): void {
  if (update) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, got);
    t.pass(`${what}: written`);
    return;
  }
  if (!existsSync(path)) {
    t.fail(`${what}: no golden ${path}; run UPDATE_GOLDEN=1 npx tap test/compile/golden.test.ts`);
    return;
  }
  t.equal(got, readFileSync(path, 'utf8'), `${what} equals ${path.slice(REPO.length + 1)}`);
}

/** The two scenarios whose batches are checked in as bytes (always present: examples/). Netlink headers
 *  are in host byte order: the goldens are a little-endian host's. */
const BYTES = ['db-only-from-api', 'dual-stack-egress'];

if (!SHARED_SCENARIOS) t.comment('no ../shared/scenarios beside the clone: seed goldens not compared');

for (const s of goldenScenarios()) {
  t.test(`${s.group}/${s.name}: golden tables`, async (t) => {
    for (let node = 1; node <= s.nodes; node++) {
      const text = await compiled(s.file, node);
      golden(t, join(GOLDEN, 'tables', s.group, s.name, `node-${node}.nft`), text, `node ${node}`);
      const desired = desiredOf(s.file, node);
      const tx = fullTransaction(desired, { replace: false });
      t.equal(tx.toString(), text, `node ${node}: the same transaction as the compile command`);
      // The bytes, decoded and applied by the fake kernel, hold exactly the compiled table.
      const fake = new FakeNft();
      await tx.run(fake);
      t.equal(
        fake.dump(),
        `${canonicalLines(expectedRuleset(desired)).join('\n')}\n`,
        `node ${node}: FakeNft`,
      );
      if (HOST_IS_LE && node === 1 && s.group === 'examples' && BYTES.includes(s.name))
        golden(t, join(GOLDEN, 'bytes', `${s.name}-node-1.txt`), batchText(tx.encode().buf), 'node 1 bytes');
    }
  });
}
