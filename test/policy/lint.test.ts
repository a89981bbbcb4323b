// tollgate lint on the model: each check finds its mistake in a cluster that has it and stays quiet on the
// same cluster with the mistake fixed; findings name the policy and field and carry a usable fix.
import t from 'tap';
import { type Finding, type LintId, lintCluster, selectorSubset } from '../../src/policy/lint.ts';
import { normalizeSelector } from '../../src/policy/selector.ts';
import { type ClusterSpec, pod, policy, state } from './builders.ts';

const full = { pods: true, namespaces: true };

function lint(spec: ClusterSpec, options = full): Finding[] {
  return lintCluster(state(spec), options).findings;
}
const ids = (findings: Finding[]) => findings.map((f) => `${f.id} ${f.object} ${f.field}`);
const only = (findings: Finding[], id: LintId) => findings.filter((f) => f.id === id);

const dnsPod = pod('kube-system/coredns', { 'k8s-app': 'kube-dns' }, { ports: [['dns', 53, 'UDP']] });
const namespaces = { x: {}, y: { team: 'y' }, 'kube-system': {} };
const pods = [
  pod('x/web', { app: 'web' }, { ports: [['http', 80]] }),
  pod('x/api', { app: 'api' }, { ports: [['http', 8080]] }),
  pod('x/db', { app: 'db' }, { ports: [['mysql', 3306]] }),
  pod('y/client', { app: 'client' }),
  dnsPod,
];
const toDns = {
  to: [
    {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
      podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
    },
  ],
  ports: [{ protocol: 'UDP', port: 53 }],
};

t.test('egress-without-dns: a default-deny egress without a DNS rule (semantics point 2)', async (t) => {
  const denyEgress = policy('x/deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
  const found = lint({ namespaces, pods, policies: [denyEgress] });
  t.same(ids(found), ['egress-without-dns NetworkPolicy x/deny-egress spec.policyTypes']);
  t.match(found[0]!.message, /x\/api, x\/db, x\/web/);
  t.match(found[0]!.fix, /k8s-app: kube-dns.*UDP, port: 53/);

  const allowDns = policy('x/allow-dns', { podSelector: {}, policyTypes: ['Egress'], egress: [toDns] });
  t.same(lint({ namespaces, pods, policies: [denyEgress, allowDns] }), [], 'a second policy allows DNS');

  const tcpOnly = policy('x/dns-tcp', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ ...toDns, ports: [{ protocol: 'TCP', port: 53 }] }],
  });
  t.equal(
    only(lint({ namespaces, pods, policies: [tcpOnly] }), 'egress-without-dns').length,
    1,
    'TCP 53 alone',
  );

  const wrongPods = policy('x/dns-wrong', {
    podSelector: {},
    policyTypes: ['Egress'],
    egress: [{ ...toDns, to: [{ podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }] }],
  });
  t.equal(
    only(lint({ namespaces, pods, policies: [wrongPods] }), 'egress-without-dns').length,
    1,
    'UDP 53 to kube-dns pods of the own namespace does not reach kube-system',
  );

  const onePod = policy('x/api-out', {
    podSelector: { matchLabels: { app: 'api' } },
    egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }] }],
  });
  const blamed = lint({ namespaces, pods, policies: [onePod, allowDns] });
  t.same(blamed, [], 'the namespace-wide DNS policy covers the API pod too');
  t.same(ids(lint({ namespaces, pods, policies: [onePod] })), [
    'egress-without-dns NetworkPolicy x/api-out spec.egress',
  ]);

  t.same(lint({ namespaces, pods, policies: [policy('x/in', { podSelector: {} })] }), [], 'ingress only');

  // Manifests without pods: only a rule allowing UDP 53 at all counts.
  const noPods = { pods: false, namespaces: true };
  t.equal(lint({ namespaces, pods: [], policies: [denyEgress] }, noPods).length, 1);
  t.same(lint({ namespaces, pods: [], policies: [denyEgress, allowDns] }, noPods), []);
});

