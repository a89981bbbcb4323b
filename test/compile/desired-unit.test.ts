// The compiler's pure parts: disjoint peer.proto.port elements (the kernel rejects overlaps), chains
// shared by pods with the same plan shape, and the base chain's order.
import fc from 'fast-check';
import t from 'tap';
import { desiredState, disjointTuples } from '../../src/compile/desired.ts';
import { parseAddress } from '../../src/policy/address.ts';
import { Planner } from '../../src/policy/plan.ts';
import { pod, policy, state } from '../policy/builders.ts';

type Tuple = Parameters<typeof disjointTuples>[0][number];

function parseElement(e: string) {
  const [addr, proto, ports] = e.split(' . ') as [string, string, string];
  const [a1, a2] = addr.includes('-') ? addr.split('-') : [addr, addr];
  const [p1, p2] = ports.includes('-') ? ports.split('-') : [ports, ports];
  return {
    first: parseAddress(a1!)!.value,
    last: parseAddress(a2!)!.value,
    proto: proto.toUpperCase(),
    pfirst: Number(p1),
    plast: Number(p2),
  };
}

t.test('disjointTuples: pairwise disjoint, same union (property)', async (t) => {
  const tuple = fc.record({
    a: fc.integer({ min: 0, max: 20 }),
    len: fc.integer({ min: 0, max: 5 }),
    proto: fc.constantFrom('TCP', 'UDP'),
    p: fc.integer({ min: 78, max: 90 }),
    plen: fc.integer({ min: 0, max: 4 }),
  });
  fc.assert(
    fc.property(fc.array(tuple, { maxLength: 8 }), (raw) => {
      const tuples: Tuple[] = raw.map((r) => ({
        range: { family: 4, first: 0x0af40100n + BigInt(r.a), last: 0x0af40100n + BigInt(r.a + r.len) },
        port: { protocol: r.proto as 'TCP' | 'UDP', first: r.p, last: r.p + r.plen },
      }));
      const out = disjointTuples(tuples).map(parseElement);
      for (let i = 0; i < out.length; i++) {
        for (let j = i + 1; j < out.length; j++) {
          const x = out[i]!;
          const y = out[j]!;
          const overlap =
            x.proto === y.proto &&
            x.first <= y.last &&
            y.first <= x.last &&
            x.pfirst <= y.plast &&
            y.pfirst <= x.plast;
          if (overlap) return false;
        }
      }
      for (let a = 0; a <= 26; a++) {
        for (const proto of ['TCP', 'UDP']) {
          for (let p = 76; p <= 96; p++) {
            const v = 0x0af40100n + BigInt(a);
            const inInput = tuples.some(
              (u) =>
                u.port.protocol === proto &&
                u.range.first <= v &&
                v <= u.range.last &&
                u.port.first <= p &&
                p <= u.port.last,
            );
            const inOutput = out.some(
              (o) => o.proto === proto && o.first <= v && v <= o.last && o.pfirst <= p && p <= o.plast,
            );
            if (inInput !== inOutput) return false;
          }
        }
      }
      return true;
    }),
    { numRuns: 500, seed: 7 },
  );
  t.pass('500 random tuple sets');
});

t.test('pods with the same plan shape share one chain; a different shape gets its own', async (t) => {
  const st = state({
    pods: [pod('x/web1', { app: 'web' }), pod('x/web2', { app: 'web' }), pod('x/db', { app: 'db' })],
    policies: [
      policy('x/web', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 80 }] }] }),
      policy('x/db', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
      }),
    ],
  });
  const d = desiredState(new Planner(st).planNode('n1'));
  const chains = d.podChains;
  t.equal(chains.get('x/web1')?.ingress, chains.get('x/web2')?.ingress);
  t.not(chains.get('x/web1')?.ingress, chains.get('x/db')?.ingress);
  t.equal(chains.get('x/web1')?.egress, undefined, 'not isolated for egress: no chain');
  t.same(
    [...d.chains.keys()].sort(),
    ['forward', chains.get('x/db')!.ingress!, chains.get('x/web1')!.ingress!].sort(),
  );
  const base = d.chains.get('forward')!.rules.map((r) => r.kind);
  t.same(base.slice(0, 2), ['ct', 'ct'], 'conntrack first: replies pass, invalid drops (point 11)');
  t.same(
    base.slice(-2),
    ['dispatch', 'dispatch'],
    'ingress dispatch last, after every egress dispatch (point 10)',
  );
});
