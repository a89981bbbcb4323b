// bench/compare.ts without running a benchmark: reading a run's JSON line, its headline figures, medians,
// ratios oriented so ≥ 1 means "head not slower", and benchmarks the base lacks.
import t from 'tap';
import {
  figuresOf,
  formatRows,
  lastJsonLine,
  median,
  numberAt,
  orientedRatio,
  summarize,
} from '../../bench/compare.ts';

t.test('the result is the last JSON line naming the benchmark', async (t) => {
  const out = [
    '{"bench":"policy","plan_ms":1}',
    'progress: {not json',
    '{"other":true}',
    '{"bench":"policy","plan_ms":2}',
    '{"bench":"netlink","ours_ms":3}',
    '',
  ].join('\n');
  t.same(lastJsonLine(out, 'policy'), { bench: 'policy', plan_ms: 2 });
  t.throws(() => lastJsonLine('{"bench":"agent"}\n', 'policy'), { code: 'E_BENCH_OUTPUT' });
});

t.test('median: the middle value, or the mean of the two middle ones', async (t) => {
  t.equal(median([5, 1, 3]), 3);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.equal(median([7]), 7);
  t.throws(() => median([]), { code: 'E_BENCH_OUTPUT' });
});

t.test('ratios are oriented: ≥ 1 means head is not slower', async (t) => {
  // A time: head 80 ms against base 100 ms is faster.
  t.equal(orientedRatio('lower', 100, 80), 1.25);
  t.equal(orientedRatio('lower', 100, 125), 0.8);
  // A rate: head 90 connections/s against base 100 is slower.
  t.equal(orientedRatio('higher', 100, 90), 0.9);
  t.equal(orientedRatio('higher', 100, 110), 1.1);
  t.equal(orientedRatio('lower', 0, 0), 1);
  t.equal(orientedRatio('lower', 5, 0), undefined);
});

t.test('headline figures by benchmark: nested paths, lists, and a guess for unknown ones', async (t) => {
  t.equal(numberAt({ a: { b: 2 } }, 'a.b'), 2);
  t.equal(numberAt({ a: { b: '2' } }, 'a.b'), undefined);
  t.equal(numberAt({ a: null }, 'a.b'), undefined);
  t.same(figuresOf('agent-change', { pod_add: { cpu_ms_p50: 1.5 }, label_change: { cpu_ms_p50: 0.5 } }), [
    { name: 'pod_add.cpu_ms_p50', better: 'lower', value: 1.5 },
    { name: 'label_change.cpu_ms_p50', better: 'lower', value: 0.5 },
  ]);
  t.same(
    figuresOf('dataplane', {
      results: [
        { shape: 'a', policies: 100, ratio: 0.97 },
        { shape: 'b', policies: 100, ratio: 0.9 },
      ],
      conntrack: { ratio: 0.99 },
    }),
    [
      { name: 'ratio a/100', better: 'higher', value: 0.97 },
      { name: 'ratio b/100', better: 'higher', value: 0.9 },
      { name: 'conntrack.ratio', better: 'higher', value: 0.99 },
    ],
  );
  t.same(figuresOf('someday', { build_ms: 4, count: 9, label: 'x' }), [
    { name: 'build_ms', better: 'lower', value: 4 },
  ]);
});

t.test('summary: medians per side, figures the base lacks, benchmarks the base lacks', async (t) => {
  const base = [
    { plan_ms: 100, rss_mb: 50 },
    { plan_ms: 120, rss_mb: 52 },
    { plan_ms: 110, rss_mb: 51 },
  ];
  const head = [
    { plan_ms: 90, rss_mb: 60, normalize_ms: 5 },
    { plan_ms: 100, rss_mb: 60, normalize_ms: 7 },
    { plan_ms: 95, rss_mb: 60, normalize_ms: 6 },
  ];
  const rows = summarize('policy', base, head);
  const by = Object.fromEntries(rows.map((r) => [r.figure, r]));
  t.match(by.plan_ms, { base: 110, head: 95, status: 'compared', runs: [3, 3] });
  t.equal(by.plan_ms!.ratio, 110 / 95);
  t.equal(by.rss_mb!.ratio, 51 / 60, 'more memory is a ratio under 1');
  t.match(by.normalize_ms, { base: undefined, head: 6, ratio: undefined, status: 'not in base' });
  const fresh = summarize('agent-change', undefined, [{ pod_add: { cpu_ms_p50: 2 } }]);
  t.match(fresh, [{ figure: 'pod_add.cpu_ms_p50', status: 'new', base: undefined, head: 2, runs: [0, 1] }]);
  const text = formatRows([...rows, ...fresh]);
  t.match(text, /plan_ms\s+lower\s+110\s+95\s+1\.158/);
  t.match(text, /rss_mb\s+lower\s+51\s+60\s+0\.850\s+3\/3\s+< 0\.95/);
  t.match(text, /pod_add\.cpu_ms_p50\s+lower\s+-\s+2\s+new/);
});
