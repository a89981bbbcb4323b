// The "machines" of the real-cluster harness: a box is a network namespace plus an `unshare` of mount, uts,
// ipc, pid and cgroup, with its own /run, /var/lib, /var/log and /opt, a sysfs of its own network namespace
// and its own cgroup subtree mounted as /sys/fs/cgroup — like a kind node container, without Docker. Test
// code only; it must not change the machine's own namespace beyond creating and removing its own netns
// files, cgroup directories and run directory, all named by the run id and swept when their run is dead.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { check, runSync } from '../../src/lab/exec.ts';
import { TollgateError } from '../../src/util/errors.ts';

export type ClusterErrorCode =
  | 'E_CLUSTER_BINARIES' // a component is not built (scripts/cluster-binaries.sh)
  | 'E_CLUSTER_START' // a box or a component did not come up in time
  | 'E_CLUSTER_COMMAND' // a command run inside the cluster failed
  | 'E_CLUSTER_RANGE'; // a lab range overlaps a route of the machine's own namespace

export class ClusterError extends TollgateError {
  declare readonly code: ClusterErrorCode;
  constructor(code: ClusterErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Every netns, cgroup and run directory of a cluster run starts with this; the sweeper touches nothing else. */
export const PREFIX = 'tgcl-';
/** One state file per run: the owner's pid and what to remove when that pid is gone. */
export const STATE_DIR = '/run/tollgate-cluster';
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface RunState {
  id: string;
  pid: number;
  dir: string;
  netns: string[];
  cgroups: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Mounted cgroup hierarchies of the machine (hybrid v1 here): mountpoint, fs type, options to mount again. */
export function cgroupMounts(): { path: string; type: 'cgroup' | 'cgroup2'; opts: string }[] {
  const out: { path: string; type: 'cgroup' | 'cgroup2'; opts: string }[] = [];
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, path, type, opts] = line.split(' ');
    if (!path?.startsWith(`${CGROUP_ROOT}/`) && path !== CGROUP_ROOT) continue;
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    // Keep the controller and name= options only; the rest are mount flags.
    const keep = (opts ?? '')
      .split(',')
      .filter((o) => !/^(rw|ro|nosuid|nodev|noexec|relatime|nsdelegate|memory_recursiveprot)$/.test(o));
    out.push({ path, type, opts: keep.join(',') });
  }
  return out;
}

/** This process's group in each hierarchy, keyed like cgroupMounts().opts ('' for cgroup2). */
function ownCgroups(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path !== undefined) out.set(controllers ?? '', path);
  }
  return out;
}

/** A box's group in every hierarchy: nested under this process's own, so the box is accounted where we are. */
export function boxCgroupDirs(name: string): string[] {
  const own = ownCgroups();
  return cgroupMounts().map((m) => join(m.path, own.get(m.opts) ?? '/', name));
}

export interface Box {
  name: string;
  netns: string;
  root: string;
  /** Host pid of the box's init (pid 1 inside it). */
  initPid: number;
  /** The `unshare` process; killing it kills init (--kill-child) and with it every process in the box. */
  unshare: ChildProcess;
  cgroups: string[];
}

/**
 * Creates the network namespace `netns` (must exist already: the caller wires veths first) into a box: a
 * process tree under `setpriv --pdeathsig KILL unshare --kill-child ...`, so the box dies with the test
 * process even on SIGKILL. `sysctls` are files bind-mounted over /proc/sys inside the box only (kubelet's
 * protectKernelDefaults reads them; the machine's values are never written).
 */
