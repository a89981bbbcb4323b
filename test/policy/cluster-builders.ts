// A ClusterNetworkPolicy as users write it (raw v1alpha2 object), for the tier tests.
export function cnp(name: string, spec: Record<string, unknown>) {
  return {
    apiVersion: 'policy.networking.k8s.io/v1alpha2',
    kind: 'ClusterNetworkPolicy',
    metadata: { name },
    spec,
  };
}
