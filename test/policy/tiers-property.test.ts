// Property (semantics 20-24): on random clusters with random ClusterNetworkPolicies and NetworkPolicies,
// the tier evaluator agrees with a plain reference written here from the raw objects (its own selector,
// CIDR and port matching; only the NetworkPolicy tier's verdict is taken from evaluate(), whose own tests
// cover it). And with no ClusterNetworkPolicy the tier evaluator is evaluate(), exactly.
import fc from 'fast-check';
import t from 'tap';
import type { DirectionVerdict } from '../../src/policy/evaluate.ts';
import { evaluate } from '../../src/policy/evaluate.ts';
import { evaluateTiers } from '../../src/policy/tiers.ts';
import { runs, unitSeed } from '../_tier.ts';
import {
  build,
  clusterArb,
  flowIn,
  flowsArb,
  flowsOf,
  type Input,
  type Labels,
  NAMESPACES,
  type RawRule,
  type Ref,
  type Sel,
} from './tier-cluster.ts';

// ---- The reference, from the raw input ----

const selects = (sel: Sel | undefined, labels: Labels) =>
  Object.entries(sel?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

function v4(text: string): number {
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(v4(ip) / size) === Math.floor(v4(base) / size);
}

function reference(
  input: Input,
  from: Ref,
  fromIp: string,
  to: Ref,
  toIp: string,
  protocol: string,
  port: number,
  np: (dir: 'ingress' | 'egress') => DirectionVerdict | undefined,
): boolean {
  const nsLabels = (ns: string): Labels => ({
    ...input.nsLabels[NAMESPACES.indexOf(ns)],
    'kubernetes.io/metadata.name': ns,
  });
  const pod = (r: Ref) => (r.kind === 'pod' ? input.pods[r.i]! : undefined);
  if (from.kind === 'pod' && to.kind === 'pod' && from.i === to.i) return true;
  if (from.kind === 'pod' && to.kind === 'node' && pod(from)!.node === to.name) return true;
  if (from.kind === 'node' && to.kind === 'pod' && pod(to)!.node === from.name) return true;

  const peerHits = (peer: Record<string, unknown>, other: Ref, otherIp: string): boolean => {
    const o = pod(other);
    if ('namespaces' in peer) return o !== undefined && selects(peer.namespaces as Sel, nsLabels(o.ns));
    if ('pods' in peer) {
      const p = peer.pods as { podSelector: Sel; namespaceSelector?: Sel };
      return (
        o !== undefined && selects(p.namespaceSelector, nsLabels(o.ns)) && selects(p.podSelector, o.labels)
      );
    }
    if ('nodes' in peer)
      return other.kind === 'node' && selects(peer.nodes as Sel, { 'kubernetes.io/hostname': other.name });
    return (peer.networks as string[]).some((c) => inCidr(otherIp, c));
  };
  const portHits = (
    proto: Record<string, unknown>,
    dest: (typeof input.pods)[number] | undefined,
  ): boolean => {
    if (!['TCP', 'UDP', 'SCTP'].includes(protocol)) return false;
    if ('destinationNamedPort' in proto)
      return (
        dest?.ports.some(([n, p, pr]) => n === proto.destinationNamedPort && p === port && pr === protocol) ??
        false
      );
    const [key, value] = Object.entries(proto)[0] as [
      string,
      { destinationPort: { number?: number; range?: { start: number; end: number } } },
    ];
    if (key.toUpperCase() !== protocol) return false;
    const d = value.destinationPort;
    return d.number !== undefined ? d.number === port : d.range!.start <= port && port <= d.range!.end;
  };
  /** 'Accept' | 'Deny' | 'Pass' when the rule matches, else undefined; broken rules fail closed. */
  const ruleAction = (
    rule: RawRule,
    dir: 'ingress' | 'egress',
    subject: Ref,
    other: Ref,
    otherIp: string,
  ) => {
    const peers = rule.peers as Record<string, unknown>[];
    const named = (rule.protocols ?? []).some((p) => 'destinationNamedPort' in p);
    const broken =
      peers.some((p) => Object.keys(p).length === 0) ||
      (named && peers.some((p) => 'nodes' in p || 'networks' in p));
    if (broken) return rule.action === 'Accept' ? undefined : 'Deny';
    if (!peers.some((p) => peerHits(p, other, otherIp))) return undefined;
    const dest = dir === 'ingress' ? pod(subject) : pod(other);
    if (rule.protocols && !rule.protocols.some((p) => portHits(p, dest))) return undefined;
    return rule.action;
  };
  const tierDecision = (
    tier: string,
    dir: 'ingress' | 'egress',
    subject: Ref,
    other: Ref,
    otherIp: string,
  ) => {
    const s = pod(subject)!;
    const hits: { priority: number; name: string; i: number; action: string }[] = [];
    input.cnps.forEach((c, n) => {
      if (c.tier !== tier) return;
      const subj = c.subject as { namespaces?: Sel; pods?: { podSelector: Sel; namespaceSelector?: Sel } };
      const inSubject = subj.namespaces
        ? selects(subj.namespaces, nsLabels(s.ns))
        : selects(subj.pods!.namespaceSelector, nsLabels(s.ns)) && selects(subj.pods!.podSelector, s.labels);
      if (!inSubject) return;
      c[dir].forEach((rule, i) => {
        const action = ruleAction(rule, dir, subject, other, otherIp);
        if (action) hits.push({ priority: c.priority, name: `cnp${n}`, i, action });
      });
    });
    hits.sort(
      (a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) || a.i - b.i,
    );
    return hits[0]?.action;
  };
  const direction = (dir: 'ingress' | 'egress', subject: Ref, other: Ref, otherIp: string): boolean => {
    const admin = tierDecision('Admin', dir, subject, other, otherIp);
    if (admin === 'Accept') return true;
    if (admin === 'Deny') return false;
    const v = np(dir)!;
    if (v.isolatedBy.length > 0) return v.allowed;
    return tierDecision('Baseline', dir, subject, other, otherIp) !== 'Deny';
  };
  const egress = from.kind === 'pod' ? direction('egress', from, to, toIp) : true;
  const ingress = to.kind === 'pod' ? direction('ingress', to, from, fromIp) : true;
  return egress && ingress;
}

t.test('the tier evaluator agrees with the reference (points 20-24)', async (t) => {
  let flows = 0;
  const decided = { Admin: 0, NetworkPolicy: 0, Baseline: 0, default: 0 };
  fc.assert(
    fc.property(clusterArb, flowsArb, (input, seeds) => {
      const index = build(input, true);
      for (const f of flowsOf(input, seeds)) {
        const flow = flowIn(index, f);
        const got = evaluateTiers(index, flow);
        const np = evaluate(index, flow);
        const want = reference(
          input,
          f.from[1],
          f.from[0],
          f.to[1],
          f.to[0],
          f.protocol,
          f.port,
          (d) => np[d],
        );
        if (got.allowed !== want) return false;
        for (const d of [got.egress, got.ingress]) if (d) decided[d.decidedBy]++;
        flows++;
      }
      return true;
    }),
    { numRuns: runs(400), ...unitSeed() },
  );
  t.ok(flows > 0, `${flows} flows compared`);
  // The property is only worth something if every tier decides some of them.
  for (const [tier, n] of Object.entries(decided)) t.ok(n > 0, `${n} directions decided by ${tier}`);
});

t.test('without ClusterNetworkPolicies the tier evaluator is evaluate(), exactly', async (t) => {
  let flows = 0;
  fc.assert(
    fc.property(clusterArb, flowsArb, (input, seeds) => {
      const index = build(input, false);
      for (const f of flowsOf(input, seeds)) {
        const flow = flowIn(index, f);
        const got = evaluateTiers(index, flow);
        const want = evaluate(index, flow);
        if (got.allowed !== want.allowed || got.reason !== want.reason) return false;
        if (JSON.stringify(got.egress?.networkPolicy) !== JSON.stringify(want.egress)) return false;
        if (JSON.stringify(got.ingress?.networkPolicy) !== JSON.stringify(want.ingress)) return false;
        flows++;
      }
      return true;
    }),
    { numRuns: runs(200) },
  );
  t.ok(flows > 0, `${flows} flows compared`);
});
