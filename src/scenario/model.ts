// The model driver: scenario probes decided by the reference evaluator (no kernel, no privileges).
import { parseAddress } from '../policy/address.ts';
import { endpointAt, evaluate, explainVerdict, type Flow } from '../policy/evaluate.ts';
import { ClusterIndex } from '../policy/index.ts';
import type { Probe, ProbeOutcome, ScenarioDriver } from './probes.ts';
import type { EndpointRef } from './types.ts';
import type { World } from './world.ts';

/** The IPv4 address a probe endpoint uses (hostNetwork pods use their node's address). */
export function endpointAddress(world: World, e: EndpointRef): string {
  if (e.kind === 'pod') return world.podIp4(world.pods.get(e.key)!);
  if (e.kind === 'host') return world.hosts.find((h) => h.name === e.name)!.ip;
  return world.node(e.index).ip4;
}

export function probeFlow(world: World, index: ClusterIndex, probe: Probe): Flow {
  const at = (e: EndpointRef) => {
    const text = endpointAddress(world, e);
    const address = parseAddress(text);
    if (!address) throw new Error(`${probe.where}: '${text}' is not an address`);
    return endpointAt(index, address);
  };
  return { from: at(probe.from), to: at(probe.to), protocol: probe.protocol, port: probe.port };
}

export const modelDriver: ScenarioDriver = {
  async sync() {},
  async probe(world: World, probes: Probe[]): Promise<ProbeOutcome[]> {
    const index = new ClusterIndex(world.state());
    return probes.map((probe) => {
      const flow = probeFlow(world, index, probe);
      const verdict = evaluate(index, flow);
      return { probe, allowed: verdict.allowed, explanation: explainVerdict(flow, verdict) };
    });
  },
};
