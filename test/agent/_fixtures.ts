// Shared fixtures of the agent tests: the watched API paths, a small cluster for node n1, the agent's
// test timings, the fake kernel (a programmer over FakeNft), and the reconciler tests' policy.
import { NftProgrammer } from '../../src/agent/programmer.ts';
import { FakeNft, type FakeNftOptions } from '../../src/nft/index.ts';
import type { FakeApi } from '../k8s/fake-api.ts';
import { nodes, pod, policy } from '../policy/builders.ts';

export const P = {
  pods: '/api/v1/pods',
  ns: '/api/v1/namespaces',
  np: '/apis/networking.k8s.io/v1/networkpolicies',
  nodes: '/api/v1/nodes',
};

/** Namespace x, node n1 and two pods on it. */
export function cluster(api: FakeApi): void {
  api.put(P.ns, 'x', { metadata: { labels: {} } });
  api.put(P.nodes, 'n1', nodes[0]!);
  api.put(P.pods, 'a', pod('x/a', { app: 'a' }, { ip: '10.244.1.10' }));
  api.put(P.pods, 'b', pod('x/b', { app: 'b' }, { ip: '10.244.1.11' }));
}

/** AgentOptions for tests: node n1, no HTTP server, long timers (a test shortens what it needs). */
export const TEST_AGENT_OPTIONS = {
  nodeName: 'n1',
  metricsAddr: undefined,
  minSyncIntervalMs: 10,
  verifyIntervalMs: 60_000,
  watchQuietMs: 60_000,
  relistIntervalMs: 600_000,
};

/** The agent's programmer over a FakeNft: `fake` holds the model, its injected failures and its log. */
export class FakeKernel extends NftProgrammer {
  readonly fake: FakeNft;
  constructor(options: FakeNftOptions = {}) {
    const fake = new FakeNft(options);
    super(fake);
    this.fake = fake;
  }
}

export const dbPolicy = policy('x/db', {
  podSelector: { matchLabels: { role: 'db' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { role: 'api' } } }], ports: [{ port: 5432 }] }],
});

/** db and web on n1, api1 (a peer of db) on n2. */
export const basePods = () => [
  pod('x/db', { role: 'db' }, { node: 'n1', ip: '10.244.1.20', ip6: 'fd00:10:244:1::20' }),
  pod('x/api1', { role: 'api' }, { node: 'n2', ip: '10.244.2.30', ip6: 'fd00:10:244:2::30' }),
  pod('x/web', { role: 'web' }, { node: 'n1', ip: '10.244.1.40', ip6: 'fd00:10:244:1::40' }),
];
