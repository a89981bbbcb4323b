// Decodes one nfnetlink_log packet message (NFULNL_MSG_PACKET) into a drop report's raw facts: group,
// prefix, interfaces, time, sequence number, and the L3/L4 headers of the copied payload. Pure bytes: no
// socket, no attribution to pods or policies (that belongs to the agent).

import { Attrs } from '../netlink/attr.ts';
import { NFPROTO, NFULA, NFULNL_MSG, ulogType } from '../netlink/constants.ts';
import type { NlMessage } from '../netlink/message.ts';
import { NFGENMSG_LEN } from '../netlink/message.ts';
import { protoName } from '../nft/datatypes.ts';
import { formatIpv6Groups } from '../util/ipv6.ts';
import { NflogError } from './errors.ts';

const PROTO = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132, ICMPV6: 58, UDPLITE: 136 } as const;
/** IPv6 extension headers that are skipped to reach the transport header (RFC 8200 order does not matter). */
const IPV6_EXT = { HOPOPTS: 0, ROUTING: 43, FRAGMENT: 44, AH: 51, DSTOPTS: 60 } as const;

/** The network and transport headers of a reported packet, as far as the copied bytes reach. */
export interface PacketHeaders {
  ipVersion: 4 | 6;
  src: string;
  dst: string;
  /** Transport protocol number (after IPv6 extension headers), and its nft name ("tcp", "132"). */
  protocol: number;
  protocolName: string;
  /** Length of the whole packet from its IP header (not only the copied part). */
  length: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte (SYN 0x02, ACK 0x10, RST 0x04). */
  tcpFlags?: number;
  icmpType?: number;
  icmpCode?: number;
  /** A fragment after the first: it carries no transport header, so no ports. */
  laterFragment?: boolean;
  /** The copy range ended before the transport header's ports: raise it. */
  truncated?: boolean;
}

export interface NflogPacket {
  group: number;
  /** nfgenmsg family: NFPROTO_IPV4 or NFPROTO_IPV6 for an inet table (the packet's own family). */
  family: number;
  /** The netfilter hook number (NF_INET_LOCAL_IN 1, FORWARD 2, LOCAL_OUT 3, ...) and the L2 protocol. */
  hook?: number;
  hwProtocol?: number;
  prefix?: string;
  mark?: number;
  indev?: number;
  outdev?: number;
  physindev?: number;
  physoutdev?: number;
  /** Kernel receive time in ms since the epoch, present only when the skb carried a timestamp. */
  kernelTimeMs?: number;
  /** Per-group (NFULA_SEQ) and global (NFULA_SEQ_GLOBAL) sequence numbers, when the bind asked for them. */
  seq?: number;
  seqGlobal?: number;
  uid?: number;
  gid?: number;
  /** Bytes of the packet that were copied (the bind's copy range caps it). */
  payloadBytes: number;
  headers?: PacketHeaders;
}

export function isPacketMessage(m: NlMessage): boolean {
  return m.type === ulogType(NFULNL_MSG.PACKET);
}

function ipv4Text(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6Text(b: Buffer, at: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(at + 2 * i));
  return formatIpv6Groups(g);
}

/** Ports and flags of the transport header at `at`; marks the headers truncated when they end early. */
function transport(h: PacketHeaders, b: Buffer, at: number): PacketHeaders {
  const p = h.protocol;
  if (p === PROTO.TCP || p === PROTO.UDP || p === PROTO.SCTP || p === PROTO.UDPLITE) {
    if (b.length < at + 4) return { ...h, truncated: true };
    const out: PacketHeaders = { ...h, sport: b.readUInt16BE(at), dport: b.readUInt16BE(at + 2) };
    if (p === PROTO.TCP) {
      if (b.length < at + 14) return { ...out, truncated: true };
      out.tcpFlags = b[at + 13]!;
    }
    return out;
  }
  if (p === PROTO.ICMP || p === PROTO.ICMPV6) {
    if (b.length < at + 2) return { ...h, truncated: true };
    return { ...h, icmpType: b[at]!, icmpCode: b[at + 1]! };
  }
  return h;
}

function ipv4(b: Buffer): PacketHeaders | undefined {
  if (b.length < 20 || b[0]! >> 4 !== 4) return undefined;
  const ihl = (b[0]! & 0xf) * 4;
  const protocol = b[9]!;
  const h: PacketHeaders = {
    ipVersion: 4,
    src: ipv4Text(b, 12),
    dst: ipv4Text(b, 16),
    protocol,
    protocolName: protoName(protocol),
    length: b.readUInt16BE(2),
  };
  if ((b.readUInt16BE(6) & 0x1fff) !== 0) return { ...h, laterFragment: true };
  return transport(h, b, ihl);
}

