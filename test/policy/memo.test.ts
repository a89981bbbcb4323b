// The memos of policy and compile live in one object passed down (issue 16): no module keeps a cache of
// its own. A scan of the sources guards it; the Memo itself is checked for its bound and its sharing.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BoundedMemo, Memo } from '../../src/policy/memo.ts';
import { buildState, normalizePod } from '../../src/policy/normalize.ts';

const root = join(import.meta.dirname, '../../src');

/**
 * Module-level state in a file: a top-level `let`/`var`, or a top-level binding created with a mutable
 * collection (what every cache of these layers was). Constants made of literals are not caches.
 */
function moduleState(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (/^(export )?(let|var) /.test(line)) out.push(line.trim());
    else if (/^(export )?const \w+\s*(:[^=]+)?=\s*new (Map|WeakMap|Set|WeakSet|WeakRef)\b/.test(line))
      out.push(line.trim());
  }
  return out;
}

/**
 * Known exceptions, each with its reason. compile/runs.ts belongs to the element model work (elem16):
 * its `scratch` is a buffer whose content never outlives one call (not a cache), to be moved with it.
 */
const ALLOWED = new Map([['compile/runs.ts', ['let scratch = new Float64Array(0);']]]);

t.test('no module-level mutable caches in src/policy and src/compile', async (t) => {
  let files = 0;
  for (const dir of ['policy', 'compile']) {
    for (const name of readdirSync(join(root, dir), { recursive: true }) as string[]) {
      if (!name.endsWith('.ts')) continue;
      files++;
      const rel = `${dir}/${name}`;
      const found = moduleState(readFileSync(join(root, dir, name), 'utf8'));
      const allowed = ALLOWED.get(rel) ?? [];
      t.same(
        found.filter((f) => !allowed.includes(f)),
        [],
        `${rel}: module-level state (put it in Memo, PlanCache or DesiredCache)`,
      );
    }
  }
  t.ok(files > 10, `${files} files scanned`);
});

t.test('the scan finds what it guards against', async (t) => {
  t.same(moduleState('const ids = new Map<string, string>();\nfunction f() {\n  const x = new Map();\n}'), [
    'const ids = new Map<string, string>();',
  ]);
  t.same(moduleState('const keyCache: WeakMap<object, string> = new WeakMap();'), [
    'const keyCache: WeakMap<object, string> = new WeakMap();',
  ]);
  t.same(moduleState('let next = 0;\nexport const EMPTY: readonly string[] = [];'), ['let next = 0;']);
});

t.test('BoundedMemo keeps at most its bound and answers from what it keeps', async (t) => {
  const memo = new BoundedMemo<number>(3);
  let made = 0;
  for (let i = 0; i < 10; i++) memo.get(`k${i}`, () => ++made);
  t.ok(memo.size <= 3, `${memo.size} entries`);
  t.equal(made, 10);
  const v = memo.get('k9', () => ++made);
  t.equal(made, 10, 'a kept entry is not made again');
  t.equal(v, 10);
});

t.test('label sets are shared through a memo, and only through one', async (t) => {
  const pod = (name: string) => ({
    metadata: { name, namespace: 'ns', labels: { app: 'web', tier: 'front' } },
    spec: { nodeName: 'n1' },
    status: { podIP: '10.244.1.1' },
  });
  const memo = new Memo();
  t.equal(normalizePod(pod('a'), memo).labels, normalizePod(pod('b'), memo).labels, 'one memo: shared');
  t.not(normalizePod(pod('a')).labels, normalizePod(pod('b')).labels, 'no memo: nothing kept anywhere');
  t.not(normalizePod(pod('a'), new Memo()).labels, normalizePod(pod('b'), memo).labels, 'memos are apart');
  const state = buildState({ namespaces: [], nodes: [], pods: [pod('a'), pod('b')], policies: [] });
  t.equal(state.pods[0]!.labels, state.pods[1]!.labels, 'one buildState shares its labels');
  t.same(state.pods[0]!.labels, { app: 'web', tier: 'front' });
});
