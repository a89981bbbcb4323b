// The real-cluster harness's cleanup when its test process is killed (SIGKILL: no exit hook runs): the boxes
// die with it (setpriv --pdeathsig + unshare --kill-child), and the next run's sweeper removes what the dead
// run left (netns, cgroups, run dir, state file) while leaving live runs alone. Light: one box, no cluster.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { scaledMs } from '../../src/lab/load.ts';
import { STATE_DIR, sweepDeadRuns } from './_boxes.ts';
import { waitFor } from './_cluster.ts';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces, mounts, cgroups)');
} else {
  t.test('a SIGKILLed run takes its box down; the sweeper removes the rest', async (t) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, '_dead-run-child.ts')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const info = await waitFor('the child to start its box', 30_000, async () => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      return line ? (JSON.parse(line) as { id: string; init: number }) : undefined;
    });
    const statePath = join(STATE_DIR, `${info.id}.json`);
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as {
      dir: string;
      netns: string[];
      cgroups: string[];
    };
    t.ok(existsSync(`/proc/${info.init}`), 'the box is running');
    child.kill('SIGKILL');
    await waitFor('the box to die with its owner', 20_000, async () =>
      existsSync(`/proc/${info.init}`) ? undefined : true,
    );
    t.pass('the box died with the killed process');
    t.ok(
      existsSync(statePath) && existsSync(`/run/netns/${state.netns[0]}`),
      'its leftovers are still there',
    );
    const swept = await sweepDeadRuns();
    t.ok(swept.includes(info.id), `swept ${info.id}`);
    t.notOk(existsSync(statePath), 'state file removed');
    t.notOk(existsSync(`/run/netns/${state.netns[0]}`), 'netns removed');
    t.notOk(existsSync(state.dir), 'run dir removed');
    t.notOk(
      state.cgroups.some((d) => existsSync(d)),
      'cgroups removed',
    );
  });
  t.setTimeout(scaledMs(120_000));
}
