// Unprivileged tests of the lab's conventions: addresses, MACs, spec validation and the exact wiring
// commands per namespace (what flanneld and the bridge CNI plugin would program). No kernel, no I/O.
import t from 'tap';
import { podIP6, prefix4, prefix6, vtepMAC } from '../../src/lab/addresses.ts';
import { demoSpec, LabError, nodeSpec, podMAC, validateSpec } from '../../src/lab/index.ts';
import {
  hostLines,
  networkLines,
  nodeBridgeLines,
  nodeLines,
  podAttachLines,
  podLines,
} from '../../src/lab/wiring.ts';

t.test('addresses follow the Flannel and scenario conventions', async (t) => {
  const n1 = nodeSpec(1);
  t.same(n1, {
    index: 1,
    name: 'node1',
    ip4: '198.51.100.1',
    ip6: '2001:db8::1',
    podCIDR4: '10.244.1.0/24',
    podCIDR6: 'fd00:10:244:1::/64',
  });
  t.equal(prefix4(n1.podCIDR4), '10.244.1.');
  t.equal(prefix6(n1.podCIDR6), 'fd00:10:244:1::');
  t.equal(podIP6(n1, 12), 'fd00:10:244:1::c');
  t.equal(podMAC('10.244.1.10'), '0a:58:0a:f4:01:0a', 'as the bridge CNI plugin derives it');
  t.not(vtepMAC(n1, 4), vtepMAC(nodeSpec(2), 4));
  t.throws(() => prefix4('10.244.1.0/16'), { code: 'E_LAB_SPEC' });
  t.throws(() => prefix6('fd00:10:244:1::/48'), { code: 'E_LAB_SPEC' });
  t.throws(() => nodeSpec(0), LabError);
});

t.test(
  'node wiring: cni0, flannel.1 and flannel-v6.1 with a route, neighbour and FDB entry per peer',
  async (t) => {
    const [n1, n2] = [nodeSpec(1), nodeSpec(2)];
    const lines = nodeLines(n1, [n1, n2]);
    t.ok(lines.includes('addr add 10.244.1.1/24 dev cni0'));
    t.ok(lines.includes('addr add 10.244.1.0/32 dev flannel.1'));
    t.match(
      lines.join('\n'),
      /link add flannel\.1 address \S+ type vxlan id 1 local 198\.51\.100\.1 dev eth0 dstport 8472 nolearning/,
    );
    t.ok(lines.includes('route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink'));
    t.ok(lines.includes(`neigh add 10.244.2.0 lladdr ${vtepMAC(n2, 4)} dev flannel.1 nud permanent`));
    t.ok(lines.includes('route add fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel-v6.1 onlink'));
    t.notMatch(lines.join('\n'), /10\.244\.1\.0\/24 via/, 'no overlay route to its own pod CIDR');
    t.same(nodeBridgeLines(n1, [n1, n2]), [
      `fdb add ${vtepMAC(n2, 4)} dev flannel.1 dst 198.51.100.2 self permanent`,
      `fdb add ${vtepMAC(n2, 6)} dev flannel-v6.1 dst 2001:db8::2 self permanent`,
    ]);
    t.same(nodeBridgeLines(n1, [n1]), [], 'a single node has no peers');
    t.match(
      podAttachLines('veth1', 'tglab-x-pod-x_a', '10.244.1.10')[0],
      /peer name eth0 .*address 0a:58:0a:f4:01:0a netns tglab-x-pod-x_a/,
    );
    t.same(podLines(n1, '10.244.1.10', 'fd00:10:244:1::a').slice(-2), [
      'route add 0.0.0.0/0 via 10.244.1.1',
      'route add ::/0 via fd00:10:244:1::1',
    ]);
    const net = networkLines([n1, n2], (n) => `ns${n.index}`, [{ port: 'h1', ns: 'hostns' }]).join('\n');
    t.match(net, /route add 10\.244\.2\.0\/24 via 198\.51\.100\.2/);
    t.match(net, /link add h1 type veth peer name eth0 netns hostns/);
    t.match(net, /addr add 2001:db8:203:0:113::254\/64 dev br0 nodad/, 'the router on the hosts IPv6 net');
    t.same(hostLines({ name: 'backup', ip4: '203.0.113.10', ports: [] }), [
      'link set lo up',
      'addr add 203.0.113.10/24 dev eth0',
      'addr add 2001:db8:203:0:113::10/64 dev eth0 nodad',
      'link set eth0 up',
      'route add 0.0.0.0/0 via 203.0.113.254',
      'route add ::/0 via 2001:db8:203:0:113::254',
    ]);
  },
);

t.test('spec validation names the offending object', async (t) => {
  t.doesNotThrow(() => validateSpec(demoSpec(3, 9)));
  const spec = demoSpec(2, 2);
  t.throws(() => validateSpec({ ...spec, nodes: [...spec.nodes, nodeSpec(1)] }), {
    message: /node index 1 appears twice/,
  });
  t.throws(() => validateSpec({ ...spec, nodes: [{ ...nodeSpec(1), ip4: '10.0.0.1' }] }), {
    code: 'E_LAB_SPEC',
  });
  t.throws(() => validateSpec({ ...spec, hosts: [{ name: 'r', ip4: '203.0.113.254', ports: [] }] }), {
    message: /\.254 is the router/,
  });
  t.throws(() => validateSpec({ ...spec, hosts: [{ name: 'r', ip4: '8.8.8.8', ports: [] }] }), {
    code: 'E_LAB_SPEC',
  });
  t.throws(
    () =>
      validateSpec({ ...spec, hosts: [{ name: 'r', ip4: '203.0.113.9', ip6: '2001:db8::9', ports: [] }] }),
    { message: /host r: ip6 2001:db8::9 is not a usable address in 2001:db8:203::\/64/ },
  );
  t.throws(
    () =>
      validateSpec({
        ...spec,
        hosts: [{ name: 'r', ip4: '203.0.113.9', ip6: '2001:db8:203:0:113::254', ports: [] }],
      }),
    { message: /is the router/ },
  );
  t.throws(() => validateSpec({ nodes: [], pods: [], hosts: [] }), { code: 'E_LAB_SPEC' });
});
