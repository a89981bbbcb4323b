// Incremental set elements (src/compile/runs.ts): after any sequence of member changes the elements are
// disjoint and cover exactly the union of the run's address lists, the recorded delta turns the previous
// collection into the new one, unchanged runs cost nothing, and a neighbour joining is a pure add.
import fc from 'fast-check';
import t from 'tap';
import {
  buildRunElements,
  type Pieces,
  piecesRanges,
  piecesTexts,
  type RunElements,
  type RunSpec,
  rangesOf,
} from '../../src/compile/runs.ts';
import { type AddressRange, mergeRanges, parseAddress } from '../../src/policy/address.ts';

/** A collection's elements as texts (range and suffix). */
const texts = (e: RunElements): string[] => piecesTexts(e.pieces());

const BASE = { 4: 0x0af40100n, 6: 0xfd000010024400010000000000000000n }; // 10.244.1.0, fd00:10:244:1::
/** The family r() builds: IPv4 bounds are numbers, IPv6 ones bigints (address.ts patchBounds takes both). */
let family: 4 | 6 = 4;
const r = (a: number, b = a): AddressRange => ({
  family,
  first: BASE[family] + BigInt(a),
  last: BASE[family] + BigInt(b),
});

function parse(e: string): { suffix: string; first: bigint; last: bigint } {
  const cut = e.indexOf(' ');
  const addr = cut < 0 ? e : e.slice(0, cut);
  const [a1, a2] = addr.includes('-') ? addr.split('-') : [addr, addr];
  return {
    suffix: cut < 0 ? '' : e.slice(cut),
    first: parseAddress(a1!)!.value,
    last: parseAddress(a2!)!.value,
  };
}

/** Every (suffix, address) the elements cover, as text, and whether two elements overlap. */
function coverage(elements: Iterable<string>): { covered: Set<string>; overlap: boolean } {
  const covered = new Set<string>();
  let overlap = false;
  for (const e of elements) {
    const p = parse(e);
    for (let v = p.first; v <= p.last; v++) {
      const key = `${p.suffix}@${v}`;
      if (covered.has(key)) overlap = true;
      covered.add(key);
    }
  }
  return { covered, overlap };
}

function expected(specs: RunSpec[]): Set<string> {
  const out = new Set<string>();
  for (const s of specs)
    for (const x of mergeRanges(s.parts.flat()))
      for (let v = x.first; v <= x.last; v++) out.add(`${s.suffix}@${v}`);
  return out;
}

for (const f of [4, 6] as const)
  t.test(
    `any sequence of member changes: disjoint, exact union, delta applies (IPv${f}, property)`,
    async (t) => {
      family = f;
      t.teardown(() => {
        family = 4;
      });
      // A run is a list of address lists; each step replaces some lists (new objects) and keeps others.
      const members = fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 12 });
      const ipBlock = fc.option(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 8 })));
      const step = fc.record({
        a: members,
        b: members,
        block: ipBlock,
        keepA: fc.boolean(),
        twoRuns: fc.boolean(),
      });
      fc.assert(
        fc.property(fc.array(step, { minLength: 1, maxLength: 6 }), (steps) => {
          let previous: RunElements | undefined;
          let partA: readonly AddressRange[] | undefined;
          for (const s of steps) {
            if (!s.keepA || partA === undefined) partA = mergeRanges(s.a.map((x) => r(x)));
            const partB = mergeRanges([
              ...s.b.map((x) => r(x)),
              ...(s.block ? [r(s.block[0], s.block[0] + s.block[1])] : []),
            ]);
            const specs: RunSpec[] = [{ suffix: ' . tcp . 80', parts: [partA, partB] }];
            if (s.twoRuns) specs.push({ suffix: ' . udp . 53', parts: [partB] });
            const { elements, delta } = buildRunElements(previous, specs);
            const { covered, overlap } = coverage(texts(elements));
            if (overlap) return false;
            const want = expected(specs);
            if (covered.size !== want.size || [...want].some((k) => !covered.has(k))) return false;
            if (delta) {
              if (delta.base !== previous) return false;
              const applied = new Set(texts(previous!));
              for (const e of piecesTexts(delta.removed)) if (!applied.delete(e)) return false;
              for (const e of piecesTexts(delta.added)) {
                if (applied.has(e)) return false;
                applied.add(e);
              }
              const now = new Set(texts(elements));
              if (applied.size !== elements.size || [...applied].some((e) => !now.has(e))) return false;
            } else if (previous !== undefined && elements !== previous) {
              // No delta after a previous build only when nothing changed (the very same collection).
              return false;
            }
            previous = elements;
          }
          return true;
        }),
        { numRuns: 400 },
      );
      t.pass('400 random sequences');
    },
  );

