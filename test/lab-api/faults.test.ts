// Faults on the API path, with real agents, a real kube-apiserver and real traffic: the control plane gone
// for 30 s while policies change, an agent SIGKILLed in the middle of a stream of updates, and an API server
// frozen (SIGSTOP) so the agents' watches go silent. Enforcement must never lapse and must converge after.
import type { Test } from 'tap';
import t from 'tap';
import type { AgentProcess } from '../../src/lab/agent-process.ts';
import type { ApiScenarioDriver } from '../../src/lab/api-driver.ts';
import type { World } from '../../src/scenario/world.ts';
import { policy, reachable, setPolicy, sleep, startDriver } from './_faults.ts';
import { requireBinaries, skipUnlessRoot } from './_helpers.ts';

/** The scenario-style probes with the driver's convergence retries (≤ 10 s). */
async function expectFlows(
  t: Test,
  driver: ApiScenarioDriver,
  world: World,
  flows: [string, string, boolean][],
) {
  const outcomes = await driver.probe(
    world,
    flows.map(([from, to, allow]) => ({
      text: `${from} -> ${to}:80/TCP`,
      from: { kind: 'pod', key: from },
      to: { kind: 'pod', key: to },
      port: 80,
      protocol: 'TCP',
      expectAllow: allow,
      where: 'faults',
    })),
  );
  for (const o of outcomes)
    t.equal(o.allowed, o.probe.expectAllow, `${o.probe.text} ${o.probe.expectAllow ? 'allowed' : 'denied'}`, {
      diagnostic: o.allowed !== o.probe.expectAllow,
      explanation: o.explanation,
    });
}

