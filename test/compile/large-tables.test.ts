// Large tables under the stock batch cap, compiled offline: every node of the agent benchmark's cluster
// (10,000 pods / 1,000 policies over 50 nodes) programs from scratch, and from a full table to the next,
// in batches of at most 425,952 bytes (2 x the stock net.core.wmem_max, less netlink's 32).
import t from 'tap';
import { NODES, syntheticCluster } from '../../bench/_synthetic.ts';
import { type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { programBatches } from '../../src/compile/program.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { buildState } from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import { wideDesired } from './_wide.ts';

const STOCK = 425_952;

t.test('every node of the benchmark cluster programs under the stock cap', async (t) => {
  const index = new ClusterIndex(buildState(syntheticCluster(10_000, 1_000)));
  const planner = new Planner(index);
  let worst = { node: '', bytes: 0, batches: 0 };
  let staged = 0;
  for (let n = 0; n < NODES; n++) {
    const node = `node${n}`;
    const state: DesiredState = desiredState(planner.planNode(node));
    const program = programBatches({ kernel: undefined }, state, { maxBatchBytes: STOCK });
    let bytes = 0;
    for (const tx of program.batches) {
      const b = tx.encode().buf.length;
      if (b > STOCK) t.fail(`${node}: a batch of ${b} bytes`);
      bytes += b;
    }
    if (program.staged) staged++;
    if (bytes > worst.bytes) worst = { node, bytes, batches: program.batches.length };
  }
  t.pass(
    `worst: ${worst.node}, ${worst.bytes} bytes in ${worst.batches} batches; ${staged} of ${NODES} staged`,
  );
});

t.test('a policy of peers x ports compiles to peers + ports elements', async (t) => {
  for (const n of [100, 460, 700]) {
    const state = wideDesired(n);
    let elements = 0;
    for (const s of state.sets.values()) elements += s.elements.size;
    // peers + ports, and the pod's own entries (local set, dispatch map)
    t.ok(elements <= 2 * n + 10, `${n} x ${n}: ${elements} elements (fused: ${n * n})`);
    const program = programBatches({ kernel: undefined }, state, { maxBatchBytes: STOCK });
    t.equal(
      program.batches.length,
      1,
      `${n} x ${n}: one batch of ${program.batches[0]!.encode().buf.length} bytes`,
    );
  }
});
