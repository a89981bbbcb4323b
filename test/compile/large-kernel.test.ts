// Large tables on the real kernel (throwaway namespaces) under a batch cap: a one-million-element table
// under 65,536 bytes, and the agent benchmark's worst node under the stock 425,952 bytes, from scratch,
// over an enforcing table (a staged replace) and as a diff. Each run reads the table back and compares.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { makeNs } from './_kernel.ts';

const child = join(dirname(fileURLToPath(import.meta.url)), '_program-child.ts');

function run(ns: string, ...args: string[]) {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, child, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 1_200_000,
  });
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as { ok: boolean; out: Record<string, unknown>[]; error?: string };
  } catch {
    throw new Error(`child: ${r.status} ${r.stderr}\n${r.stdout}`);
  }
}

t.test('a one-million-element table programs under a 65,536-byte cap', async (t) => {
  const ns = makeNs(t, 'm');
  const r = run(ns, 'million', '65536', '1000000');
  t.ok(r.ok, r.error ?? 'programmed');
  const [first] = r.out;
  t.match(first, { staged: true, kind: 'full' }, 'staged');
  t.ok((first?.maxBytes as number) <= 65_536, `largest batch ${first?.maxBytes} bytes`);
  t.comment(JSON.stringify(r.out));
  t.same(first?.wrong, [], '2,001 sampled lookups: members in, the addresses between them out');
  t.same(first?.hooked, ['forward forward accept'], 'the base chain is hooked');
});

t.test("the benchmark cluster's largest nodes program under the stock cap", async (t) => {
  const ns = makeNs(t, 'b');
  const r = run(ns, 'bench', '425952', 'node3', 'node7', 'node0');
  t.ok(r.ok, r.error ?? 'programmed');
  t.equal(r.out.length, 4);
  for (const [i, o] of r.out.entries()) {
    t.match(o, { equal: true }, `program ${i} reads back as desired`);
    t.ok((o.maxBytes as number) <= 425_952, `program ${i}: largest batch ${o.maxBytes} bytes`);
  }
  t.match(r.out[0], { staged: true, kind: 'full' }, 'from scratch: staged');
  t.match(r.out[1], { staged: true, kind: 'full' }, 'over an enforcing table: staged');
  t.comment(JSON.stringify(r.out));
});

t.test('peers x ports policies (address classes) program and read back', async (t) => {
  const ns = makeNs(t, 'w');
  const r = run(ns, 'wide', '65536', '100', '460', '700');
  t.ok(r.ok, r.error ?? 'programmed');
  t.equal(r.out.length, 4);
  for (const [i, o] of r.out.entries()) {
    t.match(o, { equal: true }, `program ${i} reads back as desired`);
    t.ok((o.maxBytes as number) <= 65_536, `program ${i}: largest batch ${o.maxBytes} bytes`);
  }
  t.comment(JSON.stringify(r.out));
});