t.test(
  'IPv4 (numbers) and IPv6 (bigints) patch alike: the same deltas, offset for offset (property)',
  async (t) => {
    const members = fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 3 })), {
      maxLength: 10,
    });
    const step = fc.record({ a: members, b: members, keepA: fc.boolean() });
    const trace = (f: 4 | 6, steps: { a: [number, number][]; b: [number, number][]; keepA: boolean }[]) => {
      family = f;
      const out: string[] = [];
      let previous: RunElements | undefined;
      let partA: readonly AddressRange[] | undefined;
      for (const s of steps) {
        if (!s.keepA || partA === undefined) partA = mergeRanges(s.a.map(([x, n]) => r(x, x + n)));
        const partB = mergeRanges(s.b.map(([x, n]) => r(x, x + n)));
        const { elements, delta } = buildRunElements(previous, [
          { suffix: ' . tcp . 80', parts: [partA, partB] },
        ]);
        const offsets = (pieces: Pieces) =>
          piecesRanges(pieces)
            .map(({ range: x }) => `${x.first - BASE[f]}-${x.last - BASE[f]}`)
            .join(',');
        out.push(delta ? `+${offsets(delta.added)} -${offsets(delta.removed)}` : '=');
        previous = elements;
      }
      family = 4;
      return out.join(' | ');
    };
    let changed = 0;
    fc.assert(
      fc.property(fc.array(step, { minLength: 2, maxLength: 6 }), (steps) => {
        const v4 = trace(4, steps);
        if (v4.includes('+')) changed++;
        return v4 === trace(6, steps);
      }),
      { numRuns: 300 },
    );
    t.ok(changed > 100, `${changed} of 300 sequences had deltas`);
  },
);

t.test('a fresh build is fully merged; a neighbour joining adds one element and deletes none', async (t) => {
  const first = buildRunElements(undefined, [{ suffix: '', parts: [[r(10), r(11), r(12)]] }]);
  t.same(texts(first.elements), ['10.244.1.10-10.244.1.12'], 'neighbours merged into one range');
  t.equal(first.delta, undefined);
  const next = buildRunElements(first.elements, [{ suffix: '', parts: [[r(10), r(11), r(12), r(13)]] }]);
  t.same(next.delta && piecesTexts(next.delta.added), ['10.244.1.13']);
  t.same(next.delta && piecesTexts(next.delta.removed), [], 'the old range is still valid and stays');
  const leave = buildRunElements(next.elements, [{ suffix: '', parts: [[r(10), r(12), r(13)]] }]);
  t.same(
    leave.delta && piecesTexts(leave.delta.removed),
    ['10.244.1.10-10.244.1.12'],
    'a range that lost an address goes',
  );
  t.same(
    leave.delta && piecesTexts(leave.delta.added),
    ['10.244.1.10', '10.244.1.12'],
    'and what remains of it comes back',
  );
});

t.test('gaps before, between and after kept ranges are all added (IPv4 numbers and IPv6)', async (t) => {
  for (const f of [4, 6] as const) {
    family = f;
    const a = [r(1), r(3), r(5)];
    const first = buildRunElements(undefined, [{ suffix: '', parts: [a] }]);
    // 0, 2, 4 and 6 join: every old range stays and four single gaps come.
    const next = buildRunElements(first.elements, [{ suffix: '', parts: [a, [r(0), r(2), r(4), r(6)]] }]);
    const offsets = (pieces: Pieces) =>
      piecesRanges(pieces).map(({ range }) => Number(range.first - BASE[f]));
    t.same(next.delta && offsets(next.delta.added), [0, 2, 4, 6], `IPv${f}: the gaps`);
    t.same(next.delta && offsets(next.delta.removed), [], `IPv${f}: nothing removed`);
    t.equal(next.elements.size, 7, `IPv${f}: seven elements`);
  }
  family = 4;
});

