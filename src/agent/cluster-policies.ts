// What the agent says about ClusterNetworkPolicies (semantics 20-24), which its table enforces
// (compile/tiers.ts): whether the API serves them, how many it sees and programs and how many are invalid
// (log once, metric, /readyz). A forbidden list fails readiness (see notReady); it never changes what is
// programmed itself: the agent keeps the last known policies in its state then.
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { MissingReason } from '../k8s/reflector.ts';
import type { ClusterPolicy } from '../policy/cluster-types.ts';
import { formatIssue } from '../policy/errors.ts';
import { priorityTies } from '../policy/tiers.ts';
import { LoggedOnce } from './once.ts';

export class ClusterPolicyReport {
  private readonly log: Logger;
  private readonly gauge: Gauge<'state'>;
  private readonly loggedTies = new LoggedOnce();
  private policies: readonly ClusterPolicy[] = [];
  private missing: MissingReason | undefined;

  constructor(log: Logger, registry: Registry) {
    this.log = log;
    this.gauge = new Gauge({
      name: 'tollgate_cluster_network_policies',
      help:
        'ClusterNetworkPolicies watched, by state: seen (all), invalid (with a validation problem), ' +
        'programmed (in the node table: invalid ones too, as their fail-closed Deny).',
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
    this.gauge.set({ state: 'programmed' }, policies.length);
    if (policies.length === 0) return;
    const ties = new Set(priorityTies(policies).map(formatIssue));
    this.loggedTies.keepOnly(ties);
    for (const text of ties)
      if (this.loggedTies.first(text))
        this.log.warn({ problem: text }, 'ClusterNetworkPolicies may conflict');
  }

  /**
   * Why /readyz fails, or undefined. A forbidden list hides Admin Deny rules the node should enforce: not
   * ready, visibly. The table keeps the last policies listed (the agent's state), so none it enforced
   * opens; denying every pod's traffic instead would turn one missing RBAC rule into an outage of the
   * whole node, and still could not honour the Accept rules it cannot see.
   */
  notReady(): string | undefined {
    if (this.missing !== 'forbidden') return undefined;
    return `ClusterNetworkPolicies: listing them is forbidden (RBAC); enforcing the ${this.policies.length} last listed`;
  }
}
