// ClusterNetworkPolicy normalization (semantics 20-23): fields as upstream v1alpha2 names them, each
// problem reported naming the object and the field, a bad rule kept and marked invalid (fail closed).
import t from 'tap';
import { normalizeClusterPolicy } from '../../src/policy/cluster-normalize.ts';
import { cnp } from './cluster-builders.ts';

const base = { tier: 'Admin', priority: 10, subject: { namespaces: {} } };
const ingress = (rule: Record<string, unknown>) => cnp('guard', { ...base, ingress: [rule] });
const egress = (rule: Record<string, unknown>) => cnp('guard', { ...base, egress: [rule] });
const fromAll = [{ namespaces: {} }];

t.test('a full policy normalizes to the model (point 20, 22, 23)', async (t) => {
  const p = normalizeClusterPolicy(
    cnp('guard', {
      tier: 'Baseline',
      priority: 7,
      subject: {
        pods: { namespaceSelector: { matchLabels: { ns: 'x' } }, podSelector: { matchLabels: { pod: 'a' } } },
      },
      ingress: [
        {
          name: 'web',
          action: 'Accept',
          from: [{ pods: { podSelector: {} } }],
          protocols: [{ destinationNamedPort: 'http' }],
        },
      ],
      egress: [
        {
          action: 'Pass',
          to: [{ networks: ['10.0.0.12/8', 'fd00::/8'] }, { nodes: { matchLabels: { role: 'infra' } } }],
          protocols: [
            { tcp: { destinationPort: { number: 80 } } },
            { udp: { destinationPort: { range: { start: 5000, end: 5010 } } } },
            { sctp: { destinationPort: { number: 9003 } } },
          ],
        },
      ],
    }),
  );
  t.same(p.issues, []);
  t.equal(p.tier, 'Baseline');
  t.equal(p.priority, 7);
  t.same(p.subject, {
    kind: 'pods',
    namespaces: { matchLabels: { ns: 'x' }, matchExpressions: [] },
    pods: { matchLabels: { pod: 'a' }, matchExpressions: [] },
  });
  t.same(p.ingress[0], {
    index: 0,
    name: 'web',
    action: 'Accept',
    peers: [
      {
        kind: 'pods',
        namespaces: { matchLabels: {}, matchExpressions: [] },
        pods: { matchLabels: {}, matchExpressions: [] },
      },
    ],
    ports: [{ kind: 'named', name: 'http' }],
    invalid: false,
  });
  const rule = p.egress[0]!;
  t.equal(rule.action, 'Pass');
  t.same(rule.peers[0], {
    kind: 'networks',
    cidrs: ['10.0.0.0/8', 'fd00::/8'],
    ranges: rule.peers[0]!.kind === 'networks' ? rule.peers[0]!.ranges : [],
  });
  t.equal(rule.peers[1]!.kind, 'nodes');
  t.same(rule.ports, [
    { kind: 'port', protocol: 'TCP', first: 80, last: 80 },
    { kind: 'port', protocol: 'UDP', first: 5000, last: 5010 },
    { kind: 'port', protocol: 'SCTP', first: 9003, last: 9003 },
  ]);
  t.ok(Object.isFrozen(p) && Object.isFrozen(p.egress[0]!.ports), 'deeply readonly');
  t.throws(() => {
    (p.egress as unknown as unknown[]).push(1);
  });
});

t.test('no rules for a direction: that direction is not affected (point 22)', async (t) => {
  const p = normalizeClusterPolicy(cnp('x', base));
  t.same([p.ingress, p.egress, p.issues], [[], [], []]);
});