t.test('namespace-label-unknown: a namespaceSelector no namespace matches (point 6)', async (t) => {
  const byName = (labels: Record<string, string>) =>
    policy('x/from-y', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: labels } }] }],
    });
  const found = lint({ namespaces, pods, policies: [byName({ name: 'y' })] });
  t.same(ids(found), [
    'namespace-label-unknown NetworkPolicy x/from-y spec.ingress[0].from[0].namespaceSelector',
  ]);
  t.match(found[0]!.fix, /kubernetes\.io\/metadata\.name: y instead of name: y/);
  t.same(lint({ namespaces, pods, policies: [byName({ 'kubernetes.io/metadata.name': 'y' })] }), []);
  t.same(lint({ namespaces, pods, policies: [byName({ team: 'y' })] }), [], 'a label the namespace carries');
  const typo = lint({
    namespaces,
    pods,
    policies: [byName({ 'kubernetes.io/metadata.name': 'kube-sytem' })],
  });
  t.match(typo[0]!.fix, /did you mean kubernetes\.io\/metadata\.name: kube-system\?/);
  const skipped = lintCluster(state({ namespaces, pods, policies: [byName({ name: 'y' })] }), {
    pods: true,
    namespaces: false,
  });
  t.same(skipped.findings, [], 'not judged when the input declares no namespaces');
  t.same(
    skipped.skipped.map((s) => s.id),
    ['namespace-label-unknown'],
  );
});

t.test('selector-matches-nothing: the policy podSelector or a peer podSelector with a typo', async (t) => {
  const own = (app: string) =>
    policy('x/protect', {
      podSelector: { matchLabels: { app } },
      ingress: [{ from: [{ podSelector: {} }] }],
    });
  const found = lint({ namespaces, pods, policies: [own('wbe')] });
  t.same(ids(found), ['selector-matches-nothing NetworkPolicy x/protect spec.podSelector']);
  t.match(found[0]!.fix, /did you mean app=web\?/);
  t.same(lint({ namespaces, pods, policies: [own('web')] }), []);
  const elsewhere = lint({ namespaces, pods, policies: [own('client')] });
  t.match(elsewhere[0]!.fix, /live elsewhere \(y\/client\).*own namespace/);
  t.same(lint({ namespaces, pods: [], policies: [policy('x/all', { podSelector: {} })] }), [], '{} is meant');

  const peer = (app: string) =>
    policy('x/db-in', {
      podSelector: { matchLabels: { app: 'db' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app } } }], ports: [{ port: 3306 }] }],
    });
  const peerFound = lint({ namespaces, pods, policies: [peer('apii')] });
  t.same(ids(peerFound), [
    'selector-matches-nothing NetworkPolicy x/db-in spec.ingress[0].from[0].podSelector',
  ]);
  t.match(peerFound[0]!.fix, /did you mean app=api\?/);
  t.same(lint({ namespaces, pods, policies: [peer('api')] }), []);
  const otherNs = lint({ namespaces, pods, policies: [peer('client')] });
  t.match(otherNs[0]!.fix, /a podSelector alone matches pods of the policy namespace only/);
  t.same(
    lint({ namespaces, pods, policies: [peer('apii')] }, { pods: false, namespaces: true }),
    [],
    'no pods',
  );
});

t.test('split-peer: the extra dash turns AND into OR', async (t) => {
  const rule = (from: unknown[]) =>
    policy('x/db-in', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from }] });
  const nsItem = { namespaceSelector: { matchLabels: { team: 'y' } } };
  const podItem = { podSelector: { matchLabels: { app: 'api' } } };
  const found = lint({ namespaces, pods, policies: [rule([nsItem, podItem])] });
  t.same(ids(found), ['split-peer NetworkPolicy x/db-in spec.ingress[0].from[1]']);
  t.match(found[0]!.message, /every pod of the namespaces team=y OR the pods app=api of namespace x/);
  t.match(found[0]!.fix, /remove the dash/);
  t.equal(lint({ namespaces, pods, policies: [rule([podItem, nsItem])] }).length, 1, 'either order');
  t.same(
    lint({
      namespaces,
      pods,
      policies: [rule([{ ...nsItem, podSelector: { matchLabels: { app: 'client' } } }])],
    }),
    [],
    'one item: AND',
  );
  t.same(lint({ namespaces, pods, policies: [rule([nsItem, { ipBlock: { cidr: '203.0.113.0/24' } }])] }), []);
  const egress = policy('x/out', {
    podSelector: { matchLabels: { app: 'web' } },
    egress: [{ to: [{ namespaceSelector: {} }, podItem] }, toDns],
  });
  const everywhere = lint({
    namespaces,
    pods: [...pods, pod('x/client', { app: 'client' })],
    policies: [egress],
  });
  t.same(ids(everywhere), ['split-peer NetworkPolicy x/out spec.egress[0].to[1]']);
  t.match(everywhere[0]!.why, /the whole cluster/);
});