t.test('unchanged address lists: the same collection, no work', async (t) => {
  const part = [r(1), r(5)];
  const a = buildRunElements(undefined, [{ suffix: ' . tcp . 80', parts: [part] }]);
  const b = buildRunElements(a.elements, [{ suffix: ' . tcp . 80', parts: [part] }]);
  t.equal(b.elements, a.elements, 'identical inputs give the identical collection');
  const c = buildRunElements(a.elements, [{ suffix: ' . tcp . 80', parts: [[r(1), r(5)]] }]);
  t.equal(c.elements, a.elements, 'equal content in new lists still gives the same collection');
  const d = buildRunElements(a.elements, []);
  t.same(texts(d.elements), [], 'a run that disappears removes its elements');
  t.same(d.delta && piecesTexts(d.delta.removed).sort(), ['10.244.1.1 . tcp . 80', '10.244.1.5 . tcp . 80']);
});

t.test(
  'the union of a run equals mergeRanges of all its lists, for any number of lists (property)',
  async (t) => {
    const list = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 6 })), { maxLength: 10 })
      .map((xs) => mergeRanges(xs.map(([a, len]) => r(a, a + len))));
    const v6 = (a: number): AddressRange => ({ family: 6, first: BigInt(a), last: BigInt(a) });
    const text = (rs: readonly AddressRange[]) => rs.map((x) => `${x.family}:${x.first}-${x.last}`).join(' ');
    fc.assert(
      fc.property(fc.array(list, { maxLength: 7 }), fc.boolean(), (parts, withV6) => {
        const all = withV6 ? [...parts, mergeRanges([v6(1), v6(2), v6(9)])] : parts;
        const got = rangesOf({ suffix: '', parts: all });
        return text(got) === text(mergeRanges(all.flat()));
      }),
      { numRuns: 2000, seed: 7 },
    );
    t.pass('2000 random runs of up to 8 lists');
  },
);

t.test(
  'the union of many address lists (some the same object, some adjacent) is mergeRanges of them all (property)',
  async (t) => {
    // The one union routine on IPv4 numbers and on IPv6 bigints: both must give the canonical union.
    const list = fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 4 })), {
      maxLength: 12,
    });
    let many = 0;
    for (const f of [4, 6] as const) {
      family = f;
      fc.assert(
        fc.property(
          fc.array(list, { maxLength: 9 }),
          fc.array(fc.nat(), { maxLength: 4 }),
          fc.boolean(),
          (lists, repeats, unmerged) => {
            // Sorted and disjoint, but left unjoined when `unmerged` (adjacent ranges stay two).
            const parts: (readonly AddressRange[])[] = lists.map((l) => {
              const merged = mergeRanges(l.map(([x, n]) => r(x, x + n)));
              if (!unmerged) return merged;
              return merged.flatMap((x) =>
                x.first === x.last
                  ? [x]
                  : [
                      { ...x, last: x.first },
                      { ...x, first: x.first + 1n },
                    ],
              );
            });
            if (parts.length > 0) for (const k of repeats) parts.push(parts[k % parts.length]!);
            if (parts.length > 3) many++;
            const got = rangesOf({ suffix: '', parts });
            const want = mergeRanges(parts.flat());
            return (
              got.length === want.length &&
              got.every(
                (x, i) =>
                  x.family === want[i]!.family && x.first === want[i]!.first && x.last === want[i]!.last,
              )
            );
          },
        ),
        { numRuns: 400 },
      );
    }
    family = 4;
    t.ok(many > 200, `${many} cases merged more than three lists`);
  },
);
