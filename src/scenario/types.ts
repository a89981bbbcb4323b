// Scenario files (../shared/scenarios/README.md) as typed data: what a parsed file holds. Data only.
import type { Protocol } from '../policy/types.ts';

export interface ScenarioPort {
  name: string | undefined;
  port: number;
  protocol: Protocol;
}

export interface ScenarioPod {
  /** namespace/name */
  name: string;
  labels: Record<string, string>;
  /** 1-based node index; undefined: round-robin. */
  node: number | undefined;
  hostNetwork: boolean;
  ports: ScenarioPort[];
  /** add-pods only: take the IP of a deleted pod. */
  reuseIpOf: string | undefined;
}

export interface ScenarioHost {
  name: string;
  ip: string;
  ports: ScenarioPort[];
}

export type EndpointRef =
  | { kind: 'pod'; key: string }
  | { kind: 'host'; name: string }
  | { kind: 'node'; index: number };

export type Step = { index: number; where: string } & (
  | { kind: 'apply'; text: string }
  | { kind: 'delete'; resource: 'networkpolicy' | 'pod' | 'namespace'; key: string }
  | { kind: 'label'; target: 'namespace' | 'pod'; key: string; set: Record<string, string>; remove: string[] }
  | { kind: 'add-pods'; pods: ScenarioPod[] }
  | { kind: 'expect'; probes: string[] }
  | { kind: 'matrix'; port: number | string; protocol: Protocol; rules: string[] }
);

export interface Scenario {
  file: string;
  name: string;
  description: string;
  nodes: number;
  namespaces: { name: string; labels: Record<string, string> }[];
  pods: ScenarioPod[];
  hosts: ScenarioHost[];
  steps: Step[];
}

/** The standard ports of a pod that declares none (scenario README). */
export const DEFAULT_PORTS: ScenarioPort[] = [
  { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
  { name: 'serve-81-tcp', port: 81, protocol: 'TCP' },
  { name: 'serve-80-udp', port: 80, protocol: 'UDP' },
  { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
];
