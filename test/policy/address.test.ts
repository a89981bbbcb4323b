// Address parsing and formatting against ip-num as the reference (property), CIDR masking, and range
// arithmetic (merge, subtract) checked point by point.

import { isIPv4 } from 'node:net';
import fc from 'fast-check';
import { IPv4, IPv6 } from 'ip-num';
import t from 'tap';
import {
  addressRange,
  formatAddress,
  type KeyMemo,
  mergeAddresses,
  mergeRanges,
  parseAddress,
  parseCidr,
  rangeContains,
  subtractRanges,
} from '../../src/policy/address.ts';

t.test('parse(format(x)) === x and both agree with ip-num, IPv4 and IPv6 (property)', async (t) => {
  const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
  const sparse6 = fc
    .array(fc.constantFrom(0, 0, 0, 1, 0xffff, 0x10, 0xfd00), { minLength: 8, maxLength: 8 })
    .map((gs) => gs.reduce((v, g) => (v << 16n) | BigInt(g), 0n));
  fc.assert(
    fc.property(fc.oneof(v6, sparse6), (value) => {
      const text = formatAddress({ family: 6, value });
      const back = parseAddress(text);
      return back?.family === 6 && back.value === value && IPv6.fromString(text).getValue() === value;
    }),
    { numRuns: 3000, seed: 11 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => {
      const text = formatAddress({ family: 4, value: BigInt(n) });
      return parseAddress(text)?.value === BigInt(n) && IPv4.fromString(text).getValue() === BigInt(n);
    }),
    { numRuns: 3000, seed: 12 },
  );
  for (const text of [
    '::',
    '::1',
    '::ffff:1.2.3.4',
    '64:ff9b::192.0.2.33',
    '1::2:3:4.5.6.7',
    'fd00:10:244:1::a',
  ]) {
    t.equal(parseAddress(text)?.value, IPv6.fromString(text).getValue(), text);
  }
  t.same(
    ['1.2.3', '256.1.1.1', 'fe80::1%eth0', 'x'].map(parseAddress),
    [undefined, undefined, undefined, undefined],
    'invalid inputs',
  );
  t.equal(formatAddress(parseAddress('fd00:0:0:0:0:0:0:1')!), 'fd00::1', 'RFC 5952 compression');
  t.equal(
    formatAddress(parseAddress('1:0:0:2:0:0:0:3')!),
    '1:0:0:2::3',
    'the longest zero run is compressed',
  );
});

t.test('CIDRs: host bits masked, prefixes validated', async (t) => {
  const c = parseCidr('10.10.1.12/24');
  t.same(typeof c === 'string' ? c : [c.prefix, formatAddress({ family: 4, value: c.network })], [
    24,
    '10.10.1.0',
  ]);
  t.type(parseCidr('10.0.0.0/33'), 'string');
  t.type(parseCidr('fd00::/129'), 'string');
  t.type(parseCidr('10.0.0.0'), 'string');
});

t.test('merge and subtract ranges agree with point membership (property)', async (t) => {
  const range = fc
    .tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 }))
    .map(([a, len]) => ({ family: 4 as const, first: BigInt(a), last: BigInt(a + len) }));
  fc.assert(
    fc.property(fc.array(range, { maxLength: 6 }), fc.array(range, { maxLength: 4 }), (ranges, holes) => {
      const merged = mergeRanges(ranges);
      const rest = subtractRanges(ranges, holes);
      for (let v = 0n; v <= 70n; v++) {
        const a = { family: 4 as const, value: v };
        const inAny = ranges.some((r) => rangeContains(r, a));
        if (merged.some((r) => rangeContains(r, a)) !== inAny) return false;
        if (rest.some((r) => rangeContains(r, a)) !== (inAny && !holes.some((h) => rangeContains(h, a))))
          return false;
      }
      // merged ranges are disjoint and not adjacent
      return merged.every((r, i) => i === 0 || r.first > merged[i - 1]!.last + 1n);
    }),
    { numRuns: 1000, seed: 13 },
  );
  t.pass('1000 random range sets');
});

