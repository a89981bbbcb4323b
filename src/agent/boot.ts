// Closed at boot: the node's pod ranges, remembered in a small state file (or read from the CNI bridge's
// addresses over rtnetlink), and the minimal fail-closed table the agent programs for them when no table
// exists before its first complete list. Builds the state and reads/writes the file; never decides when
// to program (agent.ts does).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRtNetlink } from 'netlink';
import { BASE_CHAIN, type DesiredState, type RuleSpec } from '../compile/desired.ts';
import { GroupElements } from '../compile/runs.ts';
import { formatAddress, parseCidr } from '../policy/address.ts';
import { isNotFound, TollgateError } from '../util/errors.ts';

/** E_AGENT_STATE: the state file cannot be read or written (its path and the reason). */
export class AgentStateError extends TollgateError<'E_AGENT_STATE'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_AGENT_STATE', message, options);
  }
}

/** What the agent remembers across restarts and reboots. */
export interface LastKnown {
  node: string;
  /** The node's pod ranges in prefix form (10.244.1.0/24, fd00:10:244:1::/64). */
  podCIDRs: string[];
}

const FILE = 'state.json';

/** The last-known state of `node` in `dir`, or undefined when there is none (or it is another node's). */
export function readLastKnown(dir: string, node: string): LastKnown | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, FILE), 'utf8');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw new AgentStateError(`cannot read ${join(dir, FILE)}: ${(e as Error).message}`, { cause: e });
  }
  let parsed: Partial<LastKnown>;
  try {
    parsed = JSON.parse(text) as Partial<LastKnown>;
  } catch (e) {
    throw new AgentStateError(`${join(dir, FILE)} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (parsed.node !== node) return undefined;
  const cidrs = Array.isArray(parsed.podCIDRs) ? parsed.podCIDRs : [];
  const bad = cidrs.find((c) => typeof c !== 'string' || typeof parseCidr(c) === 'string');
  if (bad !== undefined)
    throw new AgentStateError(`${join(dir, FILE)}: podCIDRs: '${String(bad)}' is not a CIDR`);
  return { node, podCIDRs: cidrs };
}

/** Writes the state atomically (a rename), so that a crash leaves the old file or the new one. */
export function writeLastKnown(dir: string, state: LastKnown): void {
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `${FILE}.${process.pid}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(state)}\n`);
    renameSync(tmp, join(dir, FILE));
  } catch (e) {
    throw new AgentStateError(`cannot write ${join(dir, FILE)}: ${(e as Error).message}`, { cause: e });
  }
}

/** The networks of a bridge's addresses (the CNI bridge holds the gateway address of the node's pod
 *  range), read over rtnetlink in the caller's network namespace. [] when there is no such link. */
export async function bridgeRanges(ifname = 'cni0'): Promise<string[]> {
  const rt = createRtNetlink();
  try {
    const links = await rt.getLinks();
    const link = links.find((l) => l.attrs.ifname === ifname);
    if (link?.data.index === undefined) return [];
    const out: string[] = [];
    for (const a of await rt.getAddresses()) {
      if (a.data.index !== link.data.index || a.attrs.address === undefined) continue;
      const bytes = a.attrs.address;
      const family = bytes.length === 4 ? 4 : 6;
      const value = BigInt(`0x${bytes.toString('hex')}`);
      const text = `${formatAddress({ family, value })}/${a.data.prefixlen ?? (family === 4 ? 32 : 128)}`;
      const cidr = parseCidr(text);
      if (typeof cidr === 'string') continue;
      // The network, not the gateway's own address.
      out.push(`${formatAddress({ family, value: cidr.network })}/${cidr.prefix}`);
    }
    return out;
  } finally {
    rt.socket.close();
  }
}

/**
 * The boot-closed table: forwarded traffic from or to the node's pod ranges is dropped, replies of
 * connections that already exist still pass (so a restarted node's established flows are not cut twice).
 * The same layout as the full table's base chain (desired.ts), with empty sets of known local pods: every
 * local address is "unknown" until the first complete list has been programmed.
 */
export function closedState(podCIDRs: readonly string[]): DesiredState {
  const rules: RuleSpec[] = [
    { kind: 'ct', states: 'established,related', verdict: 'accept', counter: false },
  ];
  const state: DesiredState = { chains: new Map(), sets: new Map(), podChains: new Map() };
  for (const family of [4, 6] as const) {
    const mine = podCIDRs.filter((c) => (c.includes(':') ? 6 : 4) === family);
    if (mine.length === 0) continue;
    const knownSet = `local${family}`;
    state.sets.set(knownSet, {
      name: knownSet,
      key: [family === 4 ? 'ipv4_addr' : 'ipv6_addr'],
      map: false,
      interval: false,
      elements: new GroupElements([]),
      comment: 'boot-closed: no pod is known yet',
    });
    for (const cidr of mine) {
      rules.push({ kind: 'unknown-local', family, field: 'saddr', cidr, knownSet });
      rules.push({ kind: 'unknown-local', family, field: 'daddr', cidr, knownSet });
    }
  }
  state.chains.set(BASE_CHAIN, {
    name: BASE_CHAIN,
    base: true,
    rules,
    comment: 'tollgate: closed until the first complete list',
  });
  return state;
}