// [what, object, field, message, rule invalid?]
const invalid: [string, ReturnType<typeof cnp>, string, RegExp][] = [
  ['missing name', { ...cnp('', base) }, 'metadata.name', /required/],
  [
    'unknown tier',
    cnp('guard', { ...base, tier: 'Developer' }),
    'spec.tier',
    /not one of Admin, Baseline.*fails closed/,
  ],
  ['priority above 1000', cnp('guard', { ...base, priority: 1001 }), 'spec.priority', /0 to 1000/],
  ['priority not an integer', cnp('guard', { ...base, priority: '5' }), 'spec.priority', /0 to 1000/],
  ['no subject', cnp('guard', { tier: 'Admin', priority: 1 }), 'spec.subject', /required/],
  [
    'two subjects',
    cnp('guard', { ...base, subject: { namespaces: {}, pods: { podSelector: {} } } }),
    'spec.subject',
    /exactly one/,
  ],
  [
    'subject pods without podSelector',
    cnp('guard', { ...base, subject: { pods: {} } }),
    'spec.subject.pods.podSelector',
    /required/,
  ],
  [
    'bad subject selector',
    cnp('guard', { ...base, subject: { namespaces: { matchExpressions: [{ key: 'a', operator: 'Is' }] } } }),
    'spec.subject.namespaces.matchExpressions[0].operator',
    /not one of/,
  ],
  [
    'unknown action',
    ingress({ action: 'Allow', from: fromAll }),
    'spec.ingress[0].action',
    /'Allow' is not one of Accept, Deny, Pass/,
  ],
  ['no from', ingress({ action: 'Deny' }), 'spec.ingress[0].from', /at least one peer.*denies everything/],
  [
    'empty to',
    egress({ action: 'Accept', to: [] }),
    'spec.egress[0].to',
    /at least one peer.*matches nothing/,
  ],
  [
    'empty peer',
    ingress({ action: 'Deny', from: [{}] }),
    'spec.ingress[0].from[0]',
    /exactly one of namespaces, pods \(has: none\)/,
  ],
  [
    'two kinds in one peer',
    ingress({ action: 'Deny', from: [{ namespaces: {}, pods: { podSelector: {} } }] }),
    'spec.ingress[0].from[0]',
    /exactly one/,
  ],
  [
    'networks in ingress',
    ingress({ action: 'Deny', from: [{ networks: ['10.0.0.0/8'] }] }),
    'spec.ingress[0].from[0]',
    /exactly one of namespaces, pods \(has: networks\)/,
  ],
  [
    'nodes in ingress',
    ingress({ action: 'Deny', from: [{ nodes: {} }] }),
    'spec.ingress[0].from[0]',
    /has: nodes/,
  ],
  [
    'domain names',
    egress({ action: 'Accept', to: [{ domainNames: ['kubernetes.io'] }] }),
    'spec.egress[0].to[0].domainNames',
    /not supported.*kernel.*matches nothing/,
  ],
  [
    'bad CIDR',
    egress({ action: 'Deny', to: [{ networks: ['10.0.0.300/8'] }] }),
    'spec.egress[0].to[0].networks[0]',
    /valid IPv4 or IPv6/,
  ],
  [
    'empty networks',
    egress({ action: 'Deny', to: [{ networks: [] }] }),
    'spec.egress[0].to[0].networks',
    /non-empty list of CIDRs; this Deny rule denies everything/,
  ],
  [
    'peer pods without podSelector',
    ingress({ action: 'Deny', from: [{ pods: { namespaceSelector: {} } }] }),
    'spec.ingress[0].from[0].pods.podSelector',
    /required/,
  ],
  [
    'empty protocols',
    ingress({ action: 'Deny', from: fromAll, protocols: [] }),
    'spec.ingress[0].protocols',
    /non-empty/,
  ],
  [
    'two protocols in one entry',
    ingress({
      action: 'Deny',
      from: fromAll,
      protocols: [{ tcp: { destinationPort: { number: 1 } }, udp: { destinationPort: { number: 1 } } }],
    }),
    'spec.ingress[0].protocols[0]',
    /exactly one of tcp, udp, sctp, destinationNamedPort/,
  ],
  [
    'tcp without port',
    ingress({ action: 'Deny', from: fromAll, protocols: [{ tcp: {} }] }),
    'spec.ingress[0].protocols[0].tcp.destinationPort',
    /exactly one of number, range/,
  ],
  [
    'port 0',
    ingress({ action: 'Deny', from: fromAll, protocols: [{ tcp: { destinationPort: { number: 0 } } }] }),
    'spec.ingress[0].protocols[0].tcp.destinationPort.number',
    /1-65535/,
  ],
  [
    'range start = end',
    ingress({
      action: 'Deny',
      from: fromAll,
      protocols: [{ udp: { destinationPort: { range: { start: 80, end: 80 } } } }],
    }),
    'spec.ingress[0].protocols[0].udp.destinationPort.range',
    /less than end/,
  ],
  [
    'range end missing',
    ingress({
      action: 'Deny',
      from: fromAll,
      protocols: [{ sctp: { destinationPort: { range: { start: 80 } } } }],
    }),
    'spec.ingress[0].protocols[0].sctp.destinationPort.range.end',
    /1-65535/,
  ],
  [
    'bad port name',
    ingress({ action: 'Deny', from: fromAll, protocols: [{ destinationNamedPort: 'HTTP' }] }),
    'spec.ingress[0].protocols[0].destinationNamedPort',
    /valid port name/,
  ],
  [
    'named port to networks',
    egress({
      action: 'Accept',
      to: [{ networks: ['10.0.0.0/8'] }],
      protocols: [{ destinationNamedPort: 'http' }],
    }),
    'spec.egress[0].protocols[0].destinationNamedPort',
    /networks peer to\[0\]/,
  ],
  [
    'named port to nodes',
    egress({
      action: 'Deny',
      to: [{ pods: { podSelector: {} } }, { nodes: {} }],
      protocols: [{ destinationNamedPort: 'http' }],
    }),
    'spec.egress[0].protocols[0].destinationNamedPort',
    /nodes peer to\[1\]/,
  ],
  [
    'rules not a list',
    cnp('guard', { ...base, ingress: { action: 'Deny' } }),
    'spec.ingress',
    /list of rules.*denies everything/,
  ],
];