export async function startBox(opts: {
  name: string;
  netns: string;
  root: string;
  initBinary: string;
  hostname: string;
  cgroupName?: string;
  sysctls?: Record<string, string>;
  timeoutMs: number;
}): Promise<Box> {
  const { root } = opts;
  for (const d of ['run', 'var-lib', 'var-log', 'opt', 'sysctl'])
    mkdirSync(join(root, d), { recursive: true });
  const cgroups: string[] = [];
  const mounts = opts.cgroupName ? cgroupMounts() : [];
  if (opts.cgroupName) {
    for (const dir of boxCgroupDirs(opts.cgroupName)) {
      mkdirSync(dir, { recursive: true });
      // A new v1 cpuset group starts with no CPUs and no memory nodes: no process may join it until set.
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        if (existsSync(join(dir, f)) && !readFileSync(join(dir, f), 'utf8').trim())
          writeFileSync(join(dir, f), readFileSync(join(dir, '..', f), 'utf8'));
      cgroups.push(dir);
    }
  }
  const lines = ['set -eu'];
  // Enter the box's own cgroups before the cgroup namespace is made, so that they become its root.
  for (const dir of cgroups) lines.push(`echo $$ > ${dir}/cgroup.procs`);
  const inner = ['set -eu', 'mount --make-rprivate /'];
  inner.push(`hostname ${opts.hostname}`);
  inner.push('mount -t sysfs sysfs /sys');
  if (opts.cgroupName) {
    inner.push(`mount -t tmpfs -o mode=755 tmpfs ${CGROUP_ROOT}`);
    for (const m of mounts) {
      inner.push(`mkdir -p ${m.path}`);
      inner.push(
        m.type === 'cgroup2'
          ? `mount -t cgroup2 cgroup2 ${m.path}`
          : `mount -t cgroup -o ${/^name=/.test(m.opts) ? `none,${m.opts}` : m.opts} cgroup ${m.path}`,
      );
    }
    // The machine's symlinks (cpu -> cpu,cpuacct) as kubelet and runc expect them.
    for (const entry of readdirSync(CGROUP_ROOT)) {
      const p = join(CGROUP_ROOT, entry);
      try {
        const target = runSync(['readlink', p]).stdout.trim();
        if (target) inner.push(`ln -sfn ${target} ${p}`);
      } catch {}
    }
  }
  for (const [from, to] of [
    ['run', '/run'],
    ['var-lib', '/var/lib'],
    ['var-log', '/var/log'],
    ['opt', '/opt'],
  ] as const) {
    inner.push(`mount --bind ${join(root, from)} ${to}`);
  }
  for (const [key, value] of Object.entries(opts.sysctls ?? {})) {
    const file = join(root, 'sysctl', key);
    writeFileSync(file, `${value}\n`);
    inner.push(`mount --bind ${file} /proc/sys/${key.replaceAll('.', '/')}`);
  }
  inner.push('ip link set lo up');
  inner.push(`touch ${join(root, 'ready')}`);
  inner.push(`exec ${opts.initBinary}`);
  writeFileSync(join(root, 'inner.sh'), `${inner.join('\n')}\n`);
  lines.push(
    `exec unshare --mount --uts --ipc --pid --cgroup --fork --kill-child --mount-proc sh ${join(root, 'inner.sh')}`,
  );
  writeFileSync(join(root, 'outer.sh'), `${lines.join('\n')}\n`);
  const log = openSync(join(root, 'box.log'), 'a');
  const unshare = spawn(
    'setpriv',
    ['--pdeathsig', 'KILL', 'nsenter', `--net=/run/netns/${opts.netns}`, 'sh', join(root, 'outer.sh')],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  const deadline = performance.now() + opts.timeoutMs;
  while (!existsSync(join(root, 'ready'))) {
    if (unshare.exitCode !== null || performance.now() > deadline)
      throw new ClusterError(
        'E_CLUSTER_START',
        `box ${opts.name} did not start: ${tail(join(root, 'box.log'))}`,
      );
    await sleep(20);
  }
  // init is unshare's only child once it has exec'd.
  let initPid = 0;
  while (!initPid) {
    const pid = unshare.pid!;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    const c = Number(children[0]);
    if (c && readFileSync(`/proc/${c}/comm`, 'utf8').trim() !== 'sh') initPid = c;
    else if (performance.now() > deadline)
      throw new ClusterError('E_CLUSTER_START', `box ${opts.name}: init did not exec`);
    else await sleep(20);
  }
  return { name: opts.name, netns: opts.netns, root, initPid, unshare, cgroups };
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * argv that runs a program in every namespace of a box (pid too: nsenter forks into it) and in the box's
 * cgroups: nsenter enters the cgroup namespace but not the groups, and kubelet reads its own group.
 */
export function inBox(box: Box, argv: string[]): string[] {
  const join_ = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs"; shift; n=$((n-1)); done';
  return [
    'sh',
    '-ec',
    `${join_}; exec nsenter -t ${box.initPid} --all --wd=/ -- "$@"`,
    'sh',
    String(box.cgroups.length),
    ...box.cgroups,
    ...argv,
  ];
}

export interface BoxProcess {
  name: string;
  child: ChildProcess;
  log: string;
}

/** Starts a long-running component inside a box, output to <box root>/logs/<name>.log. */
export function startInBox(box: Box, name: string, argv: string[], env: NodeJS.ProcessEnv = {}): BoxProcess {
  mkdirSync(join(box.root, 'logs'), { recursive: true });
  const logFile = join(box.root, 'logs', `${name}.log`);
  const fd = openSync(logFile, 'a');
  const [file, ...args] = inBox(box, argv);
  const child = spawn(file!, args, {
    stdio: ['ignore', fd, fd],
    env: { PATH: process.env.PATH, HOME: '/root', ...env },
  });
  closeSync(fd);
  return { name, child, log: logFile };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** rmdir a cgroup tree depth-first (cgroup directories only hold kernel files; rmdir is the only delete). */
function removeCgroupTree(dir: string): boolean {
  if (!existsSync(dir)) return true;
  let ok = true;
  for (const entry of readdirSync(dir, { withFileTypes: true }))
    if (entry.isDirectory()) ok = removeCgroupTree(join(dir, entry.name)) && ok;
  try {
    rmdirSync(dir);
  } catch {
    ok = false;
  }
  return ok;
}

/** Removes what a run left: boxes (by killing their init), cgroups, netns, the run dir. Synchronous for exit hooks. */
export function teardownRunSync(state: RunState, initPids: number[] = []): void {
  for (const pid of initPids)
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  // Processes of the run that sit in its cgroups (the init of a box whose pid we lost, stray shims).
  for (const dir of state.cgroups) {
    try {
      for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
    } catch {}
  }
  const until = Date.now() + 10_000;
  while (initPids.some(alive) && Date.now() < until) runSync(['sleep', '0.05']);
  for (let i = 0; i < 100; i++) {
    if (state.cgroups.map(removeCgroupTree).every(Boolean)) break;
    // Killed processes leave their cgroups a little after exiting.
    for (const dir of state.cgroups) killCgroupTree(dir);
    runSync(['sleep', '0.1']);
  }
  for (const ns of state.netns) if (existsSync(`/run/netns/${ns}`)) runSync(['ip', 'netns', 'delete', ns]);
  if (state.dir.includes(PREFIX)) rmSync(state.dir, { recursive: true, force: true });
  rmSync(join(STATE_DIR, `${state.id}.json`), { force: true });
}

function killCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true }))
    if (entry.isDirectory()) killCgroupTree(join(dir, entry.name));
  try {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {}
  } catch {}
}

