// A scenario's outside hosts (`hosts:`, 203.0.113.0/24) on the real cluster: a network namespace per host,
// plugged into the hub's bridge (the node network) from inside the hub, serving the host's ports with the
// lab's in-namespace agent. Each node gets an on-link route to the host's address only (the hub forwards
// nothing); the host routes each node's pod range via that node. Nothing here touches the machine's own
// namespace: every link is made inside the hub with its peer moved straight into the host namespace.
import { AgentClient } from '../../src/lab/agent-client.ts';
import { check, run, runSync } from '../../src/lab/exec.ts';
import type { ScenarioHost } from '../../src/scenario/types.ts';
import type { Cluster } from './_cluster.ts';
import { ClusterScenarioError } from './scenario-plan.ts';

interface Host {
  name: string;
  ip: string;
  netns: string;
  agent: AgentClient;
  /** What the host was made with (address and ports): another scenario with the same keeps it. */
  fingerprint: string;
}

/** The hub's network namespace when the cluster tells it (LabCluster.hubNetns); undefined: no hosts. */
export function hubNetnsOf(cluster: Cluster): string | undefined {
  const hub = (cluster as { hubNetns?: unknown }).hubNetns;
  return typeof hub === 'string' && hub.length > 0 ? hub : undefined;
}

function fingerprint(h: ScenarioHost): string {
  return JSON.stringify([h.ip, h.ports.map((p) => [p.port, p.protocol])]);
}

const live = new Set<string>();
let exitHook = false;
/** A host namespace left behind by a crash would hold nothing but an address; still, remove it on exit. */
function onExitRemove(netns: string): void {
  live.add(netns);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const ns of live) runSync(['ip', 'netns', 'delete', ns]);
  });
}

export class OutsideHosts {
  readonly #cluster: Cluster;
  readonly #hub: string;
  readonly #hosts = new Map<string, Host>();
  #next = 1;
  #podRoutes: string[] | undefined;

  constructor(cluster: Cluster, hub: string) {
    this.#cluster = cluster;
    this.#hub = hub;
  }

  netns(name: string): string | undefined {
    return this.#hosts.get(name)?.netns;
  }

  /** `podCIDR via nodeIP` for every node, read once from the API. */
  async #routes(): Promise<string[]> {
    if (this.#podRoutes) return this.#podRoutes;
    const r = await this.#cluster.kubectl(['get', 'nodes', '-o', 'json']);
    if (r.code !== 0)
      throw new ClusterScenarioError('E_CLUSTER_KUBECTL', `kubectl get nodes: ${r.stderr.trim()}`);
    const items = (
      JSON.parse(r.stdout) as {
        items: { spec: { podCIDR?: string }; status: { addresses?: { type: string; address: string }[] } }[];
      }
    ).items;
    this.#podRoutes = items.flatMap((n) => {
      const ip = n.status.addresses?.find(
        (a) => a.type === 'InternalIP' && !a.address.includes(':'),
      )?.address;
      return n.spec.podCIDR && ip ? [`route add ${n.spec.podCIDR} via ${ip}`] : [];
    });
    return this.#podRoutes;
  }

  /** Makes exactly the scenario's hosts exist (unchanged ones are kept). */
  async ensure(hosts: ScenarioHost[]): Promise<void> {
    const wanted = new Map(hosts.map((h) => [h.name, h]));
    for (const [name, h] of this.#hosts)
      if (wanted.get(name) === undefined || fingerprint(wanted.get(name)!) !== h.fingerprint)
        await this.#remove(name);
    for (const h of hosts) if (!this.#hosts.has(h.name)) await this.#add(h);
  }

  async #add(h: ScenarioHost): Promise<void> {
    if (h.ip.includes(':'))
      throw new ClusterScenarioError('E_CLUSTER_SKIP', `host ${h.name}: the cluster has no IPv6`);
    const k = this.#next++;
    const netns = `${this.#hub.replace(/-hub$/, '')}-h${k}`;
    const veth = `hh${k}`;
    await check(['ip', 'netns', 'add', netns]);
    onExitRemove(netns);
    try {
      await check(['ip', '-n', this.#hub, '-batch', '-'], {
        input: `link add ${veth} type veth peer name eth0 netns ${netns}\nlink set ${veth} master br0\nlink set ${veth} up\n`,
      });
      const nodeNet = this.#cluster.nodes[0]!.ip4.replace(/\.\d+$/, '.0/24');
      await check(['ip', '-n', netns, '-batch', '-'], {
        input: [
          'link set lo up',
          `addr add ${h.ip}/24 dev eth0`,
          'link set eth0 up',
          `route add ${nodeNet} dev eth0 scope link`,
          ...(await this.#routes()),
          '',
        ].join('\n'),
      });
      for (const n of this.#cluster.nodes) {
        await check(['ip', '-n', n.netns, 'route', 'replace', `${h.ip}/32`, 'dev', 'eth0', 'scope', 'link']);
        // A host re-made at an address an earlier scenario used has a new MAC: a node's neighbour entry for
        // the old one would blackhole the first probes until the kernel re-resolves it (seconds, by timers).
        await check(['ip', '-n', n.netns, 'neigh', 'flush', 'to', `${h.ip}/32`, 'dev', 'eth0']);
      }
      const agent = await AgentClient.start(
        netns,
        `host/${h.name}`,
        h.ports.map((p) => ({ port: p.port, protocol: p.protocol })),
      );
      this.#hosts.set(h.name, { name: h.name, ip: h.ip, netns, agent, fingerprint: fingerprint(h) });
    } catch (error) {
      await run(['ip', 'netns', 'delete', netns]);
      live.delete(netns);
      throw error;
    }
  }

  async #remove(name: string): Promise<void> {
    const h = this.#hosts.get(name);
    if (!h) return;
    this.#hosts.delete(name);
    await h.agent.stop();
    for (const n of this.#cluster.nodes) {
      await run(['ip', '-n', n.netns, 'route', 'del', `${h.ip}/32`, 'dev', 'eth0']);
      await run(['ip', '-n', n.netns, 'neigh', 'flush', 'to', `${h.ip}/32`, 'dev', 'eth0']);
    }
    await run(['ip', 'netns', 'delete', h.netns]);
    live.delete(h.netns);
  }

  async close(): Promise<void> {
    for (const name of [...this.#hosts.keys()]) await this.#remove(name);
  }
}
