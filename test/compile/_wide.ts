// Test helper: the desired state of node0 holding the one pod that bench/_synthetic.ts's widePolicy(n, n)
// selects (n ipBlocks x n ports). Pure: no kernel.
import { widePolicy } from '../../bench/_synthetic.ts';
import { type DesiredState, desiredState } from '../../src/compile/desired.ts';
import { ClusterIndex } from '../../src/policy/index.ts';
import { buildState } from '../../src/policy/normalize.ts';
import { Planner } from '../../src/policy/plan.ts';

export function wideDesired(n: number): DesiredState {
  const index = new ClusterIndex(
    buildState({
      namespaces: [{ metadata: { name: 'ns0' } }],
      nodes: [{ metadata: { name: 'node0' }, spec: { podCIDRs: ['10.244.0.0/24'] } }],
      pods: [
        {
          metadata: { name: 'w', namespace: 'ns0', labels: { app: 'wide' } },
          spec: { nodeName: 'node0', containers: [{ name: 'c' }] },
          status: { phase: 'Running', podIP: '10.244.0.10', podIPs: [{ ip: '10.244.0.10' }] },
        },
      ],
      policies: [widePolicy(n, n)],
    }),
  );
  return desiredState(new Planner(index).planNode('node0'));
}
