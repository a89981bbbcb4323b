// Real-kernel lifecycle tests: down() leaves nothing, pods come and go at run time (with address reuse),
// exit hooks and the sweeper clean up after dead owners. Must never sweep labs it did not create.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { Lab, listLabs, sweepLabs } from '../../src/lab/index.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { labFor, netnsNames, skipUnlessRoot, twoNodeSpec } from './helpers.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test(
  'down() removes every namespace and process and can be called twice',
  { skip: skipUnlessRoot },
  async (t) => {
    const lab = await Lab.up(twoNodeSpec());
    t.teardown(() => lab.down());
    const namespaces = lab.namespaces();
    t.equal(
      namespaces.length,
      1 + 2 + 1 + 3,
      'network, 2 nodes, 1 host, 3 pods (the hostNetwork pod has none)',
    );
    t.ok(namespaces.every((ns) => ns.startsWith(`tglab-${lab.id}-`)));
    const { execFileSync } = await import('node:child_process');
    const pids = namespaces.flatMap((ns) =>
      execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
        .split(/\s+/)
        .filter(Boolean)
        .map(Number),
    );
    t.equal(pids.length, 2 + 1 + 3, 'one agent per node, host and pod');
    t.ok(pids.every(alive));
    await lab.down();
    await lab.down();
    const left = await netnsNames();
    t.same(
      left.filter((ns) => ns.startsWith(`tglab-${lab.id}-`)),
      [],
      'no namespace left',
    );
    t.same(pids.filter(alive), [], 'no agent left');
    await t.rejects(lab.probe('x/a', 'x/b', 80, 'TCP'), { code: 'E_LAB_DOWN' });
  },
);

t.test(
  'pods added and removed at run time, a deleted pod address reused',
  { skip: skipUnlessRoot },
  async (t) => {
    const lab = await labFor(t);
    const old = lab.pod('x/b');
    await lab.removePod('x/b');
    t.notOk((await netnsNames()).includes(old.ns), 'pod namespace removed');
    const gone = await lab.probe('x/a', old.ip4, 80, 'TCP', { timeoutMs: 1000 });
    t.notOk(gone.ok, `nobody answers at the deleted pod's address: ${gone.detail}`);

    const fresh = await lab.addPod({
      key: 'z/c',
      node: 2,
      hostNetwork: false,
      ports: [{ port: 80, protocol: 'TCP' }],
    });
    t.equal(fresh.ip4, '10.244.2.11', 'a fresh pod gets a never-used address');
    const reused = await lab.addPod({
      key: 'x/d',
      node: 1,
      ip4: old.ip4,
      hostNetwork: false,
      ports: [
        { port: 80, protocol: 'UDP' },
        { port: 80, protocol: 'TCP' },
      ],
    });
    t.equal(reused.ip4, old.ip4);
    t.equal(reused.ip6, old.ip6, 'the IPv6 address follows the reused IPv4 host number');
    // Same node and cross node, from a pod that had talked to the old holder of the address (warm caches).
    for (const [from, family] of [
      ['x/a', 4],
      ['y/a', 4],
      ['x/a', 6],
    ] as const) {
      const r = await lab.probe(from, 'x/d', 80, 'TCP', { family });
      t.ok(r.ok, `${from} reaches the new pod over IPv${family}: ${r.detail}`);
      t.match(r.detail, /^x\/d /, 'the new pod answers');
    }
    t.ok((await lab.probe('x/d', 'z/c', 80, 'TCP')).ok, 'new pod -> new pod across nodes');
    t.ok((await lab.probe('host/backup', 'x/d', 80, 'UDP')).ok, 'host -> reused-address pod over UDP');
    await t.rejects(lab.addPod({ key: 'x/e', node: 1, ip4: old.ip4, hostNetwork: false, ports: [] }), {
      code: 'E_LAB_SPEC',
    });
    await t.rejects(lab.addPod({ key: 'x/a', node: 1, hostNetwork: false, ports: [] }), {
      code: 'E_LAB_SPEC',
    });

    await lab.addPod({
      key: 'kube-system/h2',
      node: 1,
      hostNetwork: true,
      ports: [{ port: 9090, protocol: 'TCP' }],
    });
    t.ok(
      (await lab.probe('y/a', 'kube-system/h2', 9090, 'TCP')).ok,
      'a hostNetwork pod added at run time serves',
    );
    await lab.removePod('kube-system/h2');
    t.notOk(
      (await lab.probe('y/a', 'node/1', 9090, 'TCP', { timeoutMs: 1000 })).ok,
      'and stops serving when removed',
    );
  },
);

async function holdLab(t: Test) {
  const child = spawn(process.execPath, [new URL('./fixtures/hold-lab.ts', import.meta.url).pathname], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  return { child, lab: JSON.parse(line) as { id: string; namespaces: string[]; pids: number[] } };
}

// SIGALRM is how tap ends a file past its timeout: its labs must go as they do on SIGTERM.
for (const sig of ['SIGTERM', 'SIGALRM'] as const)
  t.test(`${sig} to the owner tears its lab down`, { skip: skipUnlessRoot }, async (t) => {
    const { child, lab } = await holdLab(t);
    t.equal(lab.namespaces.length, 3);
    t.equal(lab.pids.length, 2);
    const exited = once(child, 'exit');
    child.kill(sig);
    const [, signal] = await exited;
    t.equal(signal, sig, 'the hook keeps the default meaning of the signal');
    const left = await netnsNames();
    t.same(
      lab.namespaces.filter((ns) => left.includes(ns)),
      [],
      'namespaces removed by the signal hook',
    );
    // Killed by the hook, but an agent stays a zombie until init reaps it once its owner is gone.
    await waitFor(
      'the killed agents to be reaped',
      () => lab.pids.every((pid) => !alive(pid)),
      scaledMs(5000),
    ).catch(() => {});
    t.same(lab.pids.filter(alive), [], 'agents gone');
  });

t.test(
  'after SIGKILL the agents exit and the sweeper removes the stale lab',
  { skip: skipUnlessRoot },
  async (t) => {
    const own = await labFor(t);
    const { child, lab } = await holdLab(t);
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    await waitFor('agents to notice their owner died', () => lab.pids.every((pid) => !alive(pid)));
    const listed = await listLabs();
    t.match(
      listed.find((l) => l.id === lab.id),
      { owned: false, namespaces: lab.namespaces.sort() },
      'listed as stale',
    );
    t.match(
      listed.find((l) => l.id === own.id),
      { owned: true },
      'a live lab is listed as owned',
    );
    const swept = await sweepLabs({ ids: [lab.id] });
    t.same(
      swept.map((l) => l.id),
      [lab.id],
    );
    const left = await netnsNames();
    t.same(
      lab.namespaces.filter((ns) => left.includes(ns)),
      [],
      'stale namespaces removed',
    );
    t.ok(
      own.namespaces().every((ns) => left.includes(ns)),
      'the live lab is untouched',
    );
    t.ok((await own.probe('x/a', 'y/a', 80, 'TCP')).ok, 'and still works');
  },
);
