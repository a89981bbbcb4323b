// Runs INSIDE a throwaway network namespace: the FakeNft cases against the real kernel through
// NetlinkConnection; with --list only the listing (of what `nft -f` loaded); with --program FILE the
// compiled table of node 1 of a scenario committed, then listed. Prints one JSON line.
import { fullTransaction } from '../../src/compile/diff.ts';
import { NetlinkConnection } from '../../src/nft/index.ts';
import { desiredOf } from '../compile/_golden.ts';
import { type CaseOutcome, clear, FAKE_CASES, listedLines, runCase } from './_fake-cases.ts';

const conn = new NetlinkConnection();
if (process.argv[2] === '--list') {
  process.stdout.write(`${JSON.stringify(await listedLines(conn))}\n`);
} else if (process.argv[2] === '--program') {
  await fullTransaction(desiredOf(process.argv[3]!, 1), { replace: false }).run(conn);
  process.stdout.write(`${JSON.stringify(await listedLines(conn))}\n`);
} else {
  const out: CaseOutcome[] = [];
  for (const c of FAKE_CASES) {
    await clear(conn);
    out.push(await runCase(conn, c));
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
conn.close();
