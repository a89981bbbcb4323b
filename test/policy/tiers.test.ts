// The tier evaluator on small clusters (semantics 20-24): each tier's effect, Pass, fail-closed rules,
// the own-node exception, and the explanation chain that `tollgate explain` prints.
import t from 'tap';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { evaluateTiers, explainTierVerdict, priorityTies, type TierVerdict } from '../../src/policy/tiers.ts';
import { endpoint, pod, policy, state } from './builders.ts';
import { cnp } from './cluster-builders.ts';

const pods = () => [
  pod('x/a', { pod: 'a' }),
  pod('x/b', { pod: 'b' }),
  pod('y/a', { pod: 'a' }, { node: 'n2' }),
  pod('y/h', { pod: 'h' }, { hostNetwork: true, node: 'n2' }),
];
const subjectX = { namespaces: { matchLabels: { ns: 'x' } } };
const fromY = [{ namespaces: { matchLabels: { ns: 'y' } } }];
const toY = [{ namespaces: { matchLabels: { ns: 'y' } } }];

function world(cnps: ReturnType<typeof cnp>[], nps: ReturnType<typeof policy>[] = []) {
  const s = state({ pods: pods(), policies: nps });
  return new ClusterIndex({ ...s, clusterPolicies: cnps.map(normalizeClusterPolicy) });
}

function probe(index: ClusterIndex, from: string, to: string, port = 80, protocol = 'TCP') {
  const flow = { from: endpoint(index, from), to: endpoint(index, to), protocol, port };
  const verdict: TierVerdict = evaluateTiers(index, flow);
  return { verdict, text: explainTierVerdict(index, flow, verdict) };
}

const denyIngressX = policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] });
const allowIngressX = policy('x/allow', { podSelector: {}, ingress: [{}] });

t.test(
  'point 20: Admin Deny beats a NetworkPolicy allow; Admin Accept beats a NetworkPolicy deny',
  async (t) => {
    const deny = world(
      [
        cnp('guard', {
          tier: 'Admin',
          priority: 1,
          subject: subjectX,
          ingress: [{ action: 'Deny', from: fromY }],
        }),
      ],
      [allowIngressX],
    );
    t.equal(probe(deny, 'y/a', 'x/a').verdict.allowed, false);
    t.equal(probe(deny, 'x/b', 'x/a').verdict.allowed, true, 'a peer the rule does not name is unaffected');
    const accept = world(
      [
        cnp('open', {
          tier: 'Admin',
          priority: 1,
          subject: subjectX,
          ingress: [{ action: 'Accept', from: fromY }],
        }),
      ],
      [denyIngressX],
    );
    const r = probe(accept, 'y/a', 'x/a');
    t.equal(r.verdict.allowed, true);
    t.equal(r.verdict.ingress?.decidedBy, 'Admin');
    t.equal(probe(accept, 'x/b', 'x/a').verdict.allowed, false, 'the NetworkPolicy still denies the rest');
  },
);

t.test('point 20/21: Pass goes to the NetworkPolicy tier, which decides when it isolates', async (t) => {
  const cnps = [
    cnp('guard', {
      tier: 'Admin',
      priority: 1,
      subject: subjectX,
      ingress: [
        { action: 'Deny', from: fromY, protocols: [{ tcp: { destinationPort: { number: 81 } } }] },
        { name: 'to-np', action: 'Pass', from: fromY },
      ],
    }),
    cnp('later', {
      tier: 'Admin',
      priority: 2,
      subject: subjectX,
      ingress: [{ action: 'Deny', from: fromY }],
    }),
  ];
  const r = probe(world(cnps, [allowIngressX]), 'y/a', 'x/a');
  t.equal(r.verdict.allowed, true, 'Pass skips the later Admin Deny');
  t.equal(r.verdict.ingress?.decidedBy, 'NetworkPolicy');
  t.match(
    r.text,
    /ingress of x\/a: \[Admin\] guard rule 1 \(to-np\) \(from\[0\]\) Pass → \[NetworkPolicy\] x\/allow allows \(ingress\[0\]\): allowed/,
  );
  t.equal(
    probe(world(cnps, [allowIngressX]), 'y/a', 'x/a', 81).verdict.allowed,
    false,
    'rule order: the Deny above wins on 81',
  );
  t.equal(probe(world(cnps, [denyIngressX]), 'y/a', 'x/a').verdict.allowed, false);
});

t.test(
  'point 21/22: Baseline applies only where no NetworkPolicy isolates; Pass in Baseline allows',
  async (t) => {
    const base = [
      cnp('floor', {
        tier: 'Baseline',
        priority: 1,
        subject: subjectX,
        ingress: [{ action: 'Deny', from: fromY }],
      }),
    ];
    const r = probe(world(base), 'y/a', 'x/a');
    t.equal(r.verdict.allowed, false);
    t.match(
      r.text,
      /\[Admin\] no rule matches → \[NetworkPolicy\] not isolated → \[Baseline\] floor rule 0 \(from\[0\]\) Deny: denied/,
    );
    t.equal(
      probe(world(base, [allowIngressX]), 'y/a', 'x/a').verdict.allowed,
      true,
      'the NetworkPolicy overrides Baseline',
    );
    const pass = [
      cnp('a-pass', {
        tier: 'Baseline',
        priority: 1,
        subject: subjectX,
        ingress: [{ action: 'Pass', from: fromY }],
      }),
      ...base,
    ];
    const p = probe(world(pass), 'y/a', 'x/a');
    t.equal(p.verdict.allowed, true, 'Pass skips the rest of Baseline: default allow');
    t.match(p.text, /Pass → allowed by default: allowed/);
  },
);

