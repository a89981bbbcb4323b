// tollgate_established_pickups_dropped_total (--established=cut): the counters of the base chain's
// syn-only rules (new pod TCP without a bare SYN, dropped), read on each /metrics like the suppressed
// reports; a rewrite that restarts them at 0 is not taken for a decrease. Fake kernel, fake API.
import { pino } from 'pino';
import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import { chainPackets, KernelCounter } from '../../src/agent/reports.ts';
import { BASE_CHAIN } from '../../src/compile/desired.ts';
import { isSynOnlyRule } from '../../src/compile/ruleset.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { Counter, type FakeNft, Rule } from '../../src/nft/index.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { policy } from '../policy/builders.ts';
import { cluster, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

/** Gives every syn-only rule of the fake's base chain a counter of `packets` (traffic the fake cannot make). */
function count(fake: FakeNft, packets: bigint): void {
  fake.tamper((tables) => {
    for (const table of tables.values())
      table.rules = table.rules.map((r) =>
        r.chain === BASE_CHAIN && isSynOnlyRule(r)
          ? new Rule({
              ...r.options(),
              exprs: r.exprs.map((e) =>
                e instanceof Counter ? new Counter({ packets, bytes: 60n * packets }) : e,
              ),
            })
          : r,
      );
  });
}

const metric = async (url: string) => {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith('tollgate_established_pickups_dropped_total '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

for (const established of ['cut', 'keep'] as const) {
  t.test(`--established=${established}: the SYN-drop rules' counters as a metric`, async (t) => {
    const api = new FakeApi();
    cluster(api);
    api.put(P.np, 'deny', policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] }));
    const programmer = new FakeKernel();
    const a = new Agent(
      api,
      programmer,
      pino({ level: 'silent' }),
      { ...TEST_AGENT_OPTIONS, metricsAddr: '127.0.0.1:0', established },
      {},
    );
    t.teardown(() => a.stop());
    await a.start();
    await until(() => a.ready, 'ready', scaledMs(10_000));
    const url = `http://127.0.0.1:${a.httpAddress!.port}/metrics`;
    const rules = (await programmer.readChainRules(BASE_CHAIN))!.filter(isSynOnlyRule);
    if (established === 'keep') {
      t.equal(rules.length, 0, 'keep: no syn-only rule');
      t.equal(await metric(url), 0, 'keep: the metric stays 0');
      return;
    }
    // One pod CIDR per family, source and destination: four rules.
    t.equal(rules.length, 4, 'cut: the syn-only rules are found in the table read back');
    t.equal(await metric(url), 0);
    count(programmer.fake, 3n);
    t.equal(await metric(url), 12, 'the four rules, 3 packets each');
    t.equal(await metric(url), 12, 'read again: nothing new');
    count(programmer.fake, 1n);
    t.equal(await metric(url), 16, 'counters restarted by a rewrite (4 x 1): what they hold is new');
  });
}

t.test('chainPackets and KernelCounter', async (t) => {
  const seen: number[] = [];
  const k = new KernelCounter({ inc: (n) => seen.push(n) });
  for (const now of [undefined, 5n, 5n, 9n, 2n, undefined, 4n]) k.update(now);
  t.same(seen, [5, 4, 2, 2], 'first reading whole, then deltas, a lower one whole, none when unread');
  const read = async (chain: string) =>
    chain === 'gone'
      ? undefined
      : [
          new Rule({ family: 'inet', table: 't', chain, exprs: [new Counter({ packets: 2n })] }),
          new Rule({
            family: 'inet',
            table: 't',
            chain,
            exprs: [new Counter({ packets: 5n })],
            comment: 'x',
          }),
        ];
  t.equal(await chainPackets(read, ['a', 'b']), 14n);
  t.equal(await chainPackets(read, ['a', 'gone']), 7n, 'a missing chain counts nothing');
  t.equal(await chainPackets(read, ['gone']), undefined, 'no chain: nothing to read');
  t.equal(await chainPackets(read, ['a'], (r) => r.comment === 'x'), 5n, 'only the rules picked');
});