function logSince(agent: AgentProcess, sinceMs: number, untilMs: number, msg: string): number {
  return agent.lines.filter((l) => {
    const json = l.slice(l.indexOf('{'));
    try {
      const o = JSON.parse(json) as { time?: number; msg?: string };
      return o.msg === msg && (o.time ?? 0) >= sinceMs && (o.time ?? 0) <= untilMs;
    } catch {
      return false;
    }
  }).length;
}

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) {
  t.test('kube-apiserver and etcd down for 30 s while policies change', async (t) => {
    const { driver, world } = await startDriver(t);
    const api = driver.api!;
    const pids = driver.agents.map((a) => a.pid);
    await expectFlows(t, driver, world, [
      ['x/b', 'x/a', true],
      ['x/c', 'x/a', true],
    ]);

    await api.stopServers();
    const down = performance.now();
    t.comment('control plane stopped');
    // The change the cluster will get once the API is back; meanwhile the old table keeps enforcing.
    setPolicy(world, policy('only-c', 'a', ['c']));
    t.ok(
      await reachable(driver, 'x/b', 'x/a'),
      'while the API is down the last programmed table still applies',
    );
    await sleep(2000);
    const readyz = await Promise.all(driver.agents.map((a) => a.http('/readyz')));
    t.same(
      readyz.map((r) => r.status),
      driver.agents.map(() => 503),
      `agents report not ready while their watches are down (${readyz.map((r) => r.body.trim()).join(' | ')})`,
    );
    await sleep(Math.max(0, 30_000 - (performance.now() - down)));
    t.ok(
      driver.agents.every((a) => a.running),
      'agents kept running through the outage',
    );

    await api.startServers();
    t.comment(
      `control plane back after ${Math.round(performance.now() - down)} ms (ready in ${api.readyMs} ms)`,
    );
    await driver.applyObjects(world);
    const back = await driver.waitConverged(world, 'after the outage', 40_000);
    t.ok(back.converged, `nodes converged ${back.ms} ms after the change was written`, {
      diagnostic: !back.converged,
      pending: back.pending,
      logs: back.converged ? undefined : driver.diagnostics(40),
    });
    await expectFlows(t, driver, world, [
      ['x/b', 'x/a', false],
      ['x/c', 'x/a', true],
    ]);
    t.same(
      driver.agents.map((a) => a.pid),
      pids,
      'the same agent processes (no restart needed)',
    );
    for (const a of driver.agents) await a.waitReady(30_000);
    t.pass('agents ready again');

    // The watches are live again: the next change arrives as an event, not after a relist.
    world.policies.delete('x/only-c');
    await driver.applyObjects(world);
    const next = await driver.waitConverged(world, 'next change');
    t.ok(next.converged, `a later change converged in ${next.ms} ms`);
    await expectFlows(t, driver, world, [['x/b', 'x/a', true]]);
  });

  t.test(
    'an agent SIGKILLed during a stream of updates leaves a whole table that keeps enforcing',
    async (t) => {
      const { driver, world } = await startDriver(t);
      setPolicy(world, policy('only-c', 'a', ['c']));
      await driver.applyObjects(world);
      t.ok((await driver.waitConverged(world, 'base policy')).converged, 'base policy programmed');
      await expectFlows(t, driver, world, [
        ['x/b', 'x/a', false],
        ['x/c', 'x/a', true],
      ]);
      const agent = driver.agent(1); // node 1 holds x/a and x/c

      for (let round = 1; round <= 3; round++) {
        // Only policies change in the stream: one watch, so the agent's view is always a prefix of what was
        // written, and the kernel must hold exactly the table of one of the written states. Every write
        // brings a port no other state has, so every state's table is distinct.
        const states = [world.objects()];
        let written = 0;
        const stream = (async () => {
          for (let i = 0; i < 30; i++) {
            const name = `churn-${i % 6}`;
            if (i % 4 === 3) world.policies.delete(`x/${name}`);
            else setPolicy(world, policy(name, 'c', i % 2 ? ['a'] : ['a', 'b'], [1000 + 100 * round + i]));
            await driver.applyObjects(world);
            states.push(world.objects());
            written++;
            await sleep(10);
          }
        })();
        while (written < 5 + round * 3) await sleep(5);
        const killedAfter = written;
        await agent.kill('SIGKILL');
        await stream;
        t.comment(`round ${round}: agent SIGKILLed after ${killedAfter} of 30 writes`);

        const list = await driver.lab!.execNode(1, ['nft', 'list', 'table', 'inet', 'tollgate']);
        t.equal(list.code, 0, 'nft lists the table');
        t.match(list.stdout, /table inet tollgate \{/, 'the table is there');
        const json = await driver.lab!.execNode(1, ['nft', '-j', 'list', 'table', 'inet', 'tollgate']);
        t.doesNotThrow(() => JSON.parse(json.stdout), 'its JSON listing parses');
        let match = -1;
        for (let k = states.length - 1; k >= 0 && match < 0; k--)
          if ((await driver.tableMatches(1, states[k])).equal) match = k;
        t.ok(
          match >= 0,
          `the table is exactly that of written state ${match} (of ${states.length - 1}): never half-programmed`,
        );
        // At most one write was in flight when the kill landed: nothing after it can be in the kernel.
        t.ok(
          match <= killedAfter + 1,
          `nothing programmed after the kill (state ${match}, killed after ${killedAfter})`,
        );

        for (let i = 0; i < 3; i++) {
          t.notOk(await reachable(driver, 'x/b', 'x/a'), `agent down: x/b -> x/a stays denied (${i + 1}/3)`);
          t.ok(await reachable(driver, 'x/c', 'x/a'), `agent down: x/c -> x/a stays allowed (${i + 1}/3)`);
          await sleep(300);
        }

        agent.start();
        const readyMs = await agent.waitReady();
        const c = await driver.waitConverged(world, `restarted agent (round ${round})`);
        t.ok(
          c.converged,
          `the restarted agent is ready in ${readyMs} ms and its table converged ${c.ms} ms later`,
          {
            diagnostic: !c.converged,
            pending: c.pending,
          },
        );
        await expectFlows(t, driver, world, [
          ['x/b', 'x/a', false],
          ['x/c', 'x/a', true],
        ]);
      }
    },
  );

  t.test('a watch that goes silent (API server frozen) is restarted by the watchdog', async (t) => {
    const quietMs = 3000;
    const { driver, world } = await startDriver(t, ['--watch-quiet-ms', String(quietMs)]);
    const api = driver.api!;
    const before = await Promise.all(driver.agents.map((a) => a.metric('tollgate_watch_restarts_total')));
    api.freeze();
    const frozeAt = Date.now();
    t.comment(`kube-apiserver (pid ${api.pid}) stopped with SIGSTOP`);
    try {
      await sleep(quietMs * 3);
      // Enforcement goes on without the API.
      t.ok(await reachable(driver, 'x/b', 'x/a'), 'traffic still flows while the API is frozen');
    } finally {
      api.thaw();
    }
    const thawedAt = Date.now();
    for (const a of driver.agents) {
      const n = logSince(a, frozeAt, thawedAt, 'watch has been quiet too long, restarting it');
      t.ok(n >= 1, `${a.nodeName}: the watchdog restarted ${n} silent watches while the API was frozen`);
    }
    // Converges after SIGCONT: a change written now reaches every node through fresh watches.
    setPolicy(world, policy('only-c', 'a', ['c']));
    await driver.applyObjects(world);
    const c = await driver.waitConverged(world, 'after SIGCONT', 40_000);
    t.ok(c.converged, `converged ${c.ms} ms after the change (written once the API answered again)`, {
      diagnostic: !c.converged,
      pending: c.pending,
      logs: c.converged ? undefined : driver.diagnostics(40),
    });
    await expectFlows(t, driver, world, [
      ['x/b', 'x/a', false],
      ['x/c', 'x/a', true],
    ]);
    for (const a of driver.agents) await a.waitReady(30_000);
    const after = await Promise.all(driver.agents.map((a) => a.metric('tollgate_watch_restarts_total')));
    driver.agents.forEach((a, i) => {
      t.ok(
        after[i]! > before[i]!,
        `${a.nodeName}: tollgate_watch_restarts_total ${before[i]} -> ${after[i]}`,
      );
    });
  });
}
