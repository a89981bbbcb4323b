// The agent's links to a real node (AgentParts): nf_tables notifications of our table, the per-node
// lock, and the CNI bridge's pod ranges, all in the caller's network namespace. Wiring only.
import { TABLE } from '../compile/desired.ts';
import { ConntrackSocket } from '../conntrack/socket.ts';
import { NFPROTO } from '../netlink/constants.ts';
import { TableMonitor } from '../nft/monitor.ts';
import type { AgentParts } from './agent.ts';
import { bridgeRanges } from './boot.ts';
import { NodeLock } from './lock.ts';

export function nodeParts(
  nodeName: string,
  options: { lockName?: string; bridge?: string } = {},
): AgentParts {
  return {
    monitor: (onChange, onLost, ownPort) => {
      return new TableMonitor({ family: NFPROTO.INET, table: TABLE, onChange, onLost, ownPort });
    },
    lock: new NodeLock(nodeName, options.lockName),
    kernelPodRanges: () => bridgeRanges(options.bridge ?? 'cni0'),
    conntrack: () => new ConntrackSocket(),
  };
}
