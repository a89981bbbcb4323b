// Elements packed straight from ranges (runs.ts RunElements and deltas -> nft PackedElements.ofRanges) must
// give the very batch bytes that parsing their texts gives, for fresh sets and for the changes of a set.
import fc from 'fast-check';
import t from 'tap';
import type { DesiredSet, DesiredState, KeyType } from '../../src/compile/desired.ts';
import { diffTransaction, fullTransaction } from '../../src/compile/diff.ts';
import { setObject, tableObject } from '../../src/compile/ruleset.ts';
import {
  buildRunElements,
  GroupElements,
  piecesTexts,
  type RunElements,
  type RunSpec,
  type SetElements,
} from '../../src/compile/runs.ts';
import {
  type FieldSpan,
  type NamedSet,
  PackedElements,
  type RangeGroup,
  Transaction,
} from '../../src/nft/index.ts';
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
/** The typed key tail each suffix stands for (as desired.ts portRuns writes both). */
const TAILS: Record<string, readonly FieldSpan[]> = {
  ' . tcp . 80': [
    [6, 6],
    [80, 80],
  ],
  ' . udp . 53': [
    [17, 17],
    [53, 53],
  ],
  ' . udp . 53-60': [
    [17, 17],
    [53, 60],
  ],
  ' . sctp . 9000': [
    [132, 132],
    [9000, 9000],
  ],
  ' . tcp . 1-65535': [
    [6, 6],
    [1, 65535],
  ],
};
const runsArb = (family: 4 | 6) =>
  fc.array(fc.tuple(fc.constantFrom(...SUFFIXES), fc.array(list(family), { minLength: 1, maxLength: 3 })), {
    maxLength: 3,
  });

