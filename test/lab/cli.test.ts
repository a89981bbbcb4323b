// `tollgate lab up|down|list` end to end: a detached demo lab survives the command, answers curl, and
// `lab down ID` removes it with its processes. Must only remove the lab it created.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { netnsNames, running, skipUnlessRoot } from './helpers.ts';

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const tollgate = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });

t.test('lab --help and bad arguments', async (t) => {
  const help = tollgate('lab', '--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /tollgate lab up \[--nodes N\]/);
  t.match(help.stdout, /tollgate lab down \[ID\.\.\.\]/);
  t.equal(tollgate('lab').status, 2, 'no subcommand');
  t.equal(tollgate('lab', 'fly').status, 2, 'unknown subcommand');
  const bad = tollgate('lab', 'up', '--nodes', '0');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--nodes must be 1\.\.50/);
});

t.test('lab up leaves a working detached lab that lab down removes', { skip: skipUnlessRoot }, async (t) => {
  const id = `t${randomBytes(3).toString('hex')}`;
  t.teardown(() => {
    tollgate('lab', 'down', id);
  });
  const up = tollgate('lab', 'up', '--nodes', '2', '--pods', '3', '--id', id);
  t.equal(up.status, 0, up.stderr);
  t.match(up.stdout, `lab ${id} is up`);
  const namespaces = (await netnsNames()).filter((ns) => ns.startsWith(`tglab-${id}-`));
  t.equal(namespaces.length, 1 + 2 + 1 + 3);
  const pids = namespaces.flatMap((ns) =>
    execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean),
  );
  t.equal(pids.length, 2 + 1 + 3, 'node, host and pod agents outlive the command');
  // x/a is on node 1, y/a on node 2: a cross-node HTTP request from inside the pod, as a user would type it.
  // As a user would type it, from inside the pod (-g: an IPv6 URL has brackets).
  const curl = (url: string) =>
    spawnSync(
      'ip',
      ['netns', 'exec', `tglab-${id}-pod-x_a`, 'curl', '-sSg', '--noproxy', '*', '--max-time', '2', url],
      { encoding: 'utf8' },
    );
  // x/a is on node 1, y/a on node 2: a cross-node HTTP request.
  const cross = curl('http://10.244.2.10/');
  t.match(cross.stdout, /^y\/a 80\/TCP/, cross.stderr);
  // The printout gives the outside host's IPv6 address too, and it answers over IPv6 from a pod.
  t.match(up.stdout, /host\/backup 203\.0\.113\.10 2001:db8:203:0:113::10 /);
  const v6 = curl('http://[2001:db8:203:0:113::10]/');
  t.match(v6.stdout, /^host\/backup 80\/TCP fd00:10:244:1::a/, v6.stderr);
  t.match(tollgate('lab', 'list').stdout, new RegExp(`${id} +${namespaces.length} namespaces +detached`));
  const down = tollgate('lab', 'down', id);
  t.equal(down.status, 0);
  t.match(down.stdout, `removed lab ${id}`);
  t.same(
    (await netnsNames()).filter((ns) => ns.startsWith(`tglab-${id}-`)),
    [],
  );
  const alive: string[] = [];
  for (const pid of pids) if (await running(pid)) alive.push(pid);
  t.same(alive, [], 'agents killed');
  t.equal(tollgate('lab', 'down', id).status, 1, 'a second down names the missing lab');
});
