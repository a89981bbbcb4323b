// Proves that pod traffic crosses the inet forward hook of the node namespace, bridged (same node, via
// br_netfilter) and routed (VXLAN): a drop rule there stops the probe, removing it restores the probe.
// Uses the nft binary inside lab node namespaces only (tests only; the enforcer itself uses netlink).
import t from 'tap';
import type { Lab, ProbeRequest } from '../../src/lab/index.ts';
import { labFor, skipUnlessRoot } from './helpers.ts';

const TABLE = 'tollgate_lab_test';

async function nft(lab: Lab, node: number, script: string): Promise<string> {
  const r = await lab.execNode(node, ['nft', '-f', '-'], { input: script });
  if (r.code !== 0) throw new Error(`nft in node ${node} failed: ${r.stderr}\n${script}`);
  return (await lab.execNode(node, ['nft', 'list', 'ruleset'])).stdout;
}

function dropTable(match: string): string {
  return [
    `table inet ${TABLE} {`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    `    ${match} counter drop`,
    '  }',
    '}',
  ].join('\n');
}

function droppedPackets(ruleset: string): number {
  return Number(/counter packets (\d+)/.exec(ruleset)?.[1] ?? 0);
}

const cases: { name: string; node: number; match: (lab: Lab) => string; probe: ProbeRequest }[] = [
  {
    name: 'same node, bridged, IPv4 TCP',
    node: 1,
    match: (lab) => `ip saddr ${lab.pod('x/a').ip4}`,
    probe: { from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP' },
  },
  {
    name: 'same node, bridged, IPv4 UDP',
    node: 1,
    match: (lab) => `ip daddr ${lab.pod('x/b').ip4} udp dport 81`,
    probe: { from: 'x/a', to: 'x/b', port: 81, protocol: 'UDP' },
  },
  {
    name: 'same node, bridged, IPv6 TCP',
    node: 1,
    match: (lab) => `ip6 saddr ${lab.pod('x/a').ip6}`,
    probe: { from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP', family: 6 },
  },
  {
    name: 'cross node, ingress side (node 2), IPv4 TCP',
    node: 2,
    match: (lab) => `ip saddr ${lab.pod('x/a').ip4} tcp dport 80`,
    probe: { from: 'x/a', to: 'y/a', port: 80, protocol: 'TCP' },
  },
  {
    name: 'cross node, egress side (node 1), IPv4 UDP',
    node: 1,
    match: (lab) => `ip daddr ${lab.pod('y/a').ip4} udp dport 80`,
    probe: { from: 'x/a', to: 'y/a', port: 80, protocol: 'UDP' },
  },
  {
    name: 'cross node, ingress side (node 2), IPv6 TCP',
    node: 2,
    match: (lab) => `ip6 daddr ${lab.pod('y/a').ip6}`,
    probe: { from: 'x/b', to: 'y/a', port: 80, protocol: 'TCP', family: 6 },
  },
];

t.test('a drop in the node inet forward chain stops pod traffic', { skip: skipUnlessRoot }, async (t) => {
  const lab = await labFor(t);
  const probe = (p: ProbeRequest) =>
    lab.probe(p.from, p.to, p.port, p.protocol, { timeoutMs: 1000, family: p.family });
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      t.teardown(() => lab.execNode(c.node, ['nft', 'delete', 'table', 'inet', TABLE]).then(() => {}));
      const before = await probe(c.probe);
      t.ok(before.ok, `passes without the rule: ${before.detail}`);
      const ruleset = await nft(lab, c.node, dropTable(c.match(lab)));
      t.match(ruleset, `table inet ${TABLE}`);
      const blocked = await probe(c.probe);
      t.notOk(blocked.ok, `dropped: ${blocked.detail}`);
      const counted = droppedPackets(
        (await lab.execNode(c.node, ['nft', 'list', 'table', 'inet', TABLE])).stdout,
      );
      t.ok(counted > 0, `the forward rule counted ${counted} dropped packets`);
      await nft(lab, c.node, `delete table inet ${TABLE}`);
      const after = await probe(c.probe);
      t.ok(after.ok, `passes again after the table is deleted: ${after.detail}`);
    });
  }
  // The other node's forward chain does not see same-node traffic of node 1: nothing leaks between nodes.
  await nft(lab, 2, dropTable(`ip saddr ${lab.pod('x/a').ip4}`));
  t.ok((await probe(cases[0]!.probe)).ok, 'a drop on node 2 does not affect node-1-local traffic');
  await nft(lab, 2, `delete table inet ${TABLE}`);
});
