// `tollgate agent` flag checks that run before anything is started: a bad value is a usage error (exit 2)
// naming the flag, and --help documents the garbage-collection bound the DaemonSet relies on.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import t from 'tap';
import { agentCommand } from '../../src/cli/agent.ts';
import { runInProcess } from './_in-process.ts';

const root = resolve(import.meta.dirname, '../..');
const real = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin/tollgate.js'), 'agent', ...args], {
    encoding: 'utf8',
    // Nothing of the caller's environment but PATH, and the compile cache the unit tier shares (speed only).
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
    },
  });
/** The same checks in this process (no process per case); `real` proves main's wiring once each way. */
const agent = async (...args: string[]) => {
  const r = await runInProcess(agentCommand, args);
  return { status: r.code, stdout: r.stdout, stderr: r.stderr };
};

t.test('a real process: a bad flag exits 2 naming it, --help exits 0', async (t) => {
  const bad = real('--node-name', 'n1', '--heap-growth-percent=abc');
  t.equal(bad.status, 2);
  t.match(bad.stderr, "tollgate agent: --heap-growth-percent must be an integer from 0 to 1000, not 'abc'");
  const help = real('--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /^Usage: tollgate agent /);
});

t.test('--heap-growth-percent takes an integer from 0 to 1000', async (t) => {
  for (const bad of ['abc', '-5', '2.5', '1001']) {
    const r = await agent('--node-name', 'n1', `--heap-growth-percent=${bad}`);
    t.equal(r.status, 2, `'${bad}' is a usage error`);
    t.match(r.stderr, `--heap-growth-percent must be an integer from 0 to 1000, not '${bad}'`);
  }
  const help = await agent('--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /--heap-growth-percent N .*\n.*default 50;/);
});

t.test('the self-healing flags: checked values, documented in --help', async (t) => {
  const bad = await agent('--node-name', 'n1', '--boot-closed=maybe');
  t.equal(bad.status, 2);
  t.match(bad.stderr, "--boot-closed must be true or false, not 'maybe'");
  const timeout = await agent('--node-name', 'n1', '--liveness-timeout-ms=soon');
  t.equal(timeout.status, 2);
  t.match(timeout.stderr, "--liveness-timeout-ms must be a positive number of milliseconds, not 'soon'");
  const help = (await agent('--help')).stdout;
  t.match(help, /--liveness-timeout-ms N .*\n.*\n.*\(default 180000\)/);
  t.match(help, /--state-dir DIR .*\n.*\/var\/lib\/tollgate/);
  t.match(help, /--boot-closed=BOOL/);
  t.match(
    help,
    /Trade-off: while the API server is unreachable after a reboot,\n.*this node's pods have no network/,
  );
  t.match(help, /"standby"/);
});

t.test('--max-batch-bytes (hidden) is refused below the smallest plannable batch', async (t) => {
  for (const bad of ['0', '4095', 'abc', '5000.5']) {
    const r = await agent('--node-name', 'n1', `--max-batch-bytes=${bad}`);
    t.equal(r.status, 2, `'${bad}' is a usage error`);
    t.match(r.stderr, `--max-batch-bytes must be a whole number of at least 4096, not '${bad}'`);
  }
});
