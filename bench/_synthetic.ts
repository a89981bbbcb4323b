// The synthetic cluster the benchmarks share: a NetworkPolicy mix of four shapes in turn (pod-selector
// ingress, namespace-selector ingress on a named port, ipBlock with except, ingress+egress with named
// ports), and the agent benchmark's pods, namespaces and nodes (also compiled offline by the tests of
// large tables). Raw API objects only: nothing here runs or normalizes them.
export function syntheticPolicy(
  p: number,
  namespaces: number,
): { metadata: { name: string; namespace: string }; spec: Record<string, unknown> } {
  const spec: Record<string, unknown> = { podSelector: { matchLabels: { app: `app${p % 40}` } } };
  const shape = p % 4;
  if (shape === 0)
    spec.ingress = [
      {
        from: [{ podSelector: { matchLabels: { tier: `tier${p % 5}` } } }],
        ports: [{ port: 8000 + (p % 3) }],
      },
    ];
  if (shape === 1)
    spec.ingress = [
      { from: [{ namespaceSelector: { matchLabels: { team: `t${p % 7}` } } }], ports: [{ port: 'http' }] },
    ];
  if (shape === 2)
    spec.ingress = [
      { from: [{ ipBlock: { cidr: `203.0.${p % 256}.0/24`, except: [`203.0.${p % 256}.128/25`] } }] },
    ];
  if (shape === 3) {
    spec.policyTypes = ['Ingress', 'Egress'];
    spec.ingress = [
      { from: [{ namespaceSelector: {}, podSelector: { matchLabels: { tier: `tier${p % 5}` } } }] },
    ];
    spec.egress = [
      {
        to: [{ podSelector: { matchLabels: { app: `app${(p + 1) % 40}` } } }],
        ports: [{ port: 'http' }, { port: 53, protocol: 'UDP' }],
      },
    ];
  }
  return { metadata: { name: `np${p}`, namespace: `ns${p % namespaces}` }, spec };
}

export const NAMESPACES = 50;
export const NODES = Number(process.env.BENCH_NODES ?? 50);

// Pod i runs on node i % NODES in namespace floor(i / NODES) % NAMESPACES: namespaces span nodes.
const nodeOf = (i: number) => i % NODES;
const nsOf = (i: number) => Math.floor(i / NODES) % NAMESPACES;
/** Node n's pod CIDR is 10.(244 + n / 256).(n % 256).0/24: more than 256 nodes stay valid. */
const subnet = (n: number) => `10.${244 + Math.floor(n / 256)}.${n % 256}`;
/** Pod addresses of a node run from .10 up, then on into the next /24 of the node's /16 block. */
export const ipOf = (i: number) => {
  const k = 10 + Math.floor(i / NODES);
  return k < 256 ? `${subnet(nodeOf(i))}.${k}` : `10.${100 + (k >> 8)}.${nodeOf(i) % 256}.${k & 255}`;
};

export function podObject(i: number, labels: Record<string, string>) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod${i}`, namespace: `ns${nsOf(i)}`, labels },
    spec: {
      nodeName: `node${nodeOf(i)}`,
      containers: [
        { name: 'c', image: 'x', ports: [{ name: 'http', containerPort: 8000 + (i % 3), protocol: 'TCP' }] },
      ],
    },
    status: { phase: 'Running', podIP: ipOf(i), podIPs: [{ ip: ipOf(i) }] },
  };
}

export const podLabels = (i: number) => ({ app: `app${i % 40}`, tier: `tier${i % 5}` });

export function policyObject(p: number) {
  // The first policy of every namespace lets in pods labelled role=peer: the agent benchmark's
  // label-change samples toggle that label on remote pods, which must change the peer sets of node0.
  if (p < NAMESPACES) {
    return {
      metadata: { name: `np${p}`, namespace: `ns${p}` },
      spec: { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'peer' } } }] }] },
    };
  }
  return syntheticPolicy(p, NAMESPACES);
}

/** The whole cluster as raw API objects: namespaces, nodes, pods, policies. */
export function syntheticCluster(pods: number, policies: number) {
  return {
    namespaces: Array.from({ length: NAMESPACES }, (_, n) => ({
      metadata: { name: `ns${n}`, labels: { team: `t${n % 7}` } },
    })),
    nodes: Array.from({ length: NODES }, (_, n) => ({
      metadata: { name: `node${n}` },
      spec: { podCIDRs: [`${subnet(n)}.0/24`] },
      status: {
        addresses: [{ type: 'InternalIP', address: `192.0.${2 + Math.floor(n / 250)}.${(n % 250) + 1}` }],
      },
    })),
    pods: Array.from({ length: pods }, (_, i) => podObject(i, podLabels(i))),
    policies: Array.from({ length: policies }, (_, p) => policyObject(p)),
  };
}

/** The address of peer `i` of widePolicy. */
export const widePeer = (i: number) => `198.${18 + (i >> 15)}.${(i >> 7) & 255}.${(i & 127) * 2}`;

/**
 * One tenant policy that lets `peers` single addresses (every other address of 198.18.0.0/15, so none
 * merge) reach `ports` TCP ports (every other port from 20000) of the pods labelled app=wide: the shape
 * whose fused peer.proto.port set is peers x ports elements.
 */
export function widePolicy(peers: number, ports: number, namespace = 'ns0') {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `wide-${peers}x${ports}`, namespace },
    spec: {
      podSelector: { matchLabels: { app: 'wide' } },
      ingress: [
        {
          from: Array.from({ length: peers }, (_, i) => ({ ipBlock: { cidr: `${widePeer(i)}/32` } })),
          ports: Array.from({ length: ports }, (_, i) => ({ protocol: 'TCP', port: 20000 + 2 * i })),
        },
      ],
    },
  };
}