t.test('named-port-unknown: ingress on the selected pods, egress on the peer pods (point 9)', async (t) => {
  const ingress = (port: unknown, protocol = 'TCP') =>
    policy('x/web-in', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ ports: [{ port, protocol }] }],
    });
  const found = lint({ namespaces, pods, policies: [ingress('htpp')] });
  t.same(ids(found), ['named-port-unknown NetworkPolicy x/web-in spec.ingress[0].ports[0].port']);
  t.match(found[0]!.fix, /did you mean 'http'\?/);
  t.same(lint({ namespaces, pods, policies: [ingress('http')] }), []);
  t.same(lint({ namespaces, pods, policies: [ingress(80)] }), []);
  t.match(lint({ namespaces, pods, policies: [ingress('http', 'UDP')] })[0]!.fix, /declare 'http' as TCP/);
  t.equal(
    lint({ namespaces, pods, policies: [ingress('mysql')] }).length,
    1,
    'the database declares mysql, but the policy selects the web pod',
  );

  const egress = (port: string, to: unknown[]) =>
    policy('x/web-out', {
      podSelector: { matchLabels: { app: 'web' } },
      egress: [{ to, ports: [{ port }] }, toDns],
    });
  const toDb = [{ podSelector: { matchLabels: { app: 'db' } } }];
  t.same(lint({ namespaces, pods, policies: [egress('mysql', toDb)] }), [], 'the peer pod declares it');
  t.same(ids(lint({ namespaces, pods, policies: [egress('http', toDb)] })), [
    'named-port-unknown NetworkPolicy x/web-out spec.egress[0].ports[0].port',
  ]);
  const block = lint({
    namespaces,
    pods,
    policies: [egress('https', [{ ipBlock: { cidr: '203.0.113.0/24' } }])],
  });
  t.match(block[0]!.message, /peers are all ipBlocks/);
  t.same(lint({ namespaces, pods, policies: [egress('http', toDb)] }, { pods: false, namespaces: true }), []);
});

t.test('redundant-policy: every rule already allowed by another policy', async (t) => {
  const wide = policy('x/db-from-x', {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 3306 }, { port: 9104 }] }],
  });
  const narrow = policy('x/db-from-api', {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 3306 }] }],
  });
  const found = lint({ namespaces, pods, policies: [wide, narrow] });
  t.same(ids(found), ['redundant-policy NetworkPolicy x/db-from-api spec']);
  t.match(found[0]!.message, /already allowed by NetworkPolicy x\/db-from-x/);
  t.same(lint({ namespaces, pods, policies: [narrow] }), [], 'alone it is needed');

  const otherPort = policy('x/db-admin', {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 33060 }] }],
  });
  t.same(lint({ namespaces, pods, policies: [wide, otherPort] }), [], 'a port the other does not allow');

  const twin = policy('x/db-from-api-2', narrow.spec);
  t.same(
    ids(lint({ namespaces, pods, policies: [narrow, twin] })),
    ['redundant-policy NetworkPolicy x/db-from-api-2 spec'],
    'of two equal policies one is reported',
  );

  const egressOnly = policy('x/db-out', {
    podSelector: { matchLabels: { app: 'db' } },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 3306 }] }],
    egress: [toDns],
  });
  t.same(
    only(lint({ namespaces, pods, policies: [wide, egressOnly] }), 'redundant-policy'),
    [],
    'its egress isolation is its own',
  );
  t.same(
    lint({ namespaces, pods, policies: [wide, policy('x/deny', { podSelector: {} })] }),
    [],
    'a policy without rules (a default deny) is never redundant',
  );

  const blockWide = policy('x/web-ext', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24' } }] }],
  });
  const blockNarrow = policy('x/web-ext-1', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.8/29' } }], ports: [{ port: 80 }] }],
  });
  t.same(ids(lint({ namespaces, pods, policies: [blockWide, blockNarrow] })), [
    'redundant-policy NetworkPolicy x/web-ext-1 spec',
  ]);
  t.same(
    ids(lint({ namespaces, pods: [], policies: [wide, narrow] }, { pods: false, namespaces: true })),
    ['redundant-policy NetworkPolicy x/db-from-api spec'],
    'without pods, by selectors',
  );
});

