// The Flannel-like wiring as `ip`/`bridge` batch lines and sysctls, one function per namespace kind: pure,
// no I/O, so the exact commands can be read and tested. Must not emit anything for the root namespace.
import {
  gateway4,
  gateway6,
  HOST_NET4_PREFIX,
  HOST_NET6_PREFIX,
  hostAddress6,
  NODE_NET4_PREFIX,
  NODE_NET6_PREFIX,
  podMAC,
  ROUTER,
  vtep4,
  vtep6,
  vtepMAC,
} from './addresses.ts';
import type { HostSpec, NodeSpec } from './types.ts';

/** MTU of pod interfaces: the VXLAN device's (1500 - 50), as Flannel writes it into subnet.env. */
export const POD_MTU = 1450;

const common = {
  'net.ipv4.conf.all.rp_filter': 0,
  'net.ipv4.conf.default.rp_filter': 0,
  // Addresses are usable at once instead of after ~1 s of duplicate address detection.
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
};

export const SYSCTLS = {
  // The underlay router joins nodes and hosts on one bridge and routes between 198.51.100/24, 203.0.113/24 and
  // the pod CIDRs; br_netfilter stays off here so nothing in this namespace filters bridged frames.
  network: {
    ...common,
    'net.ipv4.ip_forward': 1,
    'net.ipv6.conf.all.forwarding': 1,
    'net.bridge.bridge-nf-call-iptables': 0,
    'net.bridge.bridge-nf-call-ip6tables': 0,
    'net.bridge.bridge-nf-call-arptables': 0,
  },
  // As on a Flannel node: routing on, and bridged pod-to-pod frames on cni0 go through the inet hooks
  // (br_netfilter), which is what lets an nftables forward chain see same-node traffic.
  node: {
    ...common,
    'net.ipv4.ip_forward': 1,
    'net.ipv6.conf.all.forwarding': 1,
    'net.bridge.bridge-nf-call-iptables': 1,
    'net.bridge.bridge-nf-call-ip6tables': 1,
  },
  host: common,
  pod: common,
} as const;

/** The network namespace: bridge br0 with the router's addresses, one veth per node and per host. */
export function networkLines(
  nodes: NodeSpec[],
  nodeNs: (n: NodeSpec) => string,
  hosts: { port: string; ns: string }[],
) {
  const lines = [
    'link set lo up',
    'link add br0 type bridge mcast_snooping 0',
    `addr add ${ROUTER.nodeNet4}/${NODE_NET4_PREFIX} dev br0`,
    `addr add ${ROUTER.nodeNet6}/${NODE_NET6_PREFIX} dev br0 nodad`,
    `addr add ${ROUTER.hostNet4}/${HOST_NET4_PREFIX} dev br0`,
    `addr add ${ROUTER.hostNet6}/${HOST_NET6_PREFIX} dev br0 nodad`,
    'link set br0 up',
  ];
  for (const node of nodes) {
    const port = `n${node.index}`;
    lines.push(`link add ${port} type veth peer name eth0 netns ${nodeNs(node)}`);
    lines.push(`link set ${port} master br0 up`);
    // The router knows which node owns which pod CIDR, as a cloud route table or BGP would.
    lines.push(`route add ${node.podCIDR4} via ${node.ip4}`);
    lines.push(`route add ${node.podCIDR6} via ${node.ip6}`);
  }
  for (const host of hosts) lines.push(...hostAttachLines(host.port, host.ns));
  return lines;
}

export function hostAttachLines(port: string, ns: string): string[] {
  return [`link add ${port} type veth peer name eth0 netns ${ns}`, `link set ${port} master br0 up`];
}

