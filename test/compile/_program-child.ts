// Test helper run INSIDE a throwaway network namespace (ip netns exec): programs large tables through
// compile/program.ts and the real kernel under a batch cap, reads them back and compares. Prints one JSON
// line; never run it in the root namespace.

import { syntheticCluster } from '../../bench/_synthetic.ts';
import { NetlinkProgrammer } from '../../src/agent/programmer.ts';
import { type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { type ProgramFrom, programBatches } from '../../src/compile/program.ts';
import { buildRunElements } from '../../src/compile/runs.ts';
import { compareTable } from '../../src/compile/verify.ts';
import {
  NFT_MSG,
  NFTA_DATA,
  NFTA_LIST_ELEM,
  NFTA_SET_ELEM,
  NFTA_SET_ELEM_LIST,
  NLM_F,
} from '../../src/netlink/constants.ts';
import { FAMILIES, listChains, NfnlSocket } from '../../src/nft/index.ts';
import type { AddressRange } from '../../src/policy/address.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { buildState } from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';
import { isNotFound } from '../../src/util/errors.ts';
import { cluster, pod, policy } from '../policy/builders.ts';
import { wideDesired } from './_wide.ts';

const [mode, capText, ...nodes] = process.argv.slice(2);
const cap = Number(capText);

/** One pod isolated by a policy that lets in `count` separate single addresses on any port. */
function million(count: number): DesiredState {
  const index = cluster({
    pods: [pod('x/a', { app: 'a' })],
    policies: [
      policy('x/p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }] }),
    ],
  });
  const state = desiredState(new Planner(index).planNode('n1'));
  const a4 = [...state.sets.values()].find((s) => s.name.endsWith('-a4'))!;
  const ranges: AddressRange[] = [];
  for (let i = 0; i < count; i++) {
    const v = BigInt(0x0a000000 + 2 * i);
    ranges.push({ family: 4, first: v, last: v });
  }
  state.sets.set(a4.name, {
    ...a4,
    elements: buildRunElements(undefined, [{ suffix: '', parts: [ranges] }]).elements,
  });
  return state;
}

async function program(p: NetlinkProgrammer, from: ProgramFrom, next: DesiredState, readBack = true) {
  const start = performance.now();
  const prog = programBatches(from, next, { maxBatchBytes: cap });
  const planned = performance.now() - start;
  let maxBytes = 0;
  for (const tx of prog.batches) {
    const c = await p.commit(tx);
    maxBytes = Math.max(maxBytes, c.bytes);
  }
  const committed = performance.now() - start;
  const cmp = readBack ? compareTable(next, await p.readTable()) : { equal: undefined, detail: undefined };
  return {
    kind: prog.kind,
    staged: prog.staged === true,
    batches: prog.batches.length,
    maxBytes,
    plannedMs: Math.round(planned),
    ms: Math.round(committed),
    equal: cmp.equal,
    detail: cmp.detail,
  };
}

const p = new NetlinkProgrammer();
const out: unknown[] = [];
try {
  if (mode === 'million') {
    // Listing a million-range set is quadratic in the kernel (every dump message walks the tree from its
    // start): the test samples it with lookups instead of reading it back.
    const state = million(Number(nodes[0] ?? 1_000_000));
    const result = await program(p, { kernel: undefined }, state, false);
    const set = [...state.sets.keys()].find((n) => n.endsWith('-a4'))!;
    // Sampled: 10.0.0.0 + 2i are members for i < count, the odd addresses between them are not.
    const count = Number(nodes[0] ?? 1_000_000);
    const sock = new NfnlSocket();
    const has = async (v: number) => {
      try {
        await sock.request(NFT_MSG.GETSETELEM, FAMILIES.inet, NLM_F.ACK, (w) => {
          w.str(NFTA_SET_ELEM_LIST.TABLE, 'tollgate');
          w.str(NFTA_SET_ELEM_LIST.SET, set);
          w.nest(NFTA_SET_ELEM_LIST.ELEMENTS, () =>
            w.nest(NFTA_LIST_ELEM, () =>
              w.nest(NFTA_SET_ELEM.KEY, () => {
                const key = Buffer.alloc(4);
                key.writeUInt32BE(v);
                w.bytesAttr(NFTA_DATA.VALUE, key);
              }),
            ),
          );
        });
        return true;
      } catch (e) {
        if (isNotFound(e)) return false;
        throw e;
      }
    };
    const wrong: string[] = [];
    for (let k = 0; k < 1000; k++) {
      const i = Math.floor((k * (count - 1)) / 999);
      if (!(await has(0x0a000000 + 2 * i))) wrong.push(`member ${i} missing`);
      if (await has(0x0a000000 + 2 * i + 1)) wrong.push(`non-member after ${i} present`);
    }
    if (await has(0x0a000000 + 2 * count)) wrong.push('the address after the last member is present');
    const chains = await listChains(sock, { family: 'inet', table: 'tollgate' });
    sock.close();
    const hooked = chains.filter((c) => c.isBase).map((c) => `${c.name} ${c.hook} ${c.policy}`);
    out.push({ ...result, set, wrong, sampled: 2001, hooked });
  } else if (mode === 'wide') {
    // The peers x ports policies in turn (address classes), each from the listing, then back as a diff.
    const states = nodes.map((n) => wideDesired(Number(n)));
    for (const s of states) out.push(await program(p, { kernel: await p.readTable() }, s));
    out.push(await program(p, { programmed: states.at(-1)! }, states[0]!));
  } else {
    // Bench nodes in turn: the first from scratch, each next one from the listing (a staged replace over
    // an enforcing table), then back to the first as a diff from our record.
    const planner = new Planner(new ClusterIndex(buildState(syntheticCluster(10_000, 1_000))));
    const states = nodes.map((n) => desiredState(planner.planNode(n)));
    for (const s of states) out.push(await program(p, { kernel: await p.readTable() }, s));
    out.push(await program(p, { programmed: states.at(-1)! }, states[0]!));
  }
  console.log(JSON.stringify({ ok: true, out }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, out, error: String((e as Error).stack ?? e) }));
} finally {
  p.close();
}
