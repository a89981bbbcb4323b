// Table-driven cases for every numbered point of ../shared/docs/semantics.md, against the reference
// evaluator. Each case names its point; probes are `FROM -> TO:PORT/PROTO` with the expected verdict.
import t from 'tap';
import { allowed, type ClusterSpec, check, cluster, pod, policy } from './builders.ts';

const basePods = () => [
  pod(
    'x/a',
    { pod: 'a' },
    {
      node: 'n1',
      ports: [
        ['http', 80],
        ['serve-81', 81],
        ['dns', 53, 'UDP'],
      ],
    },
  ),
  pod('x/b', { pod: 'b' }, { node: 'n2' }),
  pod('x/c', { pod: 'c' }, { node: 'n1' }),
  pod('y/a', { pod: 'a' }, { node: 'n2' }),
  pod('y/b', { pod: 'b' }, { node: 'n1' }),
  pod('z/b', { pod: 'b' }, { node: 'n2' }),
];

interface Case {
  point: number;
  name: string;
  spec: Partial<ClusterSpec>;
  /** [probe, expected allowed] */
  probes: [string, boolean][];
}

const denyIngress = (ns: string, podSelector: object = {}) =>
  policy(`${ns}/deny-in`, { podSelector, policyTypes: ['Ingress'] });