function ipv6(b: Buffer): PacketHeaders | undefined {
  if (b.length < 40 || b[0]! >> 4 !== 6) return undefined;
  let next = b[6]!;
  let at = 40;
  let laterFragment = false;
  // Walks the extension headers to the transport header, as far as the copied bytes allow.
  for (let hops = 0; hops < 8; hops++) {
    if (next === IPV6_EXT.FRAGMENT) {
      if (b.length < at + 8) break;
      laterFragment = (b.readUInt16BE(at + 2) & 0xfff8) !== 0;
      next = b[at]!;
      at += 8;
    } else if (next === IPV6_EXT.HOPOPTS || next === IPV6_EXT.ROUTING || next === IPV6_EXT.DSTOPTS) {
      if (b.length < at + 2) break;
      next = b[at]!;
      at += (b[at + 1]! + 1) * 8;
    } else if (next === IPV6_EXT.AH) {
      if (b.length < at + 2) break;
      next = b[at]!;
      at += (b[at + 1]! + 2) * 4;
    } else break;
  }
  const h: PacketHeaders = {
    ipVersion: 6,
    src: ipv6Text(b, 8),
    dst: ipv6Text(b, 24),
    protocol: next,
    protocolName: protoName(next),
    length: 40 + b.readUInt16BE(4),
  };
  if (laterFragment) return { ...h, laterFragment };
  if (Object.values(IPV6_EXT).includes(next as 0)) return { ...h, truncated: true };
  return transport(h, b, at);
}

/** The IP and transport headers at the start of a copied payload (an inet/ip/ip6 table logs from L3). */
export function decodeHeaders(payload: Buffer): PacketHeaders | undefined {
  const v = payload.length > 0 ? payload[0]! >> 4 : 0;
  return v === 4 ? ipv4(payload) : v === 6 ? ipv6(payload) : undefined;
}

/** Decodes an NFULNL_MSG_PACKET; throws E_NFLOG_DECODE for a message that is not one or is cut short. */
export function decodePacket(m: NlMessage): NflogPacket {
  if (!isPacketMessage(m) || m.payload.length < NFGENMSG_LEN)
    throw new NflogError(
      'E_NFLOG_DECODE',
      `not an nflog packet message (type 0x${m.type.toString(16)}, ${m.payload.length} bytes)`,
    );
  const group = m.payload.readUInt16BE(2);
  const a = Attrs.parse(m.payload, NFGENMSG_LEN);
  const p: NflogPacket = { group, family: m.payload[0]!, payloadBytes: 0 };
  const hdr = a.get(NFULA.PACKET_HDR);
  if (hdr && hdr.length >= 3) {
    p.hwProtocol = hdr.readUInt16BE(0);
    p.hook = hdr[2]!;
  }
  const prefix = a.str(NFULA.PREFIX);
  if (prefix !== undefined) p.prefix = prefix;
  const u32 = (type: number): number | undefined => {
    const b = a.get(type);
    return b && b.length >= 4 ? b.readUInt32BE(0) : undefined;
  };
  const set = <K extends keyof NflogPacket>(k: K, v: NflogPacket[K] | undefined) => {
    if (v !== undefined) p[k] = v;
  };
  set('mark', u32(NFULA.MARK));
  set('indev', u32(NFULA.IFINDEX_INDEV));
  set('outdev', u32(NFULA.IFINDEX_OUTDEV));
  set('physindev', u32(NFULA.IFINDEX_PHYSINDEV));
  set('physoutdev', u32(NFULA.IFINDEX_PHYSOUTDEV));
  set('seq', u32(NFULA.SEQ));
  set('seqGlobal', u32(NFULA.SEQ_GLOBAL));
  set('uid', u32(NFULA.UID));
  set('gid', u32(NFULA.GID));
  const ts = a.get(NFULA.TIMESTAMP);
  if (ts && ts.length >= 16) {
    p.kernelTimeMs = Number(ts.readBigUInt64BE(0)) * 1000 + Number(ts.readBigUInt64BE(8)) / 1000;
  }
  const payload = a.get(NFULA.PAYLOAD);
  if (payload) {
    p.payloadBytes = payload.length;
    if (p.family === NFPROTO.IPV4 || p.family === NFPROTO.IPV6 || p.family === NFPROTO.INET)
      set('headers', decodeHeaders(payload));
  }
  return p;
}