t.test('invalid-field: validation issues become findings naming the field', async (t) => {
  const bad = policy('x/bad', {
    podSelector: {},
    ingress: [{ ports: [{ port: 70000 }] }],
  });
  t.same(ids(lint({ namespaces, pods, policies: [bad] })), [
    'invalid-field NetworkPolicy x/bad spec.ingress[0].ports[0].port',
  ]);
});

t.test('selectorSubset is a sufficient test', async (t) => {
  const sel = (raw: unknown) => normalizeSelector(raw).selector;
  t.ok(selectorSubset(sel({ matchLabels: { a: '1', b: '2' } }), sel({ matchLabels: { a: '1' } })));
  t.notOk(selectorSubset(sel({ matchLabels: { a: '1' } }), sel({ matchLabels: { a: '1', b: '2' } })));
  t.ok(selectorSubset(sel({ matchLabels: { a: '1' } }), sel({})));
  t.ok(
    selectorSubset(
      sel({ matchLabels: { a: '1' } }),
      sel({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }),
    ),
  );
  t.ok(
    selectorSubset(
      sel({ matchLabels: { a: '1' } }),
      sel({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }),
    ),
  );
  t.notOk(selectorSubset(sel({}), sel({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] })));
});

t.test(
  'redundant-policy and audit mode (point 25): an audit policy covers nothing, is never reported',
  async (t) => {
    const audit = (p: ReturnType<typeof policy>) => ({
      ...p,
      metadata: { ...p.metadata, annotations: { 'tollgate.dev/audit': 'true' } },
    });
    const wide = policy('x/db-from-x', {
      podSelector: { matchLabels: { app: 'db' } },
      ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 3306 }] }],
    });
    const narrow = policy('x/db-from-api', {
      podSelector: { matchLabels: { app: 'db' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api' } } }], ports: [{ port: 3306 }] }],
    });
    for (const options of [full, { pods: false, namespaces: false }]) {
      t.same(
        only(lint({ namespaces, pods, policies: [audit(wide), narrow] }, options), 'redundant-policy'),
        [],
        `an audit policy's rules allow nothing, so the enforced one is needed (pods: ${options.pods})`,
      );
      t.same(
        only(lint({ namespaces, pods, policies: [wide, audit(narrow)] }, options), 'redundant-policy'),
        [],
        `an audit policy removes no verdict: not reported (pods: ${options.pods})`,
      );
    }
  },
);

t.test(
  'egress-without-dns and audit mode (point 25): an audit policy isolates nothing and allows no DNS',
  async (t) => {
    const audit = (p: ReturnType<typeof policy>) => ({
      ...p,
      metadata: { ...p.metadata, annotations: { 'tollgate.dev/audit': 'true' } },
    });
    const denyEgress = policy('x/deny-egress', { podSelector: {}, policyTypes: ['Egress'] });
    const allowDns = policy('x/allow-dns', { podSelector: {}, policyTypes: ['Egress'], egress: [toDns] });
    for (const options of [full, { pods: false, namespaces: true }]) {
      t.same(
        only(lint({ namespaces, pods, policies: [audit(denyEgress)] }, options), 'egress-without-dns'),
        [],
        `an audit-only default-deny egress breaks no lookup (pods: ${options.pods})`,
      );
      t.same(
        ids(
          only(
            lint({ namespaces, pods, policies: [denyEgress, audit(allowDns)] }, options),
            'egress-without-dns',
          ),
        ),
        ['egress-without-dns NetworkPolicy x/deny-egress spec.policyTypes'],
        `an audit policy's DNS rule allows nothing (pods: ${options.pods})`,
      );
    }
  },
);