const cases: Case[] = [
  // 1. Who a policy selects.
  {
    point: 1,
    name: 'a policy selects pods only in its own namespace',
    spec: { policies: [denyIngress('x', { matchLabels: { pod: 'a' } })] },
    probes: [
      ['x/b -> x/a:80', false],
      ['x/b -> y/a:80', true],
    ],
  },
  {
    point: 1,
    name: 'podSelector {} selects every pod of the namespace, and only those',
    spec: { policies: [denyIngress('x')] },
    probes: [
      ['y/a -> x/a:80', false],
      ['y/a -> x/b:80', false],
      ['y/a -> x/c:80', false],
      ['x/a -> y/b:80', true],
    ],
  },
  // 2. policyTypes defaulting.
  {
    point: 2,
    name: 'an egress-only policy without policyTypes also isolates ingress',
    spec: { policies: [policy('x/p', { podSelector: { matchLabels: { pod: 'a' } }, egress: [{}] })] },
    probes: [
      ['y/a -> x/a:80', false],
      ['x/a -> y/a:80', true],
    ],
  },
  {
    point: 2,
    name: 'egress: [] without policyTypes does not isolate egress',
    spec: { policies: [policy('x/p', { podSelector: { matchLabels: { pod: 'a' } }, egress: [] })] },
    probes: [
      ['x/a -> y/a:80', true],
      ['y/a -> x/a:80', false],
    ],
  },
  {
    point: 2,
    name: 'rules of a direction not listed in policyTypes are ignored',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Ingress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
          egress: [{ to: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
      ],
    },
    probes: [
      ['x/a -> y/a:80', true],
      ['x/b -> x/a:80', true],
      ['x/c -> x/a:80', false],
    ],
  },
  {
    point: 2,
    name: 'policyTypes [Egress] alone does not isolate ingress',
    spec: { policies: [policy('x/p', { podSelector: {}, policyTypes: ['Egress'] })] },
    probes: [
      ['y/a -> x/a:80', true],
      ['x/a -> y/a:80', false],
    ],
  },
  // 3. Independence of directions.
  {
    point: 3,
    name: 'ingress isolation leaves egress open',
    spec: { policies: [denyIngress('x')] },
    probes: [
      ['x/a -> y/a:80', true],
      ['y/a -> x/a:80', false],
    ],
  },
  {
    point: 3,
    name: 'a pod selected only by an ingress policy is not isolated for egress by another pod policy',
    spec: {
      policies: [
        denyIngress('x', { matchLabels: { pod: 'a' } }),
        policy('x/eg', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'] }),
      ],
    },
    probes: [
      ['x/a -> y/a:80', true],
      ['x/b -> y/a:80', false],
      ['y/a -> x/b:80', true],
    ],
  },
  // 4. Empty rule lists vs the empty rule.
  {
    point: 4,
    name: 'ingress: [] allows nothing',
    spec: { policies: [policy('x/p', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] })] },
    probes: [
      ['y/a -> x/a:80', false],
      ['x/b -> x/a:80', false],
      ['203.0.113.9 -> x/a:80', false],
    ],
  },
  {
    point: 4,
    name: 'ingress: [{}] allows every peer, port and protocol, external addresses and ICMP too',
    spec: { policies: [policy('x/p', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{}] })] },
    probes: [
      ['y/a -> x/a:80', true],
      ['203.0.113.9 -> x/a:9999/UDP', true],
      ['y/a -> x/a ICMP', true],
      ['z/b -> x/a:81/SCTP', true],
    ],
  },
  {
    point: 4,
    name: 'egress: [{}] with policyTypes Egress allows everything out',
    spec: { policies: [policy('x/p', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] })] },
    probes: [
      ['x/a -> 203.0.113.9:443', true],
      ['x/a -> y/a ICMP', true],
    ],
  },
  // 5. Inside a rule: peers OR, ports OR, peer AND port; union over rules and policies.
  {
    point: 5,
    name: 'a rule needs a matching peer and a matching port',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }],
        }),
      ],
    },
    probes: [
      ['x/b -> x/a:80', true],
      ['x/b -> x/a:81', false],
      ['x/c -> x/a:80', false],
    ],
  },
  {
    point: 5,
    name: 'empty from means any peer; empty ports means any port of any protocol',
    spec: {
      policies: [
        policy('x/p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [], ports: [] }] }),
      ],
    },
    probes: [
      ['z/b -> x/a:81/UDP', true],
      ['203.0.113.1 -> x/a:22', true],
    ],
  },
  {
    point: 5,
    name: 'the result is the union of every rule of every policy, no order, no deny',
    spec: {
      policies: [
        policy('x/p1', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
        policy('x/p2', {
          podSelector: {},
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }], ports: [{ port: 81 }] }],
        }),
        policy('x/p3', { podSelector: {}, policyTypes: ['Ingress'] }),
      ],
    },
    probes: [
      ['x/b -> x/a:80', true],
      ['x/c -> x/a:81', true],
      ['x/c -> x/a:80', false],
      ['x/b -> x/c:80', false],
    ],
  },
  // 6. Peers.
  {
    point: 6,
    name: 'podSelector alone matches pods of the policy namespace only',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
      ],
    },
    probes: [
      ['x/b -> x/a:80', true],
      ['y/b -> x/a:80', false],
      ['z/b -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'namespaceSelector alone matches every pod of the selected namespaces',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:80', true],
      ['y/b -> x/a:80', true],
      ['x/b -> x/a:80', false],
      ['z/b -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'namespaceSelector {} matches every pod but never an outside address or a node',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ namespaceSelector: {} }] }],
        }),
      ],
    },
    probes: [
      ['z/b -> x/a:80', true],
      ['x/c -> x/a:80', true],
      ['203.0.113.9 -> x/a:80', false],
      ['@n2 -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'podSelector and namespaceSelector in one peer are ANDed',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchLabels: { ns: 'y' } },
                  podSelector: { matchLabels: { pod: 'b' } },
                },
              ],
            },
          ],
        }),
      ],
    },
    probes: [
      ['y/b -> x/a:80', true],
      ['y/a -> x/a:80', false],
      ['x/b -> x/a:80', false],
      ['z/b -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'the same selectors in two peers (extra dash) are ORed',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            {
              from: [
                { namespaceSelector: { matchLabels: { ns: 'y' } } },
                { podSelector: { matchLabels: { pod: 'b' } } },
              ],
            },
          ],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:80', true],
      ['y/b -> x/a:80', true],
      ['x/b -> x/a:80', true],
      ['x/c -> x/a:80', false],
      ['z/b -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'ipBlock: inside cidr and outside every except',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }] }],
        }),
      ],
    },
    probes: [
      ['203.0.113.9 -> x/a:80', true],
      ['203.0.113.200 -> x/a:80', false],
      ['198.51.100.1 -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'an except carves out of its own peer only: another peer still allows the address',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            {
              from: [
                { ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.2.0/24'] } },
                { namespaceSelector: { matchLabels: { ns: 'y' } } },
              ],
            },
          ],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:80', true],
      ['x/b -> x/a:80', false],
      ['y/b -> x/a:80', true],
      ['x/c -> x/a:80', true],
    ],
  },
  {
    point: 6,
    name: 'an except in one policy does not stop another policy from allowing the address',
    spec: {
      policies: [
        policy('x/p1', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.0/28'] } }] }],
        }),
        policy('x/p2', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.8/32' } }] }],
        }),
      ],
    },
    probes: [
      ['203.0.113.8 -> x/a:80', true],
      ['203.0.113.9 -> x/a:80', false],
      ['203.0.113.99 -> x/a:80', true],
    ],
  },
  {
    point: 6,
    name: 'a CIDR with host bits set means its masked network',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.77/24' } }] }],
        }),
      ],
    },
    probes: [
      ['203.0.113.1 -> x/a:80', true],
      ['203.0.114.1 -> x/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'IPv4 blocks never match IPv6 addresses and vice versa',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }],
          egress: [{ to: [{ ipBlock: { cidr: '::/0' } }] }],
          policyTypes: ['Ingress', 'Egress'],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:80', true],
      ['y/a@6 -> x/a@6:80', false],
      ['x/a@6 -> y/a@6:80', true],
      ['x/a -> y/a:80', false],
    ],
  },
  {
    point: 6,
    name: 'matchExpressions In, NotIn, Exists, DoesNotExist all must hold with matchLabels',
    spec: {
      pods: [
        pod('x/t', { pod: 't' }),
        pod('y/s1', { tier: 'web', env: 'prod', team: 'a' }),
        pod('y/s2', { tier: 'web', env: 'dev', team: 'a' }),
        pod('y/s3', { tier: 'db', env: 'prod', team: 'a' }),
        pod('y/s4', { tier: 'web', env: 'prod' }),
        pod('y/s5', { tier: 'web', env: 'prod', team: 'a', legacy: 'yes' }),
        pod('y/s6', { tier: 'web', team: 'a' }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 't' } },
          ingress: [
            {
              from: [
                {
                  namespaceSelector: {},
                  podSelector: {
                    matchLabels: { tier: 'web' },
                    matchExpressions: [
                      { key: 'env', operator: 'NotIn', values: ['dev'] },
                      { key: 'team', operator: 'Exists' },
                      { key: 'legacy', operator: 'DoesNotExist' },
                      { key: 'tier', operator: 'In', values: ['web', 'api'] },
                    ],
                  },
                },
              ],
            },
          ],
        }),
      ],
    },
    // s6 has no env label: NotIn matches a missing key.
    probes: [
      ['y/s1 -> x/t:80', true],
      ['y/s2 -> x/t:80', false],
      ['y/s3 -> x/t:80', false],
      ['y/s4 -> x/t:80', false],
      ['y/s5 -> x/t:80', false],
      ['y/s6 -> x/t:80', true],
    ],
  },
  {
    point: 6,
    name: 'every namespace carries kubernetes.io/metadata.name',
    spec: {
      namespaces: { x: {}, y: {}, z: {} },
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] },
          ],
        }),
      ],
    },
    probes: [
      ['z/b -> x/a:80', true],
      ['y/b -> x/a:80', false],
    ],
  },
  // 8. Ports.
  {
    point: 8,
    name: 'protocol defaults to TCP',
    spec: {
      policies: [
        policy('x/p', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 80 }] }] }),
      ],
    },
    probes: [
      ['y/a -> x/a:80/TCP', true],
      ['y/a -> x/a:80/UDP', false],
    ],
  },
  {
    point: 8,
    name: 'a protocol without port means every port of that protocol',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ ports: [{ protocol: 'UDP' }] }],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:53/UDP', true],
      ['y/a -> x/a:65000/UDP', true],
      ['y/a -> x/a:53/TCP', false],
    ],
  },
  {
    point: 8,
    name: 'endPort makes an inclusive range',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ ports: [{ port: 8000, endPort: 8080 }] }],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:7999', false],
      ['y/a -> x/a:8000', true],
      ['y/a -> x/a:8080', true],
      ['y/a -> x/a:8081', false],
    ],
  },
  {
    point: 8,
    name: 'a rule naming only UDP or SCTP ports still isolates TCP and is never enforced as TCP',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            {
              ports: [
                { protocol: 'UDP', port: 81 },
                { protocol: 'SCTP', port: 80 },
              ],
            },
          ],
        }),
      ],
    },
    probes: [
      ['y/a -> x/a:81/TCP', false],
      ['y/a -> x/a:80/TCP', false],
      ['y/a -> x/a:81/UDP', true],
      ['y/a -> x/a:80/SCTP', true],
    ],
  },
  // 9. Named ports.
  {
    point: 9,
    name: 'ingress named ports resolve on the selected pod; the same name may map to different numbers',
    spec: {
      pods: [
        pod('x/a', { app: 's' }, { ports: [['web', 8080]] }),
        pod('x/b', { app: 's' }, { ports: [['web', 9090]] }),
        pod('y/c', { pod: 'c' }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { app: 's' } },
          ingress: [{ ports: [{ port: 'web' }] }],
        }),
      ],
    },
    probes: [
      ['y/c -> x/a:8080', true],
      ['y/c -> x/a:9090', false],
      ['y/c -> x/b:9090', true],
      ['y/c -> x/b:8080', false],
    ],
  },
  {
    point: 9,
    name: 'a named port needs the protocol to match too',
    spec: {
      pods: [pod('x/a', { pod: 'a' }, { ports: [['dns', 53, 'UDP']] }), pod('y/c', { pod: 'c' })],
      policies: [policy('x/p', { podSelector: {}, ingress: [{ ports: [{ port: 'dns' }] }] })],
    },
    probes: [
      ['y/c -> x/a:53/UDP', false],
      ['y/c -> x/a:53/TCP', false],
    ],
  },
  {
    point: 9,
    name: 'a name the pod does not declare matches nothing but still isolates',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [{ ports: [{ port: 'nope' }] }],
        }),
      ],
    },
    probes: [
      ['y/a -> x/b:80', false],
      ['y/a -> x/a:80', true],
    ],
  },
  {
    point: 9,
    name: 'egress named ports resolve on the contacted peer pod',
    spec: {
      pods: [
        pod('x/a', { pod: 'a' }),
        pod('y/s', { app: 's' }, { ports: [['web', 8080]] }),
        pod('y/t', { app: 's' }, { ports: [['web', 9090]] }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'web' }] }],
        }),
      ],
    },
    probes: [
      ['x/a -> y/s:8080', true],
      ['x/a -> y/s:9090', false],
      ['x/a -> y/t:9090', true],
    ],
  },
  {
    point: 9,
    name: 'a named port never matches an ipBlock destination',
    spec: {
      pods: [pod('x/a', { pod: 'a' }), pod('y/s', { app: 's' }, { ports: [['web', 8080]] })],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [{ port: 'web' }] }],
        }),
      ],
    },
    probes: [
      ['x/a -> 203.0.113.5:8080', false],
      ['x/a -> y/s:8080', false],
    ],
  },
  // 10. Both ends must allow.
  {
    point: 10,
    name: 'pod to pod needs the source egress and the destination ingress',
    spec: {
      policies: [
        policy('x/eg', {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Egress'],
          egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
        }),
        policy('y/in', {
          podSelector: { matchLabels: { pod: 'b' } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }],
        }),
      ],
    },
    probes: [
      ['x/a -> y/a:80', true],
      ['x/a -> y/b:80', false],
      ['z/b -> y/b:80', true],
      ['x/a -> z/b:80', false],
    ],
  },
  // 11. Replies are conntrack's: a new connection the other way is judged on its own.
  {
    point: 11,
    name: 'allowing a -> b says nothing about a new connection b -> a',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: {},
          policyTypes: ['Ingress', 'Egress'],
          egress: [{ to: [{ podSelector: {} }] }],
          ingress: [],
        }),
      ],
    },
    probes: [
      ['x/a -> x/b:80', false],
      ['x/a -> y/a:80', false],
      ['y/a -> x/a:80', false],
    ],
  },
  // 12. A pod and its own node.
  {
    point: 12,
    name: 'traffic between a pod and its own node always passes, whatever the policy',
    spec: { policies: [policy('x/p', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })] },
    probes: [
      ['@n1 -> x/a:80', true],
      ['x/a -> @n1:10250', true],
      ['@n2 -> x/b:80', true],
      ['@n2 -> x/a:80', false],
      ['x/a -> @n2:10250', false],
    ],
  },
  {
    point: 12,
    name: 'a hostNetwork pod on another node is an ordinary external address',
    spec: {
      pods: [
        pod('x/a', { pod: 'a' }, { node: 'n1' }),
        pod('x/h', { pod: 'b' }, { node: 'n2', hostNetwork: true }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
      ],
    },
    probes: [['192.0.2.2 -> x/a:80', false]],
  },
  // 13. hostNetwork, IP-less and terminal pods.
  {
    point: 13,
    name: 'hostNetwork pods are never selected and never match a pod selector',
    spec: {
      pods: [
        pod('x/a', { pod: 'a' }, { node: 'n1' }),
        pod('x/h', { pod: 'a' }, { node: 'n2', hostNetwork: true }),
        pod('x/b', { pod: 'b' }, { node: 'n2' }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }] }],
        }),
      ],
    },
    probes: [
      ['@n2 -> x/a:80', false],
      ['x/b -> @n2:80', true],
      ['x/b -> x/a:80', false],
    ],
  },
  {
    point: 13,
    name: 'a terminal pod is neither target nor peer; a new pod with its IP is judged as itself',
    spec: {
      pods: [
        pod('x/old', { pod: 'b' }, { ip: '10.244.1.250', phase: 'Succeeded' }),
        pod('y/new', { pod: 'other' }, { ip: '10.244.1.250' }),
        pod('x/a', { pod: 'a' }),
        pod('x/gone', { pod: 'a' }, { ip: '10.244.1.251', phase: 'Failed' }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
      ],
    },
    probes: [
      ['10.244.1.250 -> x/a:80', false],
      ['x/a -> 10.244.1.251:80', true],
    ],
  },
  {
    point: 13,
    name: 'a pod without an IP matches no peer selector',
    spec: {
      pods: [
        pod('x/a', { pod: 'a' }),
        pod('x/pending', { pod: 'b' }, { noIp: true }),
        pod('x/b', { pod: 'b' }),
      ],
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
      ],
    },
    probes: [['x/b -> x/a:80', true]],
  },
  // 14. After Service DNAT the verdict depends on the backend pod only.
  {
    point: 14,
    name: 'verdicts are taken on the backend pod address, a ClusterIP is no pod',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
      ],
    },
    probes: [
      ['x/b -> x/a:80', true],
      ['x/c -> x/a:80', false],
      ['x/b -> 10.96.0.10:80', true],
    ],
  },
  // 15. Other protocols.
  {
    point: 15,
    name: 'ICMP is allowed only by rules without ports',
    spec: {
      policies: [
        policy('x/p1', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
        }),
        policy('x/p2', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'c' } } }], ports: [{ protocol: 'TCP' }] }],
        }),
      ],
    },
    probes: [
      ['x/b -> x/a ICMP', true],
      ['x/c -> x/a ICMP', false],
      ['x/c -> x/a:80', true],
      ['y/a -> y/b ICMP', true],
    ],
  },
  // 16. Policy changes are judged on new connections with the current policies (established: dataplane).
  {
    point: 16,
    name: 'a new connection is judged by the policies in force now',
    spec: { policies: [policy('x/p', { podSelector: {}, ingress: [{ ports: [{ port: 81 }] }] })] },
    probes: [
      ['y/a -> x/a:81', true],
      ['y/a -> x/a:80', false],
    ],
  },
  // 18. Dual stack.
  {
    point: 18,
    name: 'rules apply to both address families of a pod',
    spec: {
      policies: [
        policy('x/p', {
          podSelector: { matchLabels: { pod: 'a' } },
          ingress: [
            {
              from: [
                { podSelector: { matchLabels: { pod: 'b' } } },
                { ipBlock: { cidr: '2001:db8:ff::/48' } },
              ],
            },
          ],
        }),
      ],
    },
    probes: [
      ['x/b@6 -> x/a@6:80', true],
      ['x/c@6 -> x/a@6:80', false],
      ['[2001:db8:ff::5] -> x/a@6:80', true],
      ['[2001:db8:fe::5] -> x/a@6:80', false],
    ],
  },
];