t.test('point 24: egress and ingress each go through all tiers; both must allow', async (t) => {
  const cnps = [
    cnp('out', { tier: 'Admin', priority: 1, subject: subjectX, egress: [{ action: 'Accept', to: toY }] }),
    cnp('in', {
      tier: 'Baseline',
      priority: 1,
      subject: { namespaces: { matchLabels: { ns: 'y' } } },
      ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }],
    }),
  ];
  const r = probe(world(cnps), 'x/a', 'y/a');
  t.equal(r.verdict.egress?.allowed, true);
  t.equal(r.verdict.ingress?.allowed, false, 'an egress Accept does not open the destination');
  t.equal(r.verdict.allowed, false);
});

t.test(
  'point 22: networks match pod addresses too; nodes match node addresses; own node always passes',
  async (t) => {
    const cnps = [
      cnp('nets', {
        tier: 'Admin',
        priority: 1,
        subject: subjectX,
        egress: [
          { action: 'Deny', to: [{ networks: ['10.244.2.0/24'] }] },
          { action: 'Deny', to: [{ nodes: {} }] },
        ],
      }),
    ];
    const index = world(cnps);
    t.equal(probe(index, 'x/a', 'y/a').verdict.allowed, false, 'a pod address inside the network');
    t.equal(probe(index, 'x/a', '@n2').verdict.allowed, false, 'another node');
    const own = probe(index, 'x/a', '@n1');
    t.equal(own.verdict.allowed, true, 'point 12: the own node, whatever the nodes rule says');
    t.equal(own.verdict.reason, 'own-node');
    // A hostNetwork pod's address is its node's: never a subject or a pod peer.
    const hn = world([
      cnp('all', {
        tier: 'Admin',
        priority: 1,
        subject: { namespaces: {} },
        ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }],
      }),
    ]);
    t.equal(probe(hn, 'x/a', 'y/a').verdict.allowed, false);
    t.equal(probe(hn, '@n2', 'x/a').verdict.allowed, true, 'node traffic is not a pod peer');
  },
);

t.test(
  'point 23: named ports resolve on the destination pod; ranges are inclusive; no ICMP with protocols',
  async (t) => {
    const cnps = [
      cnp('ports', {
        tier: 'Admin',
        priority: 1,
        subject: subjectX,
        ingress: [
          {
            action: 'Accept',
            from: fromY,
            protocols: [
              { destinationNamedPort: 'http' },
              { udp: { destinationPort: { range: { start: 50, end: 60 } } } },
            ],
          },
          { action: 'Deny', from: fromY },
        ],
      }),
    ];
    const index = world(cnps);
    t.equal(probe(index, 'y/a', 'x/a', 80).verdict.allowed, true, 'http is 80/TCP on x/a');
    t.equal(probe(index, 'y/a', 'x/a', 81).verdict.allowed, false);
    t.equal(probe(index, 'y/a', 'x/a', 60, 'UDP').verdict.allowed, true, 'range end included');
    t.equal(probe(index, 'y/a', 'x/a', 61, 'UDP').verdict.allowed, false);
    t.equal(
      probe(index, 'y/a', 'x/a', 0, 'ICMP').verdict.allowed,
      false,
      'ICMP falls to the Deny without protocols',
    );
  },
);

t.test('an invalid rule fails closed: Accept matches nothing, Deny and Pass deny everything', async (t) => {
  const accept = world(
    [
      cnp('bad', {
        tier: 'Admin',
        priority: 1,
        subject: subjectX,
        ingress: [{ action: 'Accept', from: [{}] }],
      }),
    ],
    [denyIngressX],
  );
  t.equal(probe(accept, 'y/a', 'x/a').verdict.allowed, false);
  const pass = world(
    [
      cnp('bad', {
        tier: 'Admin',
        priority: 1,
        subject: subjectX,
        ingress: [{ action: 'Pass', from: [{}] }],
      }),
    ],
    [allowIngressX],
  );
  const r = probe(pass, 'y/a', 'x/a');
  t.equal(r.verdict.allowed, false);
  t.match(r.text, /\[Admin\] bad rule 0 is invalid, fails closed: Deny/);
});

t.test('without ClusterNetworkPolicies the explanation is the NetworkPolicy one, unchanged', async (t) => {
  const index = world([], [denyIngressX]);
  t.match(probe(index, 'y/a', 'x/a').text, /ingress of x\/a: isolated by x\/deny; no rule allows it, denied/);
});

t.test('point 24: same tier and priority with different actions is reported; ties go by name', async (t) => {
  const cnps = [
    cnp('b-deny', {
      tier: 'Admin',
      priority: 5,
      subject: subjectX,
      ingress: [{ action: 'Deny', from: fromY }],
    }),
    cnp('a-accept', {
      tier: 'Admin',
      priority: 5,
      subject: subjectX,
      ingress: [{ action: 'Accept', from: fromY }],
    }),
    cnp('c-deny', {
      tier: 'Baseline',
      priority: 5,
      subject: subjectX,
      ingress: [{ action: 'Deny', from: fromY }],
    }),
  ];
  const issues = priorityTies(cnps.map(normalizeClusterPolicy));
  t.equal(issues.length, 1);
  t.match(issues[0], {
    object: 'ClusterNetworkPolicy b-deny',
    field: 'spec.priority',
    message: /a-accept.*ingress.*by name/,
  });
  t.equal(probe(world(cnps), 'y/a', 'x/a').verdict.allowed, true, 'a-accept comes first by name');
});
