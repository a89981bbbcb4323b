// Cut mode's SYN rules in the compiled table (semantics 11, 16): where they go, that keep mode's table is
// unchanged, that the compile command and the reconciler emit them, and that the fake kernel fed the real
// batch bytes lists back the same table (verify sees no drift). Root-free; the kernel test is
// test/compile/cut-kernel.test.ts.
import t from 'tap';
import { NodeReconciler } from '../../src/agent/reconciler.ts';
import { compileCommand } from '../../src/cli/compile.ts';
import { desiredState } from '../../src/compile/desired.ts';
import { fullTransaction } from '../../src/compile/diff.ts';
import { canonicalLines } from '../../src/compile/verify.ts';
import { Planner } from '../../src/policy/plan.ts';
import type { ClusterState } from '../../src/policy/types.ts';
import { FakeKernel } from '../agent/_fixtures.ts';
import { pod, policy, state } from '../policy/builders.ts';

const cluster = (): ClusterState =>
  state({
    pods: [pod('x/web', { app: 'web' }), pod('x/db', { app: 'db' })],
    policies: [
      policy('x/web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80 }] }] }),
    ],
  });

const SYN_RULE = /ct state new meta l4proto tcp @th,104,8 & 0x17 != 0x02 counter drop$/;
const forward = (d: ReturnType<typeof desiredState>) =>
  fullTransaction(d, { replace: false })
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('add rule inet tollgate forward '));

t.test('cut: new pod TCP without a plain SYN is dropped before any policy; keep: no such rule', async (t) => {
  const plan = new Planner(cluster()).planNode('n1');
  const keep = forward(desiredState(plan));
  const cut = forward(desiredState(plan, undefined, { requireSyn: true }));
  t.notOk(
    keep.some((l) => SYN_RULE.test(l)),
    'keep mode: no SYN rule',
  );
  const syn = cut.filter((l) => SYN_RULE.test(l));
  t.equal(syn.length, 2 * plan.podCIDRs.length, 'one rule per pod CIDR and direction (saddr, daddr)');
  for (const field of ['saddr', 'daddr'])
    t.equal(syn.filter((l) => l.includes(` ${field} `)).length, plan.podCIDRs.length, `${field} rules`);
  // After the conntrack rules (replies with an entry pass first, point 11), before the ND accept, the
  // unknown-local drops and the dispatch maps (no policy chain sees such a packet, so no report).
  const first = cut.findIndex((l) => SYN_RULE.test(l));
  const last = cut.findLastIndex((l) => SYN_RULE.test(l));
  t.ok(cut[first - 1]?.endsWith('ct state invalid counter drop'), 'right after ct state invalid drop');
  t.ok(cut[last + 1]?.includes('icmpv6 type'), 'right before the neighbour discovery accept');
  t.same(
    cut.filter((l) => !SYN_RULE.test(l)),
    keep,
    'cut mode adds the SYN rules and changes nothing else',
  );
});

t.test('tollgate compile --established cut emits them; keep (the default) does not', async (t) => {
  const run = async (args: string[]) => {
    let out = '';
    const io = { out: (s: string) => (out += `${s}\n`), err: () => {} };
    const code = await compileCommand.run(args, io);
    return { code, out };
  };
  const file = new URL('../../examples/', import.meta.url).pathname;
  const { readdirSync } = await import('node:fs');
  const example = readdirSync(file).find((f) => f.endsWith('.yaml'))!;
  const keep = await run([`${file}${example}`, '--node', '1']);
  const keepFlag = await run([`${file}${example}`, '--node', '1', '--established', 'keep']);
  const cut = await run([`${file}${example}`, '--node', '1', '--established', 'cut']);
  t.equal(keep.code, 0);
  t.equal(keepFlag.out, keep.out, '--established keep is the default table');
  t.notOk(keep.out.split('\n').some((l) => SYN_RULE.test(l)));
  t.ok(cut.out.split('\n').some((l) => SYN_RULE.test(l)));
  await t.rejects(
    run([`${file}${example}`, '--node', '1', '--established', 'drop']),
    /--established must be/,
  );
});

t.test('the reconciler programs them; the fake kernel lists them back without drift', async (t) => {
  const fake = new FakeKernel();
  const rec = new NodeReconciler('n1', fake, {}, undefined, { requireSyn: true });
  await rec.sync(cluster());
  t.same(await rec.verify(), { drift: false, repaired: false });
  const listed = canonicalLines((await fake.readTable())!);
  t.equal(listed.filter((l) => l.includes('@th,104,8 & 0x17 != 0x02')).length, 4, 'v4 and v6, both fields');
  const keep = new FakeKernel();
  await new NodeReconciler('n1', keep, {}, undefined, {}).sync(cluster());
  t.notOk(canonicalLines((await keep.readTable())!).some((l) => l.includes('@th,104,8')));
});
