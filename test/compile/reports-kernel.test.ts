// Kernel tests of the drop report rules (semantics 16) in throwaway network namespaces: the real kernel
// accepts the table with reports (the node's limit object, the chains naming it, nflog `log group`), `nft -f`
// of `tollgate compile` equals the netlink programming with the same flags, and verify finds no drift.

import { join } from 'node:path';
import t from 'tap';
import { loadScenario } from '../../src/scenario/parse.ts';
import { World } from '../../src/scenario/world.ts';
import { compileText, enforcer, listTable, makeNs, nft, nftFile } from './_kernel.ts';
import { scenarioFile, scenarioStates } from './_scenarios.ts';

const FLAGS = [
  '--drop-reports=on',
  '--drop-report-rate=3/second',
  '--drop-report-burst=2',
  '--nflog-group=7',
];

for (const name of ['seed-db-only-from-api', 'u19-egress-named-port']) {
  const { nodeName, steps } = scenarioStates(name, 1);
  const last = steps.length - 1;
  t.test(`${name}: compile with reports == netlink with reports, no drift`, async (t) => {
    const a = makeNs(t, 'a');
    const b = makeNs(t, 'b');
    const text = compileText(scenarioFile(name), 1, last, FLAGS);
    t.match(text, /add limit inet tollgate reports-3-second-2 \{ rate over 3\/second burst 2 packets \}/);
    t.match(text, /add rule inet tollgate reports limit name "reports-3-second-2" counter drop/);
    t.match(text, /ct state new log prefix "tg:[ie]:d:(in|eg)-[0-9a-f]{12}" group 7/);
    const loaded = nftFile(a, text);
    t.equal(loaded.status, 0, `nft -f accepts the compile output ${loaded.stderr}`);
    const e = enforcer(t, b, nodeName, FLAGS);
    t.equal((await e.sync(steps[last]!.objects, true)).kind, 'full');
    t.same(listTable(b), listTable(a), 'identical nft -j list table inet tollgate');
    const listed = nft(b, 'list', 'chain', 'inet', 'tollgate', 'reports').stdout;
    t.match(listed, /limit name "reports-3-second-2" counter packets 0 bytes 0 drop/);
    const object = nft(b, 'list', 'limit', 'inet', 'tollgate', 'reports-3-second-2').stdout;
    t.match(object, /rate over 3\/second burst 2 packets/, 'the kernel holds the bucket as sent');
    t.same(await e.verify(), { drift: false, repaired: false }, 'the read-back matches the expected state');
  });
}

t.test('audit chains (point 25): compile == netlink, would-deny reports, accept at the end', async (t) => {
  const file = join(import.meta.dirname, 'fixtures', 'audit.yaml');
  const scenario = loadScenario(file);
  const world = new World(scenario);
  for (const step of scenario.steps) world.applyStep(step);
  const text = compileText(file, 1, scenario.steps.length - 1, FLAGS);
  // One bucket for the node: each audit chain's gate names the deny gate's limit object.
  t.match(
    text,
    /(in-[0-9a-f]{12}) ct state new limit name "reports-3-second-2" goto reports-accept\n.*\1 ct state new log prefix "tg:i:w:\1" group 7/,
  );
  t.match(
    text,
    /(eg-[0-9a-f]{12}) ct state new limit name "reports-3-second-2" goto reports-return\n.*\1 ct state new log prefix "tg:e:w:\1" group 7/,
  );
  t.notMatch(text, /limit rate/, 'no rule has a bucket of its own');
  t.match(text, /counter accept comment "audit: would deny"/);
  t.match(text, /counter return comment "audit: would deny"/);
  const a = makeNs(t, 'a');
  const b = makeNs(t, 'b');
  const loaded = nftFile(a, text);
  t.equal(loaded.status, 0, `nft -f accepts the compile output ${loaded.stderr}`);
  const e = enforcer(t, b, world.node(1).name, FLAGS);
  t.equal((await e.sync(world.objects(), true)).kind, 'full');
  t.same(listTable(b), listTable(a), 'identical nft -j list table inet tollgate');
  t.same(await e.verify(), { drift: false, repaired: false });
});
