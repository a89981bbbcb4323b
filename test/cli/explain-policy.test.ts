// `tollgate explain --policy` (issue 18): offline, what a policy selects and which peers and ports its
// rules allow (the pods they match now); against a cluster (a fake API serving agent pods' logs), its use
// summed over the nodes from the newest `policy usage` line of each agent, and the flags' errors.
import t from 'tap';
import { USAGE_MESSAGE } from '../../src/agent/usage.ts';
import { explainCommand } from '../../src/cli/explain.ts';
import { usageOfLogLine } from '../../src/cli/policy-usage.ts';
import { fakeCluster } from './_fake-cluster.ts';
import { runInProcess } from './_in-process.ts';

const scenario = 'examples/three-tier.yaml';
const explain = (...args: string[]) => runInProcess(explainCommand, args);

t.test('offline: the policy, its pods, and each rule with the peers it matches now', async (t) => {
  const r = await explain('--policy', 'store/api-from-web', '--scenario', scenario);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), [
    'NetworkPolicy store/api-from-web',
    '  selects pods tier=api in namespace store: 1 pod(s) (store/api)',
    '  ingress: isolates; allowed (any rule):',
    '    rule 0: from pods tier=web in namespace store (now: store/web); ports http/TCP (named port)',
    '  egress: not in policyTypes (this policy does not isolate it)',
  ]);
  const deny = await explain('--policy', 'store/default-deny-ingress', '--scenario', scenario);
  t.match(
    deny.stdout,
    /selects every pod in namespace store: 3 pod\(s\).*\n {2}ingress: isolates, allows nothing/,
  );
  t.notMatch(deny.stdout, /usage/, 'no usage offline');
});

t.test('offline: a ClusterNetworkPolicy as cnp/NAME, its tier, subject and ordered rules', async (t) => {
  const file = 'test/scenarios/cnp/c-admin-egress-sctp.yaml';
  const r = await explain('--policy', 'cnp/admin-egress-sctp', '--scenario', file, '--step', '1');
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.same(lines.slice(0, 3), [
    'ClusterNetworkPolicy admin-egress-sctp (cnp/admin-egress-sctp), tier Admin, priority 8',
    '  subject: every pod in namespaces kubernetes.io/metadata.name=ravenclaw: 2 pod(s) (ravenclaw/luna-lovegood-0, ravenclaw/luna-lovegood-1)',
    '  ingress: no rules (does not affect it)',
  ]);
  t.match(
    lines[4],
    /^ {4}rule 0 \(accept-gryffindor\): Accept to every pod in namespaces kubernetes.io\/metadata.name=gryffindor \(now: gryffindor\/harry-potter-0, gryffindor\/harry-potter-1\); every port$/,
  );
  t.match(r.stdout, /rule 3 \(deny-slytherin-9003\): Deny to .*; ports 9003\/SCTP/);
});

t.test('bad --policy uses are usage errors naming the flag', async (t) => {
  const missing = await explain('--policy', 'store/nope', '--scenario', scenario);
  t.equal(missing.code, 2);
  t.match(
    missing.stderr,
    /--policy store\/nope: no such NetworkPolicy \(namespace store has store\/default-deny-ingress/,
  );
  t.match(
    (await explain('--policy', 'nope', '--scenario', scenario)).stderr,
    /is not NAMESPACE\/NAME or cnp\/NAME/,
  );
  t.match(
    (await explain('--policy', 'store/db-from-api', '--from', 'store/web', '--scenario', scenario)).stderr,
    /--policy does not go with --from/,
  );
  t.match(
    (await explain('--policy', 'store/db-from-api', '--since', '1h', '--scenario', scenario)).stderr,
    /need a live cluster/,
  );
});

const usageLine = (usage: unknown[], more = 0) =>
  JSON.stringify({ level: 30, time: 0, node: 'n', component: 'agent', usage, more, msg: USAGE_MESSAGE });
const rec = (policy: string, direction: string, allowed: number, denied: number, wouldDeny = 0) => ({
  policy,
  direction,
  allowed,
  denied,
  wouldDeny,
});

t.test(
  "live: the newest counts of each agent, summed over the nodes, read from the agents' logs",
  async (t) => {
    const api = await fakeCluster(scenario, undefined, [
      {
        name: 'tollgate-a',
        node: 'node-1',
        lines: [
          usageLine([rec('store/db-from-api', 'ingress', 1, 0)]),
          '{"level":30,"msg":"synced"}',
          'not json at all',
          usageLine([rec('store/other', 'ingress', 9, 9)]),
          // Cumulative: the newest line of an agent replaces its earlier ones.
          usageLine([rec('store/db-from-api', 'ingress', 4, 2), rec('store/api-from-web', 'ingress', 5, 0)]),
        ],
      },
      {
        name: 'tollgate-b',
        node: 'node-2',
        lines: [usageLine([rec('store/db-from-api', 'ingress', 3, 1, 2)])],
      },
      { name: 'tollgate-c', node: 'node-3', lines: [] },
    ]);
    t.teardown(() => api.close());
    const r = await explain('--policy', 'store/db-from-api', '--kubeconfig', api.kubeconfig, '--since', '2h');
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^NetworkPolicy store\/db-from-api\n/);
    t.match(
      r.stdout,
      /from 2 agent\(s\) with counts\):\n {2}ingress: allowed 7, denied 3, would-deny 2\n {2}egress: allowed 0, denied 0\n/,
    );
    const logReads = api.requests.filter((q) => q.path.endsWith('/log'));
    t.equal(logReads.length, 3, 'every agent pod');
    t.ok(logReads.every((q) => q.query.get('sinceSeconds') === '7200' && q.query.get('follow') === null));

    const unused = await explain('--policy', 'store/web-from-anywhere', '--kubeconfig', api.kubeconfig);
    t.match(unused.stdout, /ingress: allowed 0, denied 0\n/);
    t.match(unused.stdout, /no agent logged a count for this policy within --since/);
  },
);

t.test('usageOfLogLine reads only policy usage lines', async (t) => {
  t.same(usageOfLogLine(usageLine([rec('a/b', 'egress', 1, 0)])), [rec('a/b', 'egress', 1, 0)]);
  t.equal(usageOfLogLine('{"msg":"synced"}'), undefined);
  t.equal(usageOfLogLine(`${USAGE_MESSAGE} {broken`), undefined);
  t.same(
    usageOfLogLine(usageLine([{ policy: 1 }, rec('a/b', 'sideways', 1, 0)])),
    [],
    'malformed records are left out',
  );
});
