// Every command `tollgate` lists loads by its name (./NAME.ts exporting NAMECommand, see src/cli/main.ts)
// and answers --help with its own usage: the check tsc cannot make on a computed import.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { childEnv } from '../_tier.ts';

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const tollgate = (...args: string[]) =>
  spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: childEnv() });

t.test('each listed command prints its usage for --help', async (t) => {
  const usage = tollgate('--help');
  t.equal(usage.status, 0, usage.stderr);
  const names = [...usage.stdout.matchAll(/^ {2}([a-z]+) {2,}\S/gm)].map((m) => m[1]!);
  t.ok(names.length >= 8, `the main usage lists the commands (${names.join(', ')})`);
  for (const name of names) {
    const help = tollgate(name, '--help');
    t.equal(help.status, 0, `tollgate ${name} --help exits 0`, { stderr: help.stderr });
    t.match(help.stdout, new RegExp(`tollgate ${name}\\b`), `${name}: its own usage`);
  }
});

t.test('a name that is no listed command is refused, even one every object has', async (t) => {
  const r = tollgate('constructor');
  t.equal(r.status, 2, 'tollgate constructor exits 2');
  t.match(r.stderr, "tollgate: unknown command 'constructor'");
});
