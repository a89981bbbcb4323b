// The agent's view of the cluster: one reflector per watched kind holding trimmed objects (or what the
// consumer's `ingest` made of them), and change notification. Knows nothing of policy semantics.
import type { Logger } from 'pino';
import type { ClusterObjects } from '../policy/normalize.ts';
import { type ListWatch, WatchError } from './client.ts';
import { Reflector, type ReflectorOptions } from './reflector.ts';
import { trimClusterPolicy, trimNamespace, trimNode, trimPod, trimPolicy } from './trim.ts';

export const WATCHED = {
  pods: { path: '/api/v1/pods', trim: trimPod },
  namespaces: { path: '/api/v1/namespaces', trim: trimNamespace },
  policies: { path: '/apis/networking.k8s.io/v1/networkpolicies', trim: trimPolicy },
  nodes: { path: '/api/v1/nodes', trim: trimNode },
  /**
   * Optional: a CRD (network-policy-api) a cluster may not have. Listed directly, not found through
   * discovery or a watch on customresourcedefinitions: a 404 says "not installed" just as well, needs no
   * RBAC beyond list/watch on the kind itself, and the re-check is one small list per period.
   */
  clusterPolicies: {
    path: '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies',
    trim: trimClusterPolicy,
    optional: true,
  },
} as const;

/** How often an optional kind that is missing is listed again (ClusterStoreOptions.missingRecheckMs). */
export const MISSING_RECHECK_MS = 60_000;

export type WatchedKind = keyof typeof WATCHED;

export interface ClusterStoreOptions
  extends Pick<ReflectorOptions, 'quietMs' | 'resyncMs' | 'pageSize' | 'missingRecheckMs'> {
  /**
   * Turns each trimmed object into what the store keeps (the agent keeps its normalized form only, so
   * the trimmed copy is garbage at once). Called once per object version; must not throw.
   */
  ingest?: Partial<Record<WatchedKind, (trimmed: Record<string, unknown>) => unknown>>;
  /**
   * Kinds whose `ingest` is given the object as listed or watched instead of its trimmed copy: for
   * normalizers that read only fields the trim keeps, with the trim's defaults (normalizePod; a test holds
   * the two forms equal), so that 100k pods do not each build a copy that is garbage at once.
   */
  rawIngest?: readonly WatchedKind[];
}

export class ClusterStore {
  readonly reflectors: Record<WatchedKind, Reflector<unknown>>;
  private readonly listeners: ((kind: string) => void)[] = [];

  constructor(client: ListWatch, log: Logger, options: ClusterStoreOptions = {}) {
    const { ingest, rawIngest, missingRecheckMs, ...reflectorOptions } = options;
    const make = (kind: WatchedKind): Reflector<unknown> => {
      const trim = WATCHED[kind].trim;
      const optional =
        'optional' in WATCHED[kind] ? { missingRecheckMs: missingRecheckMs ?? MISSING_RECHECK_MS } : {};
      const keep = ingest?.[kind];
      const into = keep && (rawIngest?.includes(kind) ? keep : (o: Record<string, unknown>) => keep(trim(o)));
      return new Reflector<unknown>(
        client,
        { kind, path: WATCHED[kind].path, trim: into || trim, ...reflectorOptions, ...optional },
        log,
        (k) => {
          for (const l of this.listeners) l(k);
        },
      );
    };
    this.reflectors = {
      pods: make('pods'),
      namespaces: make('namespaces'),
      policies: make('policies'),
      nodes: make('nodes'),
      clusterPolicies: make('clusterPolicies'),
    };
  }

  onChange(listener: (kind: string) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    for (const r of Object.values(this.reflectors)) r.start();
  }

  stop(): void {
    for (const r of Object.values(this.reflectors)) r.stop();
  }

  /** Every kind has been listed completely at least once. */
  get synced(): boolean {
    return Object.values(this.reflectors).every((r) => r.synced);
  }

  /** Every kind has a watch stream open (or, optional, is known to be missing). */
  get live(): boolean {
    return Object.values(this.reflectors).every((r) => r.live);
  }
}

/**
 * One paged list of every watched kind (for one-shot tools such as `tollgate explain`). ClusterNetworkPolicies
 * are empty when the API does not serve them (404); any other refusal is an error, so that a tool never
 * explains without the Admin tier it could not read.
 */
export async function listCluster(
  client: Pick<ListWatch, 'listPage'>,
): Promise<ClusterObjects & { clusterPolicies: Record<string, unknown>[] }> {
  const all = async (kind: WatchedKind) => {
    const out: Record<string, unknown>[] = [];
    let cont: string | undefined;
    do {
      const page = await client.listPage(WATCHED[kind].path, {
        limit: 500,
        ...(cont ? { continue: cont } : {}),
      });
      for (const item of page.items) out.push(WATCHED[kind].trim(item));
      cont = page.continue;
    } while (cont);
    return out;
  };
  const optional = (kind: WatchedKind) =>
    all(kind).catch((error: unknown) => {
      if (error instanceof WatchError && error.status === 404) return [];
      throw error;
    });
  const [pods, namespaces, policies, nodes, clusterPolicies] = await Promise.all([
    all('pods'),
    all('namespaces'),
    all('policies'),
    all('nodes'),
    optional('clusterPolicies'),
  ]);
  return { pods, namespaces, policies, nodes, clusterPolicies };
}