for (const c of cases) {
  t.test(`point ${c.point}: ${c.name}`, async (t) => {
    const index = cluster({
      pods: c.spec.pods ?? basePods(),
      policies: c.spec.policies ?? [],
      ...(c.spec.namespaces ? { namespaces: c.spec.namespaces } : {}),
    });
    for (const [probe, expected] of c.probes) {
      const v = check(index, probe);
      t.equal(v.allowed, expected, `${probe} ${expected ? 'allowed' : 'denied'}`);
    }
  });
}

t.test('point 7: selectors are live: labels and pods change who is selected and who is a peer', async (t) => {
  const policies = [
    policy('x/p', {
      podSelector: { matchLabels: { role: 'db' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'api' } } }] }],
    }),
  ];
  const namespaces = { x: {}, y: {} };
  const before = cluster({ namespaces, policies, pods: [pod('x/db', { role: 'db' }), pod('y/api', {})] });
  t.equal(allowed(before, 'y/api -> x/db:80'), false, 'namespace y not labelled yet');
  const nsLabelled = cluster({
    namespaces: { x: {}, y: { team: 'api' } },
    policies,
    pods: [pod('x/db', { role: 'db' }), pod('y/api', {})],
  });
  t.equal(allowed(nsLabelled, 'y/api -> x/db:80'), true, 'namespace label change makes y a peer');
  const podRelabelled = cluster({
    namespaces,
    policies,
    pods: [pod('x/db', { role: 'cache' }), pod('y/api', {})],
  });
  t.equal(allowed(podRelabelled, 'y/api -> x/db:80'), true, 'pod label change unselects the pod');
});

