// What the agent says about ClusterNetworkPolicies (semantics 20-24) while its table does not enforce them
// yet: whether the API serves them, how many it sees and how many are invalid (log once, metric, /readyz
// detail). Never fails readiness and never changes what is programmed; the compiler does that.
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { MissingReason } from '../k8s/reflector.ts';
import type { ClusterPolicy } from '../policy/cluster-types.ts';
import { formatIssue } from '../policy/errors.ts';
import { priorityTies } from '../policy/tiers.ts';
import { LoggedOnce } from './once.ts';

/** Whether the agent's table holds the tiers: false until the compiler programs them. */
export const CLUSTER_POLICIES_PROGRAMMED = false;

export class ClusterPolicyReport {
  private readonly log: Logger;
  private readonly gauge: Gauge<'state'>;
  private readonly loggedTies = new LoggedOnce();
  private policies: readonly ClusterPolicy[] = [];
  private missing: MissingReason | undefined;
  private warned = false;

  constructor(log: Logger, registry: Registry) {
    this.log = log;
    this.gauge = new Gauge({
      name: 'tollgate_cluster_network_policies',
      help:
        'ClusterNetworkPolicies watched, by state: seen (all), invalid (with a validation problem), ' +
        'programmed (in the node table; 0 until tollgate enforces them).',
      labelNames: ['state'],
      registers: [registry],
    });
    this.gauge.set({ state: 'seen' }, 0);
    this.gauge.set({ state: 'invalid' }, 0);
    this.gauge.set({ state: 'programmed' }, 0);
  }

  /**
   * After each read of the store. `policies` the same array as last time: nothing changed (ties are not
   * computed again). Validation problems of each policy are logged by the agent with the plan's issues.
   */
  update(policies: readonly ClusterPolicy[], missing: MissingReason | undefined): void {
    if (missing !== this.missing && missing === 'forbidden')
      this.log.warn(
        'cannot list clusternetworkpolicies (policy.networking.k8s.io): forbidden; give the agent get/list/watch on them (daemonset/rbac.yaml)',
      );
    this.missing = missing;
    if (policies === this.policies) return;
    this.policies = policies;
    this.gauge.set({ state: 'seen' }, policies.length);
    this.gauge.set({ state: 'invalid' }, policies.filter((p) => p.issues.length > 0).length);
    this.gauge.set({ state: 'programmed' }, CLUSTER_POLICIES_PROGRAMMED ? policies.length : 0);
    if (policies.length === 0) {
      this.warned = false;
      return;
    }
    if (!CLUSTER_POLICIES_PROGRAMMED && !this.warned) {
      this.warned = true;
      this.log.warn(
        { count: policies.length, names: policies.slice(0, 10).map((p) => p.name) },
        'ClusterNetworkPolicies are seen but not yet programmed: this version enforces NetworkPolicies only, ' +
          'the Admin and Baseline tiers are not in the node table',
      );
    }
    const ties = new Set(priorityTies(policies).map(formatIssue));
    this.loggedTies.keepOnly(ties);
    for (const text of ties)
      if (this.loggedTies.first(text))
        this.log.warn({ problem: text }, 'ClusterNetworkPolicies may conflict');
  }

  /** A line for /readyz (ready or not), or undefined when there is nothing to say. */
  detail(): string | undefined {
    if (this.missing === 'forbidden')
      return 'ClusterNetworkPolicies: listing them is forbidden (RBAC); none are known';
    if (this.policies.length === 0 || CLUSTER_POLICIES_PROGRAMMED) return undefined;
    return `ClusterNetworkPolicies: ${this.policies.length} seen, not yet programmed (NetworkPolicies only are enforced)`;
  }
}
