// Property (semantics 20-24): on random clusters with ClusterNetworkPolicies and NetworkPolicies, the
// per-node plans read as the dataplane will (plan-matcher.ts) agree with the tier evaluator; pods no
// ClusterNetworkPolicy selects keep exactly the plan they get without any; a plan cache kept across
// changes of the ClusterNetworkPolicies plans like a fresh planner.
import fc from 'fast-check';
import t from 'tap';
import { ClusterIndex } from '../../src/policy/index.ts';
import { type NodePlan, PlanCache, Planner } from '../../src/policy/plan.ts';
import { evaluateTiers, subjectSelects } from '../../src/policy/tiers.ts';
import { runs, scale, unitSeed } from '../_tier.ts';
import { PlanMatcher } from './plan-matcher.ts';
import { build, clusterArb, flowIn, flowsArb, flowsOf } from './tier-cluster.ts';

const NODES = ['n1', 'n2'];
const planAll = (planner: Planner): NodePlan[] => NODES.map((n) => planner.planNode(n));
/** Plans as comparable text (addresses are bigints). */
const text = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));

t.test('plans agree with the tier evaluator on random clusters and flows (points 20-24)', async (t) => {
  let flows = 0;
  let allowed = 0;
  const decided = { Admin: 0, NetworkPolicy: 0, Baseline: 0, default: 0 };
  fc.assert(
    fc.property(clusterArb, flowsArb, (input, seeds) => {
      const index = build(input, true);
      const matcher = new PlanMatcher(planAll(new Planner(index)));
      for (const f of flowsOf(input, seeds)) {
        const flow = flowIn(index, f);
        const want = evaluateTiers(index, flow);
        const got = matcher.decide(flow.from.address, flow.to.address, flow.protocol, flow.port);
        if (got !== want.allowed) return false;
        for (const d of [want.egress, want.ingress]) if (d) decided[d.decidedBy]++;
        if (want.allowed) allowed++;
        flows++;
      }
      return true;
    }),
    { numRuns: runs(2000), ...unitSeed() },
  );
  t.ok(flows >= scale(30000, 2000), `${flows} flows compared`);
  t.ok(allowed > flows * 0.1 && allowed < flows * 0.9, `${allowed} of ${flows} allowed`);
  // Worth something only if every tier decides some of them.
  for (const [tier, n] of Object.entries(decided)) t.ok(n > 0, `${n} directions decided by ${tier}`);
});

t.test('pods no ClusterNetworkPolicy selects get exactly the plan they get without any', async (t) => {
  let untouched = 0;
  let tiered = 0;
  fc.assert(
    fc.property(clusterArb, (input) => {
      const withCnps = build(input, true);
      const without = build(input, false);
      const a = planAll(new Planner(withCnps));
      const b = planAll(new Planner(without));
      for (let n = 0; n < NODES.length; n++) {
        const setsA = new Map(a[n]!.sets.map((s) => [s.id, s]));
        // Every set of today's plan is there, with the same id and content.
        for (const s of b[n]!.sets) if (text(setsA.get(s.id)) !== text(s)) return false;
        for (let i = 0; i < b[n]!.pods.length; i++) {
          const [pa, pb] = [a[n]!.pods[i]!, b[n]!.pods[i]!];
          const pod = withCnps.state.pods.find((p) => p.key === pa.key)!;
          const selected = (withCnps.state.clusterPolicies ?? []).some((c) =>
            subjectSelects(withCnps, c, pod),
          );
          const { ingressTiers, egressTiers, ...rest } = pa;
          // The NetworkPolicy part never changes; a pod no tier rule selects has nothing else.
          if (text(rest) !== text(pb)) return false;
          if (!selected && (ingressTiers !== undefined || egressTiers !== undefined)) return false;
          if (!selected) untouched++;
          else tiered++;
        }
      }
      return true;
    }),
    { numRuns: runs(1000), ...unitSeed() },
  );
  t.ok(untouched > 0 && tiered > 0, `${untouched} pods untouched, ${tiered} with tier rules`);
});

t.test('a plan cache kept across ClusterNetworkPolicy changes plans like a fresh planner', async (t) => {
  let steps = 0;
  fc.assert(
    fc.property(clusterArb, fc.array(clusterArb, { minLength: 1, maxLength: 4 }), (input, nexts) => {
      const first = build(input, true);
      const caches = NODES.map(() => new PlanCache());
      const cached = (index: ClusterIndex) =>
        NODES.map((n, i) => text(new Planner(index, caches[i]).planNode(n)));
      cached(first);
      for (const next of nexts) {
        // The same pod and namespace objects, other ClusterNetworkPolicies (as an agent sees one change).
        const policies = build({ ...input, cnps: next.cnps }, true).state.clusterPolicies;
        const index = new ClusterIndex({ ...first.state, clusterPolicies: policies });
        const fresh = NODES.map((n) => text(new Planner(new ClusterIndex(index.state)).planNode(n)));
        if (cached(index).join('\n') !== fresh.join('\n')) return false;
        steps++;
      }
      return true;
    }),
    { numRuns: runs(300), ...unitSeed() },
  );
  t.ok(steps > 0, `${steps} changes compared`);
});
