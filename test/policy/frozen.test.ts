// The normalized model is read-only (src/policy/types.ts): the builders freeze it all the way down, so a
// mutation anywhere in policy/ or compile/ throws in the tests that use them. Guards that freezing.
import t from 'tap';
import { cluster, pod, policy, state } from './builders.ts';

t.test('normalized objects from the builders are frozen all the way down', async (t) => {
  const s = state({
    pods: [pod('x/a', { app: 'a' }, { ports: [['http', 80]] })],
    policies: [
      policy('x/p', {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['a'] }] },
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] }],
      }),
    ],
  });
  const p = s.pods[0]!;
  const np = s.policies[0]!;
  t.throws(() => {
    (p.labels as Record<string, string>).app = 'b';
  }, TypeError);
  t.throws(() => {
    (p.ips as unknown[]).push(p.ips[0]);
  }, TypeError);
  t.throws(() => {
    (p.ips[0] as { value: bigint }).value = 0n;
  }, TypeError);
  const peer = np.ingress![0]!.peers![0]!;
  t.equal(peer.kind, 'ipBlock');
  if (peer.kind === 'ipBlock')
    t.throws(() => {
      (peer.ranges[0] as { first: bigint }).first = 0n;
    }, TypeError);
  t.throws(() => {
    (np.podSelector.matchExpressions[0]!.values as string[]).push('c');
  }, TypeError);
  t.throws(() => {
    (s.nodes[0]!.podCIDRs as unknown[]).length = 0;
  }, TypeError);
});

t.test('a ClusterState is frozen with its lists and namespace map', async (t) => {
  const s = state({ pods: [pod('x/a', { app: 'a' })], policies: [policy('x/p', { podSelector: {} })] });
  t.throws(() => {
    (s.pods as unknown[]).push(s.pods[0]);
  }, TypeError);
  t.throws(() => {
    (s.policies as unknown[]).length = 0;
  }, TypeError);
  t.throws(() => {
    (s as { nodes: unknown }).nodes = [];
  }, TypeError);
  t.throws(() => (s.namespaces as Map<string, unknown>).delete('x'), TypeError);
  t.throws(() => (s.namespaces as Map<string, unknown>).set('w', s.namespaces.get('x')), TypeError);
  t.equal(s.namespaces.size, 3, 'nothing was written');
  // The index, planner and compiler only read it (a write would have thrown above, in every test).
  t.equal(cluster({ pods: [pod('x/b', { app: 'b' })] }).livePods.length, 1);
});
