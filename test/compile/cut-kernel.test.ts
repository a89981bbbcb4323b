// Kernel test of cut mode's SYN rules (semantics 11, 16) in a throwaway lab: a TCP connection opened
// while the server's node has no table (so conntrack holds no entry for it) sends a mid-stream segment
// after the table is programmed. Cut mode (requireSyn): dropped before any policy, counted by the SYN
// rule; keep mode: picked up by conntrack (loose) and passes, as today. Needs root; namespaces only.
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Lab, nodeSpec } from '../../src/lab/index.ts';
import { scaledMs } from '../../src/lab/load.ts';
import type { ClusterObjects } from '../../src/policy/normalize.ts';
import { nft } from './_kernel.ts';

const here = dirname(fileURLToPath(import.meta.url));
const PORT = 7070;

/** A child in a namespace whose stdout JSON lines can be awaited. */
function child(t: Test, ns: string, script: string, args: string[]) {
  const p: ChildProcess = spawn('ip', ['netns', 'exec', ns, process.execPath, join(here, script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const seen: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: p.stdout! }).on('line', (l) => {
    seen.push(JSON.parse(l));
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  t.teardown(async () => {
    p.stdin!.end();
    p.kill();
    await exited;
  });
  return {
    p,
    /** Resolves true when a line has `key`, false after `ms`. */
    async wait(key: string, ms: number, from = 0): Promise<boolean> {
      const deadline = Date.now() + ms;
      while (!seen.slice(from).some((o) => key in o)) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await new Promise<void>((r) => {
          const timer = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
      return true;
    },
    count: () => seen.length,
    /** The first line with `key`. */
    line: (key: string) => seen.find((o) => key in o),
    send: (line: string) => p.stdin!.write(`${line}\n`),
    stop: async () => {
      p.stdin!.end();
      await exited;
    },
  };
}

t.test('a mid-stream TCP segment without a conntrack entry: cut drops it, keep lets it pass', async (t) => {
  const lab = await Lab.up({
    nodes: [nodeSpec(1), nodeSpec(2)],
    pods: [
      { key: 'x/client', node: 1, hostNetwork: false, ports: [] },
      { key: 'x/server', node: 2, hostNetwork: false, ports: [] },
    ],
    hosts: [],
  });
  t.teardown(() => lab.down());
  const client = lab.pod('x/client');
  const server = lab.pod('x/server');
  const pods = [
    { key: 'x/client', node: 1, ip: client },
    { key: 'x/server', node: 2, ip: server },
  ];
  // No policies: nothing is isolated, so in keep mode every packet passes; cut's rule stands before them.
  const objects: ClusterObjects = {
    namespaces: [{ metadata: { name: 'x' } }],
    nodes: [1, 2].map((i) => {
      const n = nodeSpec(i);
      return {
        metadata: { name: `node${i}` },
        spec: { podCIDR: n.podCIDR4, podCIDRs: [n.podCIDR4, n.podCIDR6] },
        status: { addresses: [{ type: 'InternalIP', address: n.ip4 }] },
      };
    }),
    pods: pods.map((p) => ({
      metadata: { name: p.key.slice(2), namespace: 'x', labels: { app: p.key.slice(2) } },
      spec: { nodeName: `node${p.node}`, containers: [{ name: 'c' }] },
      status: { phase: 'Running', podIP: p.ip.ip4, podIPs: [{ ip: p.ip.ip4 }, { ip: p.ip.ip6 }] },
    })),
    policies: [],
  };
  const nodeNs = lab.nodeNamespace(2);
  const srv = child(t, lab.podNamespace('x/server'), '_tcp-hold.ts', ['server', String(PORT)]);
  t.ok(await srv.wait('listening', scaledMs(60_000)), 'server listening');
  // Two connections opened before the node has a table: the node's conntrack holds no entry for either.
  const connect = async (name: string) => {
    const c = child(t, lab.podNamespace('x/client'), '_tcp-hold.ts', ['client', server.ip4, String(PORT)]);
    t.ok(await c.wait('connected', scaledMs(60_000)), `${name}: connected with no table on the node`);
    const from = c.count();
    c.send('send');
    t.ok(await c.wait('echo', scaledMs(20_000), from), `${name}: echo with no table`);
    return c;
  };
  const a = await connect('a');
  const b = await connect('b');
  const program = async (cut: boolean) => {
    const node = child(t, nodeNs, '_cut-child.ts', [JSON.stringify({ node: 'node2', objects, cut })]);
    t.ok(await node.wait('ready', scaledMs(60_000)), `node programmed (${cut ? 'cut' : 'keep'})`);
    t.same(node.line('ready')?.verified, { drift: false, repaired: false }, 'verify: no drift');
    return node;
  };
  const forward = () => nft(nodeNs, 'list', 'chain', 'inet', 'tollgate', 'forward').stdout;

  // Keep first (it leaves b untouched: b sends nothing while it runs, so still has no entry).
  const keep = await program(false);
  t.notMatch(forward(), /!= syn/, 'keep: no SYN rule');
  let from = a.count();
  a.send('send');
  t.ok(await a.wait('echo', scaledMs(20_000), from), 'keep: the mid-stream segment is picked up and passes');
  await keep.stop();

  const cut = await program(true);
  // nft prints the rule as `ip saddr <cidr> ct state new tcp flags != syn / fin,syn,rst,ack counter ... drop`.
  t.match(forward(), /ct state new tcp flags != syn \/ fin,syn,rst,ack counter/);
  from = b.count();
  b.send('send');
  // Dropped: no echo for a while (the segment and its retransmissions meet the SYN rule). A pass comes
  // within milliseconds (as in keep mode above); the wait is long for a loaded machine.
  t.notOk(await b.wait('echo', scaledMs(3_000), from), 'cut: the mid-stream segment is dropped');
  const packets = [...forward().matchAll(/!= syn \/ fin,syn,rst,ack counter packets (\d+)/g)].map((m) =>
    Number(m[1]),
  );
  t.ok(
    packets.some((n) => n > 0),
    `the SYN rule counted the drops (${packets.join(', ')})`,
  );
  await cut.stop();
});