t.test('point 17: a new pod matching an existing policy is isolated as soon as it is known', async (t) => {
  const policies = [
    policy('x/p', { podSelector: { matchLabels: { app: 'new' } }, policyTypes: ['Ingress'] }),
  ];
  const index = cluster({
    policies,
    pods: [pod('x/fresh', { app: 'new' }, { phase: 'Pending' }), pod('y/a', {})],
  });
  t.equal(allowed(index, 'y/a -> x/fresh:80'), false, 'a Pending pod with an IP is already a target');
});

t.test('explanations name the isolating policies and the allowing rule, peer and port', async (t) => {
  const index = cluster({
    pods: basePods(),
    policies: [
      policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] }),
      policy('x/allow', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {},
          {
            from: [
              { podSelector: { matchLabels: { pod: 'c' } } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
            ports: [{ port: 81 }, { port: 80 }],
          },
        ],
      }),
    ],
  });
  const v = check(index, 'x/b -> x/a:80');
  t.same(v.ingress?.isolatedBy.sort(), ['x/allow', 'x/deny']);
  t.same(v.ingress?.allowedBy, {
    policy: 'x/allow',
    direction: 'ingress',
    rule: 0,
    peer: undefined,
    port: undefined,
  });
  const denied = check(index, 'x/a -> x/b:80');
  t.equal(denied.allowed, false);
  t.equal(denied.ingress?.allowedBy, undefined);
  t.same(denied.ingress?.isolatedBy, ['x/deny']);
  t.equal(denied.egress?.isolatedBy.length, 0);
  const index2 = cluster({
    pods: basePods(),
    policies: [
      policy('x/allow', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { pod: 'c' } } },
              { podSelector: { matchLabels: { pod: 'b' } } },
            ],
            ports: [{ port: 81 }, { port: 80 }],
          },
        ],
      }),
    ],
  });
  t.same(check(index2, 'x/b -> x/a:80').ingress?.allowedBy, {
    policy: 'x/allow',
    direction: 'ingress',
    rule: 0,
    peer: 1,
    port: 1,
  });
});
