// Public surface of the lab for tests, benchmarks and the CLI; re-exports only, no logic.
export { DEFAULT_PORTS, demoSpec, nodeSpec, podMAC, ROUTER } from './addresses.ts';
export { LabError, type LabErrorCode } from './errors.ts';
export { Lab, type LabOptions, type LabPod, validateSpec } from './lab.ts';
export { type LabListing, listLabs, NS_PREFIX, sweepLabs } from './registry.ts';
export type * from './types.ts';
