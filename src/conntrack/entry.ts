// Conntrack entries as ctnetlink carries them: decoding a dump's CT_NEW messages (tuples, status, zone,
// mark, id, TCP state) and encoding the GET-dump and DELETE requests. Pure bytes: no socket, and no
// policy decision about an entry (src/agent/cut.ts makes those).

import { Attrs, type Writer } from '../netlink/attr.ts';
import {
  CTA,
  CTA_IP,
  CTA_PROTO,
  CTA_PROTOINFO,
  CTA_PROTOINFO_TCP,
  CTA_TUPLE,
  ctnlType,
  IPCTNL_MSG,
  NFPROTO,
  NLM_F,
  TCP_CONNTRACK_STATES,
} from '../netlink/constants.ts';
import { beginMessage, endMessage, NFGENMSG_LEN, type NlMessage } from '../netlink/message.ts';
import { protoName } from '../nft/datatypes.ts';
import { type Address, type Family, formatAddress } from '../policy/address.ts';
import { ConntrackError } from './errors.ts';

/** IP protocol numbers whose tuples carry ports. */
const WITH_PORTS = new Set([6, 17, 33, 132, 136]);

/** One direction of a connection as conntrack keys it. */
export interface CtTuple {
  src: Address;
  dst: Address;
  /** IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6). */
  protocol: number;
  /** Ports of TCP, UDP, SCTP, DCCP and UDP-Lite. */
  sport?: number;
  dport?: number;
  /** ICMP(v6) echo identifier, type and code. */
  icmpId?: number;
  icmpType?: number;
  icmpCode?: number;
}

export interface CtEntry {
  family: Family;
  /** The direction of the first packet (the connection's initiator is `orig.src`). */
  orig: CtTuple;
  /** What the answers look like: after NAT, `reply.src` is the address that really answers. */
  reply: CtTuple;
  /** CTA_STATUS bits (IPS). */
  status: number;
  zone: number;
  mark: number;
  /** The kernel's id of this entry: a delete naming it never removes a newer entry with the same tuple. */
  id: number | undefined;
  /** TCP only: the conntrack state (ESTABLISHED, TIME_WAIT, ...). */
  tcpState?: string;
  /** Seconds until the entry expires. */
  timeout?: number;
}

const nfproto = (family: Family): number => (family === 4 ? NFPROTO.IPV4 : NFPROTO.IPV6);

function readAddress(b: Buffer, family: Family): Address {
  if (family === 4) return { family, value: BigInt(b.readUInt32BE(0)) };
  return { family, value: (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8) };
}

function addressBytes(a: Address): Buffer {
  const b = Buffer.alloc(a.family === 4 ? 4 : 16);
  if (a.family === 4) b.writeUInt32BE(Number(a.value), 0);
  else {
    b.writeBigUInt64BE(a.value >> 64n, 0);
    b.writeBigUInt64BE(a.value & 0xffff_ffff_ffff_ffffn, 8);
  }
  return b;
}

function decodeTuple(attrs: Attrs | undefined, what: string): CtTuple {
  const ip = attrs?.nested(CTA_TUPLE.IP);
  const proto = attrs?.nested(CTA_TUPLE.PROTO);
  if (!ip || !proto)
    throw new ConntrackError('E_CONNTRACK_DECODE', `conntrack entry: ${what} without IP or protocol`);
  let src: Address;
  let dst: Address;
  const v4s = ip.get(CTA_IP.V4_SRC);
  const v4d = ip.get(CTA_IP.V4_DST);
  const v6s = ip.get(CTA_IP.V6_SRC);
  const v6d = ip.get(CTA_IP.V6_DST);
  if (v4s?.length === 4 && v4d?.length === 4) {
    src = readAddress(v4s, 4);
    dst = readAddress(v4d, 4);
  } else if (v6s?.length === 16 && v6d?.length === 16) {
    src = readAddress(v6s, 6);
    dst = readAddress(v6d, 6);
  } else
    throw new ConntrackError('E_CONNTRACK_DECODE', `conntrack entry: ${what} without source and destination`);
  const protocol = proto.u8(CTA_PROTO.NUM);
  if (protocol === undefined)
    throw new ConntrackError('E_CONNTRACK_DECODE', `conntrack entry: ${what} without a protocol number`);
  const t: CtTuple = { src, dst, protocol };
  const sport = proto.u16be(CTA_PROTO.SRC_PORT);
  const dport = proto.u16be(CTA_PROTO.DST_PORT);
  if (sport !== undefined) t.sport = sport;
  if (dport !== undefined) t.dport = dport;
  const icmpId = proto.u16be(CTA_PROTO.ICMP_ID) ?? proto.u16be(CTA_PROTO.ICMPV6_ID);
  const icmpType = proto.u8(CTA_PROTO.ICMP_TYPE) ?? proto.u8(CTA_PROTO.ICMPV6_TYPE);
  const icmpCode = proto.u8(CTA_PROTO.ICMP_CODE) ?? proto.u8(CTA_PROTO.ICMPV6_CODE);
  if (icmpId !== undefined) t.icmpId = icmpId;
  if (icmpType !== undefined) t.icmpType = icmpType;
  if (icmpCode !== undefined) t.icmpCode = icmpCode;
  return t;
}