t.test(
  'merging mixed families: sorted (IPv4 first), disjoint, same addresses, untouched inputs kept',
  async (t) => {
    // Values near the top of each family and near 2^32 (the float64 path must stay exact there).
    const base = (family: 4 | 6) => (family === 4 ? 0xfffffff0n - 64n : (1n << 128n) - 80n);
    const range = fc
      .tuple(
        fc.constantFrom(4 as const, 6 as const),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 8 }),
      )
      .map(([family, a, len]) => ({
        family,
        first: base(family) + BigInt(a),
        last: base(family) + BigInt(a + len),
      }));
    fc.assert(
      fc.property(fc.array(range, { maxLength: 12 }), (ranges) => {
        const merged = mergeRanges(ranges);
        for (const family of [4, 6] as const)
          for (let v = 0n; v <= 70n; v++) {
            const a = { family, value: base(family) + v };
            if (merged.some((r) => rangeContains(r, a)) !== ranges.some((r) => rangeContains(r, a)))
              return false;
          }
        for (let i = 1; i < merged.length; i++) {
          const [p, r] = [merged[i - 1]!, merged[i]!];
          if (p.family > r.family || (p.family === r.family && r.first <= p.last + 1n)) return false;
        }
        // An output equal to an input that merged with nothing else is that very object.
        return merged.every(
          (m) =>
            ranges.filter((r) => r.family === m.family && r.first <= m.last && r.last >= m.first).length !==
              1 || ranges.includes(m),
        );
      }),
      { numRuns: 1000, seed: 29 },
    );
    t.pass('1000 random mixed-family range sets');
  },
);

t.test(
  'mergeAddresses equals mergeRanges of the single addresses (also given a previous list), and keys its IPv4 result (property)',
  async (t) => {
    // Around 2^32 - 1 and at 0 the float64 path must stay exact; duplicates and both families mixed.
    const address = fc.oneof(
      fc.integer({ min: 0, max: 40 }).map((v) => ({ family: 4 as const, value: BigInt(v) })),
      fc.integer({ min: 0, max: 40 }).map((v) => ({ family: 4 as const, value: 0xffffffffn - BigInt(v) })),
      fc.integer({ min: 0, max: 40 }).map((v) => ({ family: 6 as const, value: (1n << 100n) + BigInt(v) })),
    );
    let keyed = 0;
    let reused = 0;
    fc.assert(
      fc.property(
        fc.array(address, { maxLength: 40 }),
        fc.array(address, { maxLength: 40 }),
        (addresses, before) => {
          const memo: KeyMemo = new WeakMap();
          const got = mergeAddresses(addresses, undefined, memo);
          const want = mergeRanges(addresses.map(addressRange));
          const text = (rs: readonly { family: number; first: bigint; last: bigint }[]) =>
            rs.map((r) => `${r.family}:${r.first}-${r.last}`).join(',');
          if (text(got) !== text(want)) return false;
          // With the list before a change (some addresses more, some fewer): the same result (equal ranges may be the old objects).
          const previous = mergeAddresses([
            ...addresses.filter((_, i) => i % 4 !== 0),
            ...before.slice(0, 3),
          ]);
          const patched = mergeAddresses(addresses, previous);
          if (text(patched) !== text(want)) return false;
          if (!addresses.some((a) => a.family === 6) && !before.some((a) => a.family === 6))
            reused += patched.filter((r) => previous.includes(r)).length;
          // The keys were kept in the memo, not computed again by v4Keyed.
          const k = memo.get(got) ?? undefined;
          if (addresses.some((a) => a.family === 6)) return k === undefined || got.length === 0;
          keyed++;
          return (
            k !== undefined &&
            k.keys.every((v, i) => BigInt(v) === (i % 2 ? got[i >> 1]!.last : got[i >> 1]!.first))
          );
        },
      ),
      { numRuns: 500, seed: 7 },
    );
    t.ok(keyed > 100, `${keyed} all-IPv4 inputs keyed`);
    t.ok(reused > 20, `${reused} ranges taken from the previous list`);
  },
);

t.test('the dotted-quad fast path accepts exactly what isIPv4 accepts (property)', async (t) => {
  // Strings of digits and dots near the IPv4 form: leading zeros, octets over 255, missing or extra
  // parts, spaces (which the general path trims).
  const near = fc
    .array(fc.constantFrom('0', '1', '2', '5', '9', '.', '25', '255', '256', '00', ' '), {
      minLength: 1,
      maxLength: 12,
    })
    .map((parts) => parts.join(''));
  fc.assert(
    fc.property(fc.oneof(near, fc.ipV4(), fc.string({ maxLength: 16 })), (text) => {
      const s = text.trim();
      const want = isIPv4(s) ? s.split('.').reduce((v, o) => v * 256 + Number(o), 0) : undefined;
      const got = parseAddress(text);
      return want === undefined ? got?.family !== 4 : got?.family === 4 && got.value === BigInt(want);
    }),
    { numRuns: 20_000 },
  );
  t.pass('agrees');
});
