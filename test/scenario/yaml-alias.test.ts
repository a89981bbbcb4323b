// Issue 13 (small): an unresolved YAML alias inside a scenario's `apply` text crashed `tollgate simulate`
// with a stack trace (the yaml library throws it only when converting); now it is a usage error naming
// the file, the step and the document.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { childEnv } from '../_tier.ts';

const root = resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

async function simulate(file: string) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [join(root, 'bin/tollgate.js'), 'simulate', file],
      {
        env: childEnv(),
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    return error as { code: number; stdout: string; stderr: string };
  }
}

t.test('an unresolved alias in apply text names the file, step and document', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-alias-'));
  const file = join(dir, 'alias.yaml');
  writeFileSync(
    file,
    `name: alias
namespaces: [{name: x}]
pods: [{name: x/a, labels: {pod: a}}]
steps:
- apply: |
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: p, namespace: x}
    spec: {podSelector: {}}
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: q, namespace: x}
    spec:
      podSelector: *sel
- expect: ['x/a -> x/a:80 allow']
`,
  );
  const r = await simulate(file);
  t.equal(r.code, 2, 'a usage error, not a crash');
  t.match(r.stderr, /alias\.yaml: steps\[0\]\.apply: document 1: Unresolved alias .*: sel/);
  t.notMatch(r.stderr, /ReferenceError|\n\s+at /, 'no stack trace');

  const top = join(dir, 'top.yaml');
  writeFileSync(top, 'name: top\npods: [{name: x/a, labels: *nolabels}]\nsteps: []\n');
  const r2 = await simulate(top);
  t.equal(r2.code, 2);
  t.match(r2.stderr, /top\.yaml: not valid YAML: Unresolved alias .*: nolabels/);
});