function state(sets: DesiredSet[]): DesiredState {
  return { chains: new Map(), sets: new Map(sets.map((s) => [s.name, s])), podChains: new Map() };
}
const set = (name: string, key: KeyType[], elements: SetElements, delta?: DesiredSet['delta']) => ({
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
  return runs
    .filter(([s]) => !seen.has(s) && seen.add(s))
    .map(([suffix, parts]) => ({ suffix, tail: TAILS[suffix]!, parts }));
};

/**
 * The batch of a fresh program of `sets` (fullTransaction: elements packed from ranges), and the same
 * batch with every set's elements given as texts, which the transaction parses.
 */
function bothWays(sets: DesiredSet[]): [Buffer, Buffer] {
  const packed = fullTransaction(state(sets), { replace: false }).encode().buf;
  const parsed = new Transaction().add(tableObject());
  for (const s of [...sets].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const o = setObject(s);
    parsed.add(o);
    const texts = piecesTexts((s.elements as RunElements).pieces());
    if (texts.length > 0) parsed.addElements(o, texts);
  }
  return [packed, parsed.encode().buf];
}

t.test('packed elements encode exactly like parsed texts (property)', async (t) => {
  let compared = 0;
  let changes = 0;
  fc.assert(
    fc.property(runsArb(4), runsArb(6), list(4), runsArb(4), (c4a, c6, a4, c4b) => {
      const sets = [
        set(
          'x-c4',
          ['ipv4_addr', 'inet_proto', 'inet_service'],
          buildRunElements(undefined, specsOf(c4a)).elements,
        ),
        set(
          'x-c6',
          ['ipv6_addr', 'inet_proto', 'inet_service'],
          buildRunElements(undefined, specsOf(c6)).elements,
        ),
        set('x-a4', ['ipv4_addr'], buildRunElements(undefined, [{ suffix: '', parts: [a4] }]).elements),
      ];
      const [packed, parsed] = bothWays(sets);
      if (!packed.equals(parsed)) return false;
      // A changed set: its delta packed from ranges, against the same deletes and adds as texts.
      const key: KeyType[] = ['ipv4_addr', 'inet_proto', 'inet_service'];
      const before = buildRunElements(undefined, specsOf(c4a)).elements;
      const after = buildRunElements(before, specsOf(c4b));
      const { tx, counts } = diffTransaction(
        state([set('x-c4', key, before)]),
        state([set('x-c4', key, after.elements, after.delta)]),
      );
      const want = new Transaction();
      if (after.delta) {
        const s = setObject(set('x-c4', key, after.elements));
        const removed = piecesTexts(after.delta.removed);
        const added = piecesTexts(after.delta.added);
        if (removed.length > 0) want.deleteElements(s, removed);
        if (added.length > 0) want.addElements(s, added);
        if (counts.elementsAdded !== added.length || counts.elementsDeleted !== removed.length) return false;
        changes++;
      }
      compared++;
      return tx.encode().buf.equals(want.encode().buf);
    }),
    { numRuns: 300, seed: 11 },
  );
  t.equal(compared, 300);
  t.ok(changes > 100, `${changes} of the runs changed the set`);
});

t.test('packed elements are checked against the set, and print as nft text', async (t) => {
  const key: KeyType[] = ['ipv4_addr', 'inet_proto', 'inet_service'];
  const groups = [
    {
      bounds: [V4 + 1n, V4 + 3n],
      tail: [
        [6, 6],
        [80, 90],
      ] as const,
    },
  ];
  const c4 = setObject(set('x-c4', key, new GroupElements([])));
  const tx = new Transaction().addElements(c4, PackedElements.ofRanges(c4, groups));
  t.equal(tx.error, undefined);
  t.equal(tx.toString(), 'add element inet tollgate x-c4 { 10.244.1.1-10.244.1.3 . tcp . 80-90 }\n');
  const a4 = setObject(set('x-a4', ['ipv4_addr'], new GroupElements([])));
  const wrong = new Transaction().addElements(a4, PackedElements.ofRanges(c4, groups));
  t.match(wrong.error?.message, /x-a4.*packed elements have 12-byte keys, the set's are 4/);
  const map = setObject({ ...set('m4', ['ipv4_addr'], new GroupElements([])), map: true });
  t.match(
    new Transaction().addElements(
      map,
      PackedElements.ofRanges(a4, [{ bounds: [Number(V4), Number(V4)], tail: [] }]),
    ).error?.message,
    /packed map elements need verdicts/,
  );
  // A tail that does not fit the key, or a value out of its field's range, is refused naming the set.
  t.throws(
    () => PackedElements.ofRanges(a4, groups),
    /set inet tollgate x-a4: range elements have 3 key field/,
  );
  t.throws(
    () =>
      PackedElements.ofRanges(c4, [
        {
          bounds: [1, 1],
          tail: [
            [6, 6],
            [0, 70_000],
          ],
        },
      ]),
    /x-c4: 70000 is not a inet_service value/,
  );
});

t.test('a packed set too large for one netlink message splits exactly like parsed texts', async (t) => {
  // 5,000 single addresses on two ports: well over the 60,000 bytes one element list may take.
  const ranges: AddressRange[] = [];
  for (let i = 0; i < 5000; i += 2) ranges.push({ family: 4, first: V4 + BigInt(i), last: V4 + BigInt(i) });
  const elements = buildRunElements(undefined, [
    { suffix: ' . tcp . 80', tail: TAILS[' . tcp . 80']!, parts: [ranges] },
    { suffix: ' . udp . 53', tail: TAILS[' . udp . 53']!, parts: [ranges] },
  ]).elements;
  const key: KeyType[] = ['ipv4_addr', 'inet_proto', 'inet_service'];
  const [packed, parsed] = bothWays([set('x-c4', key, elements)]);
  t.equal(elements.size, 5000);
  t.ok(fullTransaction(state([set('x-c4', key, elements)]), { replace: false }).encode().entries.length > 3);
  t.ok(packed.equals(parsed), 'the same bytes');
});

t.test('sets of values, port sets and verdict maps: packed groups encode exactly like texts', async (t) => {
  const n = Number(V4);
  const cases: { s: DesiredSet; groups: RangeGroup[]; texts: string[] }[] = [
    {
      // Not sorted: a set without intervals keeps the order it is given in.
      s: { ...set('local4', ['ipv4_addr'], new GroupElements([])), interval: false },
      groups: [{ bounds: [n + 3, n + 3, n + 1, n + 1, n + 7, n + 7], tail: [] }],
      texts: ['10.244.1.3', '10.244.1.1', '10.244.1.7'],
    },
    {
      s: { ...set('local6', ['ipv6_addr'], new GroupElements([])), interval: false },
      groups: [{ bounds: [V6 + 10n, V6 + 10n], tail: [] }],
      texts: ['fd00:10:244:1::a'],
    },
    {
      s: { ...set('egress4', ['ipv4_addr'], new GroupElements([])), interval: false, map: true },
      groups: [
        { bounds: [n + 3, n + 3], tail: [], verdict: { kind: 'jump', chain: 'eg-a' } },
        { bounds: [n + 1, n + 1], tail: [], verdict: { kind: 'jump', chain: 'eg-b' } },
      ],
      texts: ['10.244.1.3 : jump eg-a', '10.244.1.1 : jump eg-b'],
    },
    {
      s: { ...set('x-m4', ['ipv4_addr'], new GroupElements([])), map: true },
      groups: [
        { bounds: [n + 256, n + 511], tail: [], verdict: { kind: 'goto', chain: 'in-k2' } },
        { bounds: [n, n + 7], tail: [], verdict: { kind: 'goto', chain: 'in-k1' } },
      ],
      texts: ['10.244.2.0/24 : goto in-k2', '10.244.1.0-10.244.1.7 : goto in-k1'],
    },
    {
      s: set('x-p', ['inet_proto', 'inet_service'], new GroupElements([])),
      groups: [
        { bounds: [6, 6], tail: [[80, 80]] },
        { bounds: [17, 17], tail: [[53, 60]] },
      ],
      texts: ['tcp . 80', 'udp . 53-60'],
    },
  ];
  for (const { s, groups, texts } of cases) {
    const o = setObject(s);
    const packed = new Transaction().add(o).addElements(o, PackedElements.ofRanges(o, groups));
    const parsed = new Transaction().add(o).addElements(o, texts);
    t.equal(packed.error, undefined, `${s.name}: accepted`);
    t.ok(packed.encode().buf.equals(parsed.encode().buf), `${s.name}: the same bytes`);
    t.equal(packed.toString(), parsed.toString(), `${s.name}: the same text`);
  }
  const [local4, , egress4] = cases.map((c) => setObject(c.s));
  const refused = (o: NamedSet, groups: RangeGroup[]) => {
    try {
      return new Transaction().addElements(o, PackedElements.ofRanges(o, groups)).error?.message;
    } catch (e) {
      return (e as Error).message;
    }
  };
  t.match(
    refused(egress4!, [{ bounds: [n, n], tail: [] }]),
    /map inet tollgate egress4: a map element needs a verdict/,
  );
  t.match(
    refused(local4!, [{ bounds: [n, n], tail: [], verdict: { kind: 'drop' } }]),
    /set inet tollgate local4: a set element has no verdict/,
  );
  t.match(
    refused(local4!, [{ bounds: [n, n + 3], tail: [] }]),
    /local4: .*ranges and prefixes need a set with the interval flag/,
  );
});
