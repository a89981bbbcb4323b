// The agent's defaults, importable without loading the agent (and the Kubernetes client) itself.
export const DEFAULT_AGENT_OPTIONS = {
  metricsAddr: '127.0.0.1:9808',
  minSyncIntervalMs: 20,
  verifyIntervalMs: 60_000,
  watchQuietMs: 120_000,
  relistIntervalMs: 600_000,
  heapGrowthPercent: 30,
  livenessTimeoutMs: 180_000,
  stateDir: '/var/lib/tollgate',
  /** --established: what a policy change does to established connections (semantics point 16). */
  established: 'keep',
} as const;
