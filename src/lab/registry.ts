// Bookkeeping of labs on this machine: the namespace naming scheme, an owner file per lab, the sweeper of
// stale labs and the exit/signal hooks. Must only ever touch namespaces whose name starts with NS_PREFIX.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { check, mapLimit, run, runSync } from './exec.ts';

export const NS_PREFIX = 'tglab-';
const STATE_DIR = '/run/tollgate-lab';
const LAB_NS = /^tglab-([a-z0-9]+)-/;

export function newLabId(): string {
  // 6 base-36 characters: short enough to read in `ip netns list`, random enough for parallel test files.
  const n = randomBytes(5).readUIntBE(0, 5);
  return n.toString(36).padStart(8, '0').slice(-6);
}

interface OwnerRecord {
  id: string;
  pid: number;
  /** /proc/PID/stat start time, so a recycled pid is not taken for the owner. */
  start: string;
  detached: boolean;
  createdAt: string;
}

function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function writeOwner(id: string, detached: boolean): void {
  mkdirSync(STATE_DIR, { recursive: true });
  const record: OwnerRecord = {
    id,
    pid: process.pid,
    start: processStart(process.pid) ?? '',
    detached,
    createdAt: new Date().toISOString(),
  };
  writeFileSync(`${STATE_DIR}/${id}.json`, JSON.stringify(record));
}

export function removeOwner(id: string): void {
  rmSync(`${STATE_DIR}/${id}.json`, { force: true });
}

function readOwner(id: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(`${STATE_DIR}/${id}.json`, 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

export interface LabListing {
  id: string;
  namespaces: string[];
  /** A live, attached owner process still manages this lab (a running test or benchmark). */
  owned: boolean;
  detached: boolean;
  ownerPid?: number;
  createdAt?: string;
}

function parseNetnsList(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(NS_PREFIX));
}

/** Every lab on the machine, found by namespace prefix (owner files alone would miss crashed runs). */
export async function listLabs(): Promise<LabListing[]> {
  const { stdout } = await check(['ip', 'netns', 'list']);
  const byId = new Map<string, string[]>();
  for (const ns of parseNetnsList(stdout)) {
    const id = LAB_NS.exec(ns)?.[1];
    if (id) byId.set(id, [...(byId.get(id) ?? []), ns]);
  }
  let ownerFiles: string[] = [];
  try {
    ownerFiles = readdirSync(STATE_DIR).filter((f) => f.endsWith('.json'));
  } catch {}
  for (const file of ownerFiles) {
    const id = file.slice(0, -5);
    if (!byId.has(id)) byId.set(id, []);
  }
  return [...byId].map(([id, namespaces]) => {
    const owner = readOwner(id);
    const alive = owner !== undefined && processStart(owner.pid) === owner.start;
    return {
      id,
      namespaces: namespaces.sort(),
      owned: alive && !owner.detached,
      detached: owner?.detached ?? false,
      ownerPid: owner?.pid,
      createdAt: owner?.createdAt,
    };
  });
}

/** Kills every process still inside the namespaces, then deletes them; namespaces already gone are fine. */
export async function removeNamespaces(namespaces: string[]): Promise<void> {
  await mapLimit(namespaces, 8, async (ns) => {
    const { stdout } = await run(['ip', 'netns', 'pids', ns]);
    for (const pid of stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {}
    }
  });
  if (namespaces.length > 0) {
    // -force: keep going past a namespace that is already gone.
    await run(['ip', '-force', '-batch', '-'], {
      input: `${namespaces.map((ns) => `netns del ${ns}`).join('\n')}\n`,
    });
  }
}

export function removeNamespacesSync(namespaces: string[]): void {
  for (const ns of namespaces) {
    for (const pid of runSync(['ip', 'netns', 'pids', ns]).stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {}
    }
  }
  if (namespaces.length > 0) {
    runSync(['ip', '-force', '-batch', '-'], `${namespaces.map((ns) => `netns del ${ns}`).join('\n')}\n`);
  }
}

/**
 * Removes labs: the given ids, or with none every lab no live attached owner manages (crashed runs and
 * `tollgate lab up` labs); `all` also takes labs that a running process still owns.
 */
export async function sweepLabs(options: { ids?: string[]; all?: boolean } = {}): Promise<LabListing[]> {
  const labs = await listLabs();
  const chosen = labs.filter((lab) =>
    options.ids && options.ids.length > 0 ? options.ids.includes(lab.id) : options.all || !lab.owned,
  );
  for (const lab of chosen) {
    await removeNamespaces(lab.namespaces);
    removeOwner(lab.id);
  }
  return chosen;
}

/** What a Lab gives the hooks: a synchronous teardown, since `exit` listeners cannot wait. */
export interface OpenLab {
  teardownSync(): void;
}

const open = new Set<OpenLab>();
let hooksInstalled = false;

function teardownAllSync(): void {
  for (const lab of [...open]) {
    try {
      lab.teardownSync();
    } catch {}
  }
  open.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  teardownAllSync();
  // End the process as the default action would. Re-raising rather than process.exit() lets a library such
  // as signal-exit (loaded by tap) run its own hooks and then die by the signal; an application with its own
  // graceful handler sees the signal a second time.
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.removeListener('exit', teardownAllSync);
  hooksInstalled = false;
  process.kill(process.pid, signal);
}

// SIGALRM: how tap ends a test file that ran past its timeout; its labs must not outlive it.
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGALRM'] as const;

export function registerOpenLab(lab: OpenLab): void {
  open.add(lab);
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.on('exit', teardownAllSync);
    for (const signal of SIGNALS) process.on(signal, onSignal);
  }
}

export function unregisterOpenLab(lab: OpenLab): void {
  open.delete(lab);
  if (open.size === 0 && hooksInstalled) {
    hooksInstalled = false;
    process.removeListener('exit', teardownAllSync);
    for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  }
}
