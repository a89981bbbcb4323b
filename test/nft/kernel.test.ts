// Kernel tests in throwaway network namespaces: our netlink programming vs `nft -f` of our own text
// (identical `nft -j list ruleset`), read-back round trips, atomic failures, stale generations, 100k batches.

import t from 'tap';
import { CORPUS } from './_corpus.ts';
import { listJson, makeNs, nsChild, nsExec } from './_ns.ts';

// biome-ignore lint/suspicious/noExplicitAny: JSON printed by the child process, checked field by field
type Json = any;

interface ApplyResult {
  ok: boolean;
  text: string;
  diffs: string[];
  fatal?: unknown;
}

for (const name of Object.keys(CORPUS)) {
  t.test(`corpus ${name}: netlink == nft -f of our text, and reads back equal`, async (t) => {
    const ours = makeNs(t, 'a');
    const theirs = makeNs(t, 'b');
    const r = nsChild(ours, 'apply', name);
    const res = r.result as ApplyResult;
    t.equal(res.ok, true, `applied through netlink ${JSON.stringify(res.fatal ?? r.stderr)}`);
    t.same(res.diffs, [], 'what the kernel lists back decodes into the objects we sent');
    const load = nsExec(theirs, 'nft', ['-f', '-'], res.text);
    t.equal(load.status, 0, `nft -f accepts our rendering: ${load.stderr}`);
    const a = listJson(ours);
    const b = listJson(theirs);
    t.same(a, b, 'identical nft -j list ruleset');
    t.ok(JSON.stringify(a).length > 500, 'the listing is not trivially empty');
  });
}

t.test('a rule jumping to a missing chain fails the whole batch with a precise, first error', async (t) => {
  const ns = makeNs(t);
  const r = nsChild(ns, 'fail-missing-chain').result as Json;
  t.equal(r.ok, true, JSON.stringify(r.fatal));
  t.equal(r.error.code, 'E_NETLINK');
  t.equal(r.error.errnoName, 'ENOENT');
  t.equal(r.error.messageType, 'NEWRULE');
  t.match(r.error.object, /chain inet tollgate in .*jump nowhere/);
  t.match(r.error.message, /does not exist/);
  t.equal(
    r.unchanged,
    true,
    'previous ruleset untouched (the chain and element before it were not committed)',
  );
  t.equal(r.genUnchanged, true, 'generation unchanged');
});

t.test('an invalid (overlapping) element fails the batch and names the set', async (t) => {
  const ns = makeNs(t);
  const r = nsChild(ns, 'fail-element').result as Json;
  t.equal(r.ok, true, JSON.stringify(r.fatal));
  t.equal(r.error.errnoName, 'EEXIST');
  t.equal(r.error.messageType, 'NEWSETELEM');
  t.equal(r.error.object, 'elements of set inet tollgate s4');
  t.equal(r.unchanged, true);
});

t.test('a stale generation is detected (ERESTART) and retried', async (t) => {
  const ns = makeNs(t);
  const r = nsChild(ns, 'stale-genid').result as Json;
  t.equal(r.ok, true, JSON.stringify(r.fatal));
  t.equal(r.staleError.code, 'E_NETLINK_GENID');
  t.equal(r.staleError.errnoName, 'ERESTART');
  t.equal(r.lateAfterStale, false, 'nothing committed from the stale batch');
  t.equal(r.retry.attempts, 2, 'rebuilt and committed on the second attempt');
  t.equal(r.lateAfterRetry, true);
});

t.test('a 100,000-element interval set goes in one batch and reads back whole', async (t) => {
  const ns = makeNs(t);
  const r = nsChild(ns, 'large', '100000').result as Json;
  t.equal(r.ok, true, JSON.stringify(r.fatal));
  t.ok(r.commit.bytes > 2_000_000, `one batch of ${r.commit.bytes} bytes`);
  t.equal(r.readBack, 100000);
  t.equal(r.sameFirstLast, true, 'every interval reads back identical');
});
