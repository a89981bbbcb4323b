// Scenario files (../shared/scenarios/README.md) as typed data: what a parsed file holds. Data only.
import type { ReportLine } from '../nflog/report.ts';
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
  /**
   * add-pods only: claim a live pod's addresses (a stale object or a bad status). Such a pod exists only
   * in the API, never as a lab pod, so it can be neither probed nor probe.
   */
  sameIpAs: string | undefined;
}

export interface ScenarioHost {
  name: string;
  ip: string;
  ports: ScenarioPort[];
}

/** `family` of expect and matrix steps (scenario README, "Address family"); `both`: one probe per family. */
export const PROBE_FAMILIES = ['ipv4', 'ipv6', 'both'] as const;
export type ProbeFamily = (typeof PROBE_FAMILIES)[number];

export type EndpointRef =
  | { kind: 'pod'; key: string }
  | { kind: 'host'; name: string }
  | { kind: 'node'; index: number };

/** What an `agent` fault step does to node N's agent (scenario README, "Faults"). */
export const AGENT_ACTIONS = ['stop', 'start', 'restart', 'kill', 'second-start', 'second-stop'] as const;
export type AgentAction = (typeof AGENT_ACTIONS)[number];

/** One line of a `drops` step (scenario README, "Denied connections in the log"), parsed. */
export interface DropLine {
  text: string;
  /** `FILE: steps[N].drops[I]`, for errors and reports. */
  where: string;
  line: ReportLine;
}

/** What `delete:` removes; clusternetworkpolicy is cluster-scoped (NAME, no namespace). */
export type DeleteResource = 'networkpolicy' | 'pod' | 'namespace' | 'clusternetworkpolicy';

export type Step = { index: number; where: string } & (
  | { kind: 'apply'; text: string }
  | { kind: 'delete'; resource: DeleteResource; key: string }
  | { kind: 'label'; target: 'namespace' | 'pod'; key: string; set: Record<string, string>; remove: string[] }
  | { kind: 'add-pods'; pods: ScenarioPod[] }
  | {
      kind: 'expect';
      probes: string[];
      /** `within: 2s`: must hold that soon after the first change or fault since the last expectation. */
      withinMs: number | undefined;
      family: ProbeFamily;
    }
  // Faults: lab mode through the API server only; the model skips them.
  | { kind: 'tamper'; node: number; nft: string }
  | { kind: 'agent'; node: number; action: AgentAction }
  | { kind: 'api'; action: 'stop' | 'start' }
  | { kind: 'matrix'; port: number | string; protocol: Protocol; rules: string[]; family: ProbeFamily }
  /** What the agents reported as denied for probes of earlier steps (model: what the evaluator says). */
  | { kind: 'drops'; lines: DropLine[] }

  // Established connections (scenario README): see connections.ts.
  | { kind: 'connect'; connections: ScenarioConnection[] }
  | { kind: 'connections'; checks: { name: string; expect: 'alive' | 'cut' }[] }
);

/** What a policy change does to established connections: the agents' --established. */
export const ESTABLISHED = ['keep', 'cut'] as const;
export type Established = (typeof ESTABLISHED)[number];

/** One long-lived TCP connection of a `connect` step. */
export interface ScenarioConnection {
  name: string;
  from: string;
  to: string;
  port: number;
}

export interface Scenario {
  file: string;
  name: string;
  description: string;
  nodes: number;
  namespaces: { name: string; labels: Record<string, string> }[];
  pods: ScenarioPod[];
  hosts: ScenarioHost[];
  steps: Step[];
  /** `established:` at the top level; keep when absent. */
  established: Established;
}

export type FaultStep = Step & { kind: 'tamper' | 'agent' | 'api' };

export function isFault(step: Step): step is FaultStep {
  return step.kind === 'tamper' || step.kind === 'agent' || step.kind === 'api';
}

/** The standard ports of a pod that declares none (scenario README). */
export const DEFAULT_PORTS: ScenarioPort[] = [
  { name: 'serve-80-tcp', port: 80, protocol: 'TCP' },
  { name: 'serve-81-tcp', port: 81, protocol: 'TCP' },
  { name: 'serve-80-udp', port: 80, protocol: 'UDP' },
  { name: 'serve-81-udp', port: 81, protocol: 'UDP' },
];