/** Decodes one CT_NEW message of a dump. */
export function decodeEntry(m: NlMessage): CtEntry {
  if (m.type !== ctnlType(IPCTNL_MSG.CT_NEW))
    throw new ConntrackError(
      'E_CONNTRACK_DECODE',
      `conntrack dump: unexpected message type 0x${m.type.toString(16)}`,
    );
  const a = Attrs.parse(m.payload, NFGENMSG_LEN);
  const orig = decodeTuple(a.nested(CTA.TUPLE_ORIG), 'original tuple');
  const reply = decodeTuple(a.nested(CTA.TUPLE_REPLY), 'reply tuple');
  const e: CtEntry = {
    family: orig.src.family,
    orig,
    reply,
    status: a.u32be(CTA.STATUS) ?? 0,
    zone: a.u16be(CTA.ZONE) ?? 0,
    mark: a.u32be(CTA.MARK) ?? 0,
    id: a.u32be(CTA.ID),
  };
  const state = a.nested(CTA.PROTOINFO)?.nested(CTA_PROTOINFO.TCP)?.u8(CTA_PROTOINFO_TCP.STATE);
  if (state !== undefined) e.tcpState = TCP_CONNTRACK_STATES[state] ?? `state ${state}`;
  const timeout = a.u32be(CTA.TIMEOUT);
  if (timeout !== undefined) e.timeout = timeout;
  return e;
}

/** "tcp 10.244.1.2:40000 -> 10.244.2.3:80" (ICMP: "icmp 10.0.0.1 -> 10.0.0.2 id 7"). */
export function formatTuple(t: CtTuple): string {
  const ip = (a: Address) => (a.family === 6 ? `[${formatAddress(a)}]` : formatAddress(a));
  const p = protoName(t.protocol);
  if (t.sport !== undefined && t.dport !== undefined)
    return `${p} ${ip(t.src)}:${t.sport} -> ${ip(t.dst)}:${t.dport}`;
  const id = t.icmpId === undefined ? '' : ` id ${t.icmpId}`;
  return `${p} ${formatAddress(t.src)} -> ${formatAddress(t.dst)}${id}`;
}

/** A dump of every entry (family undefined) or of one family's. */
export function writeDumpRequest(w: Writer, seq: number, family: Family | undefined): void {
  const start = beginMessage(
    w,
    ctnlType(IPCTNL_MSG.CT_GET),
    NLM_F.REQUEST | NLM_F.DUMP,
    seq,
    family === undefined ? NFPROTO.UNSPEC : nfproto(family),
  );
  endMessage(w, start);
}

function writeTuple(w: Writer, type: number, t: CtTuple): void {
  w.nest(type, () => {
    w.nest(CTA_TUPLE.IP, () => {
      const v4 = t.src.family === 4;
      w.bytesAttr(v4 ? CTA_IP.V4_SRC : CTA_IP.V6_SRC, addressBytes(t.src));
      w.bytesAttr(v4 ? CTA_IP.V4_DST : CTA_IP.V6_DST, addressBytes(t.dst));
    });
    w.nest(CTA_TUPLE.PROTO, () => {
      w.u8(CTA_PROTO.NUM, t.protocol);
      if (t.sport !== undefined) w.u16be(CTA_PROTO.SRC_PORT, t.sport);
      if (t.dport !== undefined) w.u16be(CTA_PROTO.DST_PORT, t.dport);
      const v6 = t.src.family === 6;
      if (t.icmpId !== undefined) w.u16be(v6 ? CTA_PROTO.ICMPV6_ID : CTA_PROTO.ICMP_ID, t.icmpId);
      if (t.icmpType !== undefined) w.u8(v6 ? CTA_PROTO.ICMPV6_TYPE : CTA_PROTO.ICMP_TYPE, t.icmpType);
      if (t.icmpCode !== undefined) w.u8(v6 ? CTA_PROTO.ICMPV6_CODE : CTA_PROTO.ICMP_CODE, t.icmpCode);
    });
  });
}

/**
 * DELETE of one entry by its original tuple, zone and (when known) id, with an ACK. A DELETE without a
 * tuple would flush the whole table, so a tuple the kernel could not key on is refused here.
 */
export function writeDeleteRequest(w: Writer, seq: number, e: CtEntry): void {
  const t = e.orig;
  if (t.src.family !== e.family || t.dst.family !== e.family)
    throw new ConntrackError(
      'E_CONNTRACK_DECODE',
      `conntrack delete ${formatTuple(t)}: mixed address families`,
      {
        object: formatTuple(t),
      },
    );
  if (WITH_PORTS.has(t.protocol) && (t.sport === undefined || t.dport === undefined))
    throw new ConntrackError(
      'E_CONNTRACK_DECODE',
      `conntrack delete ${formatTuple(t)}: the tuple has no ports`,
      {
        object: formatTuple(t),
      },
    );
  const start = beginMessage(
    w,
    ctnlType(IPCTNL_MSG.CT_DELETE),
    NLM_F.REQUEST | NLM_F.ACK,
    seq,
    nfproto(e.family),
  );
  writeTuple(w, CTA.TUPLE_ORIG, t);
  if (e.zone !== 0) w.u16be(CTA.ZONE, e.zone);
  if (e.id !== undefined) w.u32be(CTA.ID, e.id);
  endMessage(w, start);
}
