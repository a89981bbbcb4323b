// The model driver: scenario probes decided by the reference evaluator (no kernel, no privileges).
import { formatAddress, parseAddress, rangeContains } from '../policy/address.ts';
import { type Endpoint, endpointAt, type Flow } from '../policy/evaluate.ts';
import { ClusterIndex } from '../policy/index.ts';
import { evaluateTiers, explainTierVerdict } from '../policy/tiers.ts';
import { UsageError } from '../util/errors.ts';
import { expectedReports, modelDrops } from './drops.ts';
import type { Probe, ProbeOutcome, ScenarioDriver } from './probes.ts';
import type { EndpointRef } from './types.ts';
import type { World } from './world.ts';

/** The address of `family` a probe endpoint uses (hostNetwork pods use their node's addresses). */
export function endpointAddress(world: World, e: EndpointRef, family: 4 | 6 = 4): string {
  if (e.kind === 'pod') {
    const pod = world.pods.get(e.key)!;
    return family === 4 ? world.podIp4(pod) : world.podIp6(pod);
  }
  if (e.kind === 'host') {
    const host = world.hosts.find((h) => h.name === e.name)!;
    return family === 4 ? host.ip : host.ip6;
  }
  const node = world.node(e.index);
  return family === 4 ? node.ip4 : node.ip6;
}

export function probeFlow(world: World, index: ClusterIndex, probe: Probe): Flow {
  const at = (e: EndpointRef) => {
    const text = endpointAddress(world, e, probe.family);
    const address = parseAddress(text);
    if (!address) throw new UsageError(`${probe.where}: '${text}' is not an address`);
    return endpointAt(index, address);
  };
  return { from: at(probe.from), to: at(probe.to), protocol: probe.protocol, port: probe.port };
}

/**
 * The node whose pod range holds an address that no live pod owns (a pod address claimed by two pods,
 * given to neither): that node drops its traffic, whatever the policies say. The evaluator judges
 * addresses by the objects alone and would call it an external address.
 */
function droppingNode(index: ClusterIndex, e: Endpoint): string | undefined {
  if (e.kind !== 'external') return undefined;
  return index.state.nodes.find((n) => n.podCIDRs.some((r) => rangeContains(r, e.address)))?.name;
}

/** The model's verdict on one probe, with the explanation printed for a failure. */
export function modelOutcome(world: World, index: ClusterIndex, probe: Probe): ProbeOutcome {
  const flow = probeFlow(world, index, probe);
  for (const e of [flow.from, flow.to]) {
    const node = droppingNode(index, e);
    if (node !== undefined)
      return {
        probe,
        allowed: false,
        explanation: `DENY: ${formatAddress(e.address)} is in node ${node}'s pod range but no live pod owns it (see the address conflicts), so ${node} drops it`,
        reports: [],
      };
  }
  // Tier-aware; with no ClusterNetworkPolicies it is exactly evaluate() and its explanation.
  const verdict = evaluateTiers(index, flow);
  return {
    probe,
    allowed: verdict.allowed,
    explanation: explainTierVerdict(index, flow, verdict),
    reports: expectedReports(verdict),
  };
}

export const modelDriver: ScenarioDriver = {
  enforcesClusterPolicies: true,
  async sync() {},
  async probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    const index = new ClusterIndex(world.state());
    return probes.map((probe) => modelOutcome(world, index, probe));
  },
  async drops(_world, expectations) {
    return modelDrops(expectations);
  },
};