export function writeState(state: RunState): void {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(join(STATE_DIR, `${state.id}.json`), JSON.stringify(state));
}

/**
 * Removes the leftovers of runs whose owner process is dead (a killed test): their state files name
 * everything they made. Also netns named with PREFIX that no state file claims and that no process is in
 * (a run killed between creating a namespace and writing its state). Live runs are never touched.
 */
export async function sweepDeadRuns(): Promise<string[]> {
  const swept: string[] = [];
  const claimed = new Set<string>();
  if (existsSync(STATE_DIR))
    for (const f of readdirSync(STATE_DIR).filter((n) => n.endsWith('.json'))) {
      let state: RunState;
      try {
        state = JSON.parse(readFileSync(join(STATE_DIR, f), 'utf8')) as RunState;
      } catch {
        continue;
      }
      if (alive(state.pid) && !isZombie(state.pid)) {
        for (const ns of state.netns) claimed.add(ns);
        continue;
      }
      teardownRunSync(state);
      swept.push(state.id);
    }
  const r = await check(['ip', 'netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    if (!ns.startsWith(PREFIX) || claimed.has(ns)) continue;
    const pids = runSync(['ip', 'netns', 'pids', ns]).stdout.trim();
    const age = Date.now() - statSync(`/run/netns/${ns}`).mtimeMs;
    if (!pids && age > 60_000) {
      runSync(['ip', 'netns', 'delete', ns]);
      swept.push(ns);
    }
  }
  return swept;
}

function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * One cluster at a time on this machine (two CPUs: two clusters would starve each other's kubelets): a lock
 * directory holding the owner's pid; a dead owner's lock is taken over.
 */
export async function acquireClusterLock(timeoutMs: number): Promise<() => void> {
  const lock = join(STATE_DIR, 'lock');
  mkdirSync(STATE_DIR, { recursive: true });
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      return () => rmSync(lock, { recursive: true, force: true });
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {}
      if (owner === process.pid)
        throw new ClusterError('E_CLUSTER_START', 'this process already runs a cluster: stop() it first');
      if (owner && !alive(owner)) rmSync(lock, { recursive: true, force: true });
      else if (!owner && Date.now() - statSafe(lock) > 30_000) rmSync(lock, { recursive: true, force: true });
      else if (performance.now() > deadline)
        throw new ClusterError(
          'E_CLUSTER_START',
          `another cluster (pid ${owner}) held ${lock} for ${timeoutMs} ms`,
        );
      else await sleep(500);
    }
  }
}

function statSafe(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return Date.now();
  }
}
