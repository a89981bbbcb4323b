// Conntrack entries for the agent's unit tests (cut, usage): a TCP entry as ctnetlink decodes it.
import type { CtEntry, CtTuple } from '../../src/conntrack/entry.ts';
import { parseAddress } from '../../src/policy/address.ts';

const addr = (s: string) => parseAddress(s)!;

/** src:sport -> dst:dport, ESTABLISHED, id = sport; replySrc/replyPort: the answering end after DNAT. */
export function tcp(
  src: string,
  sport: number,
  dst: string,
  dport: number,
  replySrc = dst,
  replyPort = dport,
): CtEntry {
  const orig: CtTuple = { src: addr(src), dst: addr(dst), protocol: 6, sport, dport };
  const reply: CtTuple = { src: addr(replySrc), dst: addr(src), protocol: 6, sport: replyPort, dport: sport };
  return {
    family: orig.src.family,
    orig,
    reply,
    status: 0xe,
    zone: 0,
    mark: 0,
    id: sport,
    tcpState: 'ESTABLISHED',
  };
}