/** A node namespace: eth0 on the node network, cni0, flannel.1 (IPv4) and flannel-v6.1 (IPv6) to every peer. */
export function nodeLines(node: NodeSpec, peers: NodeSpec[]): string[] {
  const lines = [
    'link set lo up',
    `addr add ${node.ip4}/${NODE_NET4_PREFIX} dev eth0`,
    `addr add ${node.ip6}/${NODE_NET6_PREFIX} dev eth0 nodad`,
    'link set eth0 up',
    `route add 0.0.0.0/0 via ${ROUTER.nodeNet4}`,
    `route add ::/0 via ${ROUTER.nodeNet6}`,
    'link add cni0 type bridge mcast_snooping 0',
    `addr add ${gateway4(node)}/24 dev cni0`,
    `addr add ${gateway6(node)}/64 dev cni0 nodad`,
    'link set cni0 up',
    `link add flannel.1 address ${vtepMAC(node, 4)} type vxlan id 1 local ${node.ip4} dev eth0 dstport 8472 nolearning`,
    `addr add ${vtep4(node)}/32 dev flannel.1`,
    'link set flannel.1 up',
    `link add flannel-v6.1 address ${vtepMAC(node, 6)} type vxlan id 1 local ${node.ip6} dev eth0 dstport 8472 nolearning`,
    `addr add ${vtep6(node)}/128 dev flannel-v6.1 nodad`,
    'link set flannel-v6.1 up',
  ];
  for (const peer of peers) {
    if (peer.index === node.index) continue;
    // What flanneld programs per remote lease: route via the peer's VTEP address, a permanent neighbour
    // entry for it, and (bridgeLines) the FDB entry that sends that MAC to the peer's underlay address.
    lines.push(`route add ${peer.podCIDR4} via ${vtep4(peer)} dev flannel.1 onlink`);
    lines.push(`neigh add ${vtep4(peer)} lladdr ${vtepMAC(peer, 4)} dev flannel.1 nud permanent`);
    lines.push(`route add ${peer.podCIDR6} via ${vtep6(peer)} dev flannel-v6.1 onlink`);
    lines.push(`neigh add ${vtep6(peer)} lladdr ${vtepMAC(peer, 6)} dev flannel-v6.1 nud permanent`);
  }
  return lines;
}

export function nodeBridgeLines(node: NodeSpec, peers: NodeSpec[]): string[] {
  return peers
    .filter((peer) => peer.index !== node.index)
    .flatMap((peer) => [
      `fdb add ${vtepMAC(peer, 4)} dev flannel.1 dst ${peer.ip4} self permanent`,
      `fdb add ${vtepMAC(peer, 6)} dev flannel-v6.1 dst ${peer.ip6} self permanent`,
    ]);
}

/** In the node namespace: the pod's veth pair, host end on cni0, pod end moved into the pod namespace as eth0. */
export function podAttachLines(veth: string, podNs: string, ip4: string): string[] {
  return [
    `link add ${veth} mtu ${POD_MTU} type veth peer name eth0 mtu ${POD_MTU} address ${podMAC(ip4)} netns ${podNs}`,
    `link set ${veth} master cni0 up`,
  ];
}

/** In the pod namespace: addresses and default routes via the cni0 gateway, as the bridge CNI plugin does. */
export function podLines(node: NodeSpec, ip4: string, ip6: string): string[] {
  return [
    'link set lo up',
    `addr add ${ip4}/24 dev eth0`,
    `addr add ${ip6}/64 dev eth0 nodad`,
    'link set eth0 up',
    `route add 0.0.0.0/0 via ${gateway4(node)}`,
    `route add ::/0 via ${gateway6(node)}`,
  ];
}

/** An outside host: one address per family on the host network, default routes via the underlay router. */
export function hostLines(host: HostSpec): string[] {
  return [
    'link set lo up',
    `addr add ${host.ip4}/${HOST_NET4_PREFIX} dev eth0`,
    `addr add ${hostAddress6(host)}/${HOST_NET6_PREFIX} dev eth0 nodad`,
    'link set eth0 up',
    `route add 0.0.0.0/0 via ${ROUTER.hostNet4}`,
    `route add ::/0 via ${ROUTER.hostNet6}`,
  ];
}
