// Test helper: throwaway network namespaces (unique per process, removed in teardown even on failure)
// and running commands or our node scripts inside them. Never touches the root namespace's nftables.

import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
let counter = 0;

export interface Teardown {
  teardown(fn: () => void): void;
}

export function makeNs(t: Teardown, tag = 'n'): string {
  const name = `tg-nft-${process.pid}-${tag}${counter++}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', name]);
  });
  return name;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function nsExec(ns: string, cmd: string, args: string[], input?: string): RunResult {
  const r = spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], {
    encoding: 'utf8',
    input,
    maxBuffer: 512 * 1024 * 1024,
  });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Runs test/nft/_child.ts inside the namespace; its last stdout line is JSON. */
export function nsChild(
  ns: string,
  ...args: string[]
): { status: number | null; result: unknown; stderr: string } {
  const r = nsExec(ns, process.execPath, [join(here, '_child.ts'), ...args]);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let result: unknown;
  try {
    result = JSON.parse(last);
  } catch {
    result = { unparsed: r.stdout };
  }
  return { status: r.status, result, stderr: r.stderr };
}

/** `nft -j list ruleset` with what legitimately differs between two namespaces removed. */
export function listJson(ns: string): unknown {
  const r = nsExec(ns, 'nft', ['-j', 'list', 'ruleset']);
  if (r.status !== 0) throw new Error(`nft -j list ruleset: ${r.stderr}`);
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === 'handle' || k === 'expires' || k === 'metainfo') continue;
        o[k] = strip(x);
      }
      return o;
    }
    return v;
  };
  return strip(JSON.parse(r.stdout));
}
