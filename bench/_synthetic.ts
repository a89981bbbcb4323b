// The synthetic NetworkPolicy mix the benchmarks share: four shapes in turn (pod-selector ingress,
// namespace-selector ingress on a named port, ipBlock with except, ingress+egress with named ports).
export function syntheticPolicy(
  p: number,
  namespaces: number,
): { metadata: { name: string; namespace: string }; spec: Record<string, unknown> } {
  const spec: Record<string, unknown> = { podSelector: { matchLabels: { app: `app${p % 40}` } } };
  const shape = p % 4;
  if (shape === 0)
    spec.ingress = [
      {
        from: [{ podSelector: { matchLabels: { tier: `tier${p % 5}` } } }],
        ports: [{ port: 8000 + (p % 3) }],
      },
    ];
  if (shape === 1)
    spec.ingress = [
      { from: [{ namespaceSelector: { matchLabels: { team: `t${p % 7}` } } }], ports: [{ port: 'http' }] },
    ];
  if (shape === 2)
    spec.ingress = [
      { from: [{ ipBlock: { cidr: `203.0.${p % 256}.0/24`, except: [`203.0.${p % 256}.128/25`] } }] },
    ];
  if (shape === 3) {
    spec.policyTypes = ['Ingress', 'Egress'];
    spec.ingress = [
      { from: [{ namespaceSelector: {}, podSelector: { matchLabels: { tier: `tier${p % 5}` } } }] },
    ];
    spec.egress = [
      {
        to: [{ podSelector: { matchLabels: { app: `app${(p + 1) % 40}` } } }],
        ports: [{ port: 'http' }, { port: 53, protocol: 'UDP' }],
      },
    ];
  }
  return { metadata: { name: `np${p}`, namespace: `ns${p % namespaces}` }, spec };
}