invalid.push(
  [
    'another apiVersion',
    {
      ...cnp('guard', { ...base, ingress: [{ action: 'Accept', from: fromAll }] }),
      apiVersion: 'policy.networking.k8s.io/v1beta1',
    },
    'apiVersion',
    /is not policy.networking.k8s.io\/v1alpha2; every rule of the policy fails closed/,
  ],
  [
    'a namespace',
    { ...cnp('guard', base), metadata: { name: 'guard', namespace: 'x' } as { name: string } },
    'metadata.namespace',
    /cluster-scoped/,
  ],
);

for (const [what, raw, field, message] of invalid) {
  t.test(`invalid: ${what}`, async (t) => {
    const p = normalizeClusterPolicy(raw);
    const issue = p.issues.find((i) => i.field === field);
    t.ok(issue, `an issue names ${field}: ${JSON.stringify(p.issues)}`);
    t.match(issue?.message, message);
    t.equal(issue?.object, `ClusterNetworkPolicy ${raw.metadata.name || '<no name>'}`);
    if (field.startsWith('spec.ingress') || field.startsWith('spec.egress')) {
      const rules = [...p.ingress, ...p.egress];
      t.ok(rules.length > 0 && rules.every((r) => r.invalid), 'the rule is kept and marked invalid');
    }
  });
}

t.test('a policy that cannot be placed: every rule fails closed, the subject becomes everyone', async (t) => {
  const p = normalizeClusterPolicy(
    cnp('guard', {
      tier: 'Admin',
      priority: 5,
      subject: { bogus: {} },
      ingress: [{ action: 'Accept', from: fromAll }],
    }),
  );
  t.same(p.subject, { kind: 'namespaces', namespaces: { matchLabels: {}, matchExpressions: [] } });
  t.ok(p.ingress[0]!.invalid);
  t.match(p.issues[0]!.message, /taken as every pod of the cluster/);
});

t.test('a bad peer makes only its rule invalid; the other rules stand', async (t) => {
  const p = normalizeClusterPolicy(
    cnp('guard', {
      ...base,
      ingress: [
        { action: 'Deny', from: [{ namespaces: {} }, {}] },
        { action: 'Accept', from: fromAll },
      ],
    }),
  );
  t.same(
    p.ingress.map((r) => r.invalid),
    [true, false],
  );
  t.equal(p.ingress[0]!.peers.length, 1, 'the good peer is kept (for explanations)');
});
