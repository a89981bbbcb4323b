// Test helper for kernel tests of the compiled table: throwaway network namespaces (removed in teardown even
// on failure), nft inside them, enforcers (src/lab/enforcer.ts) programming them over netlink, and a
// normalized `nft -j list table inet tollgate`. Never touches the root namespace's nftables.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnforcerClient } from '../../src/lab/enforcer-client.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let counter = 0;

export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function makeNs(t: Teardown, tag = 'n'): string {
  const name = `tg-cmp-${process.pid}-${tag}${counter++}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', name]);
  });
  return name;
}

/** An enforcer for `node` inside `ns`; closed in teardown (before the namespace goes). */
export function enforcer(t: Teardown, ns: string, node: string, args: string[] = []): EnforcerClient {
  const e = new EnforcerClient(ns, node, args);
  t.teardown(() => e.close());
  return e;
}

export interface NftResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function nft(ns: string, ...args: string[]): NftResult {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `nft -f -` of a script inside the namespace. */
export function nftFile(ns: string, script: string): NftResult {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { encoding: 'utf8', input: script });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Runs nft and throws with its stderr when it fails (for deliberate changes in a test). */
export function nftOk(ns: string, ...args: string[]): void {
  const r = nft(ns, ...args);
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
}

/**
 * `tollgate compile` as a user runs it (no kernel access): the nft text of a node's table. Drop reports
 * off unless `args` say otherwise, as the lab's enforcers (EnforcerClient without report flags).
 */
export function compileText(
  file: string,
  node: number,
  step: number,
  args: string[] = ['--drop-reports=off'],
): string {
  const r = spawnSync(
    process.execPath,
    [
      join(root, 'bin', 'tollgate.js'),
      'compile',
      file,
      '--node',
      String(node),
      '--step',
      String(step),
      ...args,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`tollgate compile: ${r.stderr}`);
  return r.stdout;
}

/** The raw listing (with handles): equal before and after means nothing was committed in between. */
export function rawListing(ns: string): string {
  const r = nft(ns, '-j', 'list', 'table', 'inet', 'tollgate');
  return r.status === 0 ? r.stdout : `(no table: ${r.stderr.trim()})`;
}

type JsonObject = Record<string, unknown>;

/**
 * `nft -j list table inet tollgate` without what legitimately differs between two equal tables: handles,
 * counter values, the order of chains and sets (creation order) and of set elements. Rules keep their order
 * inside each chain. undefined when the table does not exist.
 */
export function listTable(ns: string): JsonObject[] | undefined {
  const r = nft(ns, '-j', 'list', 'table', 'inet', 'tollgate');
  if (r.status !== 0) return undefined;
  const strip = (v: unknown, key = ''): unknown => {
    if (Array.isArray(v)) {
      const items = v.map((x) => strip(x));
      return key === 'elem' ? items.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) : items;
    }
    if (v && typeof v === 'object') {
      const o: JsonObject = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === 'handle' || k === 'expires' || k === 'metainfo') continue;
        if (key === 'counter' && (k === 'packets' || k === 'bytes')) continue;
        o[k] = strip(x, k);
      }
      return o;
    }
    return v;
  };
  const items = (strip((JSON.parse(r.stdout) as { nftables: unknown[] }).nftables) as JsonObject[]).filter(
    (x) => !('metainfo' in x) && Object.keys(x).length > 0,
  );
  const rank = (x: JsonObject) => {
    const [kind, body] = Object.entries(x)[0] as [string, JsonObject];
    const order = ['table', 'chain', 'set', 'map', 'rule'].indexOf(kind);
    return `${order} ${kind === 'rule' ? body.chain : body.name}`;
  };
  const named = withFreshSetNames(items);
  // Array.prototype.sort is stable: rules of one chain stay in kernel order.
  return named.sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0));
}

/**
 * A listing with every pod chain's sets under the names a fresh build gives them (`<chain>-c4`): a
 * chain that took over its predecessor's sets keeps their names (DesiredCache.lineage), which is
 * history, not meaning. The same mapping as compile/verify.ts canonicalSetNames, on nft's JSON.
 */
function withFreshSetNames(items: JsonObject[]): JsonObject[] {
  const renames = new Map<string, string>();
  for (const x of items) {
    const rule = x.rule as JsonObject | undefined;
    const chain = rule?.chain;
    if (typeof chain !== 'string' || !/^(in|eg)-/.test(chain)) continue;
    for (const [, name] of JSON.stringify(rule).matchAll(/"@([^"]+)"/g)) {
      const m = /^(.+)(-[ac][46]|-p|-m[46])$/.exec(name!);
      if (m && m[1] !== chain) renames.set(name!, `${chain}${m[2]}`);
    }
  }
  if (renames.size === 0) return items;
  return items.map((x) => {
    const [kind, body] = Object.entries(x)[0] as [string, JsonObject];
    if ((kind === 'set' || kind === 'map') && typeof body.name === 'string' && renames.has(body.name))
      return { [kind]: { ...body, name: renames.get(body.name)! } };
    if (kind !== 'rule') return x;
    return JSON.parse(
      JSON.stringify(x).replace(/"@([^"]+)"/g, (all, name: string) =>
        renames.has(name) ? `"@${renames.get(name)}"` : all,
      ),
    ) as JsonObject;
  });
}
