// Elements made straight from ranges (runs.ts takeMade -> ruleset.ts madeElements) must give the very
// batch bytes that parsing their texts gives, for fresh sets and for the adds of a changed set.
import fc from 'fast-check';
import t from 'tap';
import type { DesiredSet, DesiredState, KeyType } from '../../src/compile/desired.ts';
import { diffTransaction, fullTransaction } from '../../src/compile/diff.ts';
import { buildRunElements, type RunSpec, takeMade } from '../../src/compile/runs.ts';
import { type AddressRange, mergeRanges } from '../../src/policy/address.ts';

const V4 = 0x0af40100n; // 10.244.1.0
const V6 = 0xfd000010024400010000000000000000n; // fd00:10:244:1::
const list = (family: 4 | 6) =>
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 3 })), { maxLength: 8 })
    .map((xs) =>
      mergeRanges(
        xs.map(([a, len]): AddressRange => {
          const base = family === 4 ? V4 : V6;
          return { family, first: base + BigInt(a), last: base + BigInt(a + len) };
        }),
      ),
    );
const SUFFIXES = [' . tcp . 80', ' . udp . 53-60', ' . sctp . 9000', ' . tcp . 1-65535'];
const runsArb = (family: 4 | 6) =>
  fc.array(fc.tuple(fc.constantFrom(...SUFFIXES), fc.array(list(family), { minLength: 1, maxLength: 3 })), {
    maxLength: 3,
  });

function state(sets: DesiredSet[]): DesiredState {
  return { chains: new Map(), sets: new Map(sets.map((s) => [s.name, s])), podChains: new Map() };
}
const set = (name: string, key: KeyType[], elements: ReadonlySet<string>, delta?: DesiredSet['delta']) => ({
  name,
  key,
  map: false,
  interval: true,
  comment: '',
  elements,
  ...(delta ? { delta } : {}),
});
const specsOf = (runs: [string, AddressRange[][]][]): RunSpec[] => {
  const seen = new Set<string>();
  return runs.filter(([s]) => !seen.has(s) && seen.add(s)).map(([suffix, parts]) => ({ suffix, parts }));
};

t.test('made elements encode exactly like parsed texts (property)', async (t) => {
  let compared = 0;
  fc.assert(
    fc.property(runsArb(4), runsArb(6), list(4), runsArb(4), (c4a, c6, a4, c4b) => {
      const build = (discard: boolean) => {
        const c4 = buildRunElements(undefined, specsOf(c4a)).elements;
        const c6s = buildRunElements(undefined, specsOf(c6)).elements;
        const a = buildRunElements(undefined, [{ suffix: '', parts: [a4] }]).elements;
        if (discard) for (const e of [c4, c6s, a]) takeMade(e);
        return state([
          set('x-c4', ['ipv4_addr', 'inet_proto', 'inet_service'], c4),
          set('x-c6', ['ipv6_addr', 'inet_proto', 'inet_service'], c6s),
          set('x-a4', ['ipv4_addr'], a),
        ]);
      };
      const made = fullTransaction(build(false), { replace: true }).encode().buf;
      const parsed = fullTransaction(build(true), { replace: true }).encode().buf;
      if (!made.equals(parsed)) return false;
      // A changed set: its adds (the delta) made from ranges, against the same adds parsed.
      const diff = (discard: boolean) => {
        const before = buildRunElements(undefined, specsOf(c4a)).elements;
        takeMade(before);
        const after = buildRunElements(before, specsOf(c4b));
        if (discard) takeMade(after.elements);
        const key: KeyType[] = ['ipv4_addr', 'inet_proto', 'inet_service'];
        return diffTransaction(
          state([set('x-c4', key, before)]),
          state([set('x-c4', key, after.elements, after.delta)]),
        ).tx.encode().buf;
      };
      compared++;
      return diff(false).equals(diff(true));
    }),
    { numRuns: 300, seed: 11 },
  );
  t.equal(compared, 300);
});
