// Invalid NetworkPolicies: each problem is reported naming the policy and the field, the bad rule allows
// nothing (fail closed), and the other rules and policies still count.
import t from 'tap';
import { normalizePolicy } from '../../src/policy/normalize.ts';
import { allowed, cluster, pod, policy } from './builders.ts';

const pods = () => [pod('x/a', { pod: 'a' }), pod('x/b', { pod: 'b' }), pod('y/c', { pod: 'c' })];

const invalid: [string, object, string, RegExp][] = [
  [
    'bad CIDR',
    { from: [{ ipBlock: { cidr: '10.0.0.300/8' } }] },
    'spec.ingress[0].from[0].ipBlock.cidr',
    /valid IPv4 or IPv6/,
  ],
  [
    'CIDR without prefix',
    { from: [{ ipBlock: { cidr: '10.0.0.0' } }] },
    'spec.ingress[0].from[0].ipBlock.cidr',
    /not a CIDR/,
  ],
  [
    'prefix too long',
    { from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] },
    'spec.ingress[0].from[0].ipBlock.cidr',
    /prefix length/,
  ],
  [
    'except outside its cidr',
    { from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] },
    'spec.ingress[0].from[0].ipBlock.except[0]',
    /not strictly inside/,
  ],
  [
    'except equal to its cidr',
    { from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] } }] },
    'spec.ingress[0].from[0].ipBlock.except[0]',
    /not strictly inside/,
  ],
  [
    'except of the other family',
    { from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['fd00::/64'] } }] },
    'spec.ingress[0].from[0].ipBlock.except[0]',
    /not strictly inside/,
  ],
  [
    'endPort without a numeric port',
    { ports: [{ port: 'http', endPort: 90 }] },
    'spec.ingress[0].ports[0].endPort',
    /numeric port/,
  ],
  [
    'endPort without any port',
    { ports: [{ endPort: 90 }] },
    'spec.ingress[0].ports[0].endPort',
    /numeric port/,
  ],
  [
    'endPort below port',
    { ports: [{ port: 90, endPort: 80 }] },
    'spec.ingress[0].ports[0].endPort',
    />= port 90/,
  ],
  [
    'unknown protocol',
    { ports: [{ protocol: 'ICMP', port: 1 }] },
    'spec.ingress[0].ports[0].protocol',
    /unknown protocol 'ICMP'/,
  ],
  ['port out of range', { ports: [{ port: 70000 }] }, 'spec.ingress[0].ports[0].port', /not a port number/],
  [
    'invalid port name',
    { ports: [{ port: 'Not_A_Name' }] },
    'spec.ingress[0].ports[0].port',
    /valid port name/,
  ],
  ['empty peer', { from: [{}] }, 'spec.ingress[0].from[0]', /empty peer/],
  [
    'ipBlock with a selector',
    { from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] },
    'spec.ingress[0].from[0]',
    /cannot be combined/,
  ],
  [
    'bad selector operator',
    { from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } }] },
    'spec.ingress[0].from[0].podSelector.matchExpressions[0].operator',
    /not one of/,
  ],
  [
    'In without values',
    { from: [{ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] } }] },
    'spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values',
    /non-empty/,
  ],
];

for (const [name, rule, field, message] of invalid) {
  t.test(`invalid: ${name}`, async (t) => {
    const bad = policy('x/bad', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [rule, { from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
    });
    const normalized = normalizePolicy(bad);
    t.equal(normalized.issues.length, 1, 'one issue');
    const issue = normalized.issues[0]!;
    t.equal(issue.object, 'NetworkPolicy x/bad', 'names the policy');
    t.equal(issue.field, field, 'names the field');
    t.match(issue.message, message);
    t.match(issue.message, /allows nothing/);
    t.equal(normalized.ingress?.[0]?.invalid, true, 'the bad rule is marked');
    t.equal(normalized.ingress?.[1]?.invalid, false, 'the other rule is fine');

    const other = policy('x/other', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ ports: [{ port: 81 }] }],
    });
    const index = cluster({ pods: pods(), policies: [bad, other] });
    t.equal(
      allowed(index, 'y/c -> x/a:80'),
      false,
      'the bad rule allows nothing (fail closed), the pod stays isolated',
    );
    t.equal(allowed(index, 'x/b -> x/a:80'), true, 'the valid rule of the same policy still allows');
    t.equal(allowed(index, 'y/c -> x/a:81'), true, 'another policy still allows');
  });
}

t.test('an invalid pod selector isolates the whole namespace (fail closed)', async (t) => {
  const bad = policy('x/bad', {
    podSelector: { matchExpressions: [{ key: 'pod', operator: 'Bogus' }] },
    ingress: [{}],
  });
  const n = normalizePolicy(bad);
  t.equal(n.podSelectorValid, false);
  t.match(n.issues[0]?.field ?? '', 'spec.podSelector.matchExpressions[0].operator');
  const index = cluster({ pods: pods(), policies: [bad] });
  t.equal(allowed(index, 'y/c -> x/b:80'), true, 'its rules still apply ([{}] allows all)');
  const index2 = cluster({
    pods: pods(),
    policies: [
      policy('x/bad', {
        podSelector: { matchExpressions: [{ key: 'pod', operator: 'Bogus' }] },
        ingress: [],
      }),
    ],
  });
  t.equal(allowed(index2, 'y/c -> x/b:80'), false, 'every pod of x is isolated');
  t.equal(allowed(index2, 'x/a -> y/c:80'), true, 'other namespaces are untouched');
});

t.test('an unknown policyType isolates both directions', async (t) => {
  const n = normalizePolicy(policy('x/p', { podSelector: {}, policyTypes: ['Sideways'] }));
  t.equal(n.issues[0]?.field, 'spec.policyTypes[0]');
  t.ok(n.ingress && n.egress);
});

t.test('defaulting of objects read from files', async (t) => {
  const n = normalizePolicy({
    metadata: { name: 'p' },
    spec: { egress: [{ ports: [{ port: 53, protocol: 'UDP' }, { port: 80 }] }] },
  });
  t.equal(n.namespace, 'default', 'namespace defaults to default');
  t.ok(n.ingress, 'Ingress is always in policyTypes');
  t.ok(n.egress, 'Egress added for a non-empty egress list');
  t.same(
    n.egress?.[0]?.ports?.map((p) => p.protocol),
    ['UDP', 'TCP'],
    'protocol defaults to TCP',
  );
  t.same(n.egress?.[0]?.peers, undefined, 'no to: any peer');
  const masked = normalizePolicy(
    policy('x/m', {
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: '10.10.1.12/24', except: ['10.10.1.130/25'] } }] }],
    }),
  );
  const peer = masked.ingress?.[0]?.peers?.[0];
  t.same(
    peer?.kind === 'ipBlock' ? [peer.cidr, peer.except] : undefined,
    ['10.10.1.0/24', ['10.10.1.128/25']],
    'host bits masked',
  );
});
