// Conntrack entries as ctnetlink carries them: decoding a dump's CT_NEW messages (tuples, status, zone,
// mark, id, TCP state) and encoding the GET-dump and DELETE requests. Pure bytes: no socket, and no
// policy decision about an entry (src/agent/cut.ts makes those).

import { HOST_IS_LE, type Writer } from '../netlink/attr.ts';
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
  NLA_TYPE_MASK,
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

function addressBytes(a: Address): Buffer {
  const b = Buffer.alloc(a.family === 4 ? 4 : 16);
  if (a.family === 4) b.writeUInt32BE(Number(a.value), 0);
  else {
    b.writeBigUInt64BE(a.value >> 64n, 0);
    b.writeBigUInt64BE(a.value & 0xffff_ffff_ffff_ffffn, 8);
  }
  return b;
}

// A dump of a busy node has 100,000 entries of five nesting levels each: they are read in place, every
// level's attributes into a reused table of (offset, length) by type, without a Map or Buffer per level.
const slots = (maxType: number) => new Int32Array(2 * (maxType + 1));
const TOP = slots(CTA.ZONE);
const TUPLE = slots(CTA_TUPLE.ZONE);
const IP = slots(CTA_IP.V6_DST);
const PROTO = slots(CTA_PROTO.ICMPV6_CODE);
const PROTOINFO = slots(CTA_PROTOINFO.TCP);
const TCP_INFO = slots(CTA_PROTOINFO_TCP.STATE);

/** Fills `out` with each attribute's value offset and length (the first of a repeated type); -1: absent. */
function scan(b: Buffer, start: number, end: number, out: Int32Array): Int32Array {
  out.fill(-1);
  let pos = start;
  while (pos + 4 <= end) {
    const len = HOST_IS_LE ? b.readUInt16LE(pos) : b.readUInt16BE(pos);
    if (len < 4 || pos + len > end) break;
    const type = (HOST_IS_LE ? b.readUInt16LE(pos + 2) : b.readUInt16BE(pos + 2)) & NLA_TYPE_MASK;
    if (2 * type + 1 < out.length && out[2 * type]! < 0) {
      out[2 * type] = pos + 4;
      out[2 * type + 1] = len - 4;
    }
    pos += (len + 3) & ~3;
  }
  return out;
}

/** A nested attribute's own attributes, or undefined when absent. */
function nested(b: Buffer, at: Int32Array, type: number, out: Int32Array): Int32Array | undefined {
  const o = at[2 * type]!;
  return o < 0 ? undefined : scan(b, o, o + at[2 * type + 1]!, out);
}

const has = (at: Int32Array, type: number, len: number) => at[2 * type + 1] === len;
const u8 = (b: Buffer, at: Int32Array, type: number) =>
  at[2 * type + 1]! >= 1 ? b[at[2 * type]!] : undefined;
const u16 = (b: Buffer, at: Int32Array, type: number) =>
  at[2 * type + 1]! >= 2 ? b.readUInt16BE(at[2 * type]!) : undefined;
const u32 = (b: Buffer, at: Int32Array, type: number) =>
  at[2 * type + 1]! >= 4 ? b.readUInt32BE(at[2 * type]!) : undefined;

function readAddress(b: Buffer, o: number, family: Family): Address {
  if (family === 4) return { family, value: BigInt(b.readUInt32BE(o)) };
  return { family, value: (b.readBigUInt64BE(o) << 64n) | b.readBigUInt64BE(o + 8) };
}

function decodeTuple(b: Buffer, top: Int32Array, type: number, what: string): CtTuple {
  const t = nested(b, top, type, TUPLE);
  const ipAt = t?.[2 * CTA_TUPLE.IP] ?? -1;
  const protoAt = t?.[2 * CTA_TUPLE.PROTO] ?? -1;
  if (!t || ipAt < 0 || protoAt < 0)
    throw new ConntrackError('E_CONNTRACK_DECODE', `conntrack entry: ${what} without IP or protocol`);
  const ip = scan(b, ipAt, ipAt + t[2 * CTA_TUPLE.IP + 1]!, IP);
  let src: Address;
  let dst: Address;
  if (has(ip, CTA_IP.V4_SRC, 4) && has(ip, CTA_IP.V4_DST, 4)) {
    src = readAddress(b, ip[2 * CTA_IP.V4_SRC]!, 4);
    dst = readAddress(b, ip[2 * CTA_IP.V4_DST]!, 4);
  } else if (has(ip, CTA_IP.V6_SRC, 16) && has(ip, CTA_IP.V6_DST, 16)) {
    src = readAddress(b, ip[2 * CTA_IP.V6_SRC]!, 6);
    dst = readAddress(b, ip[2 * CTA_IP.V6_DST]!, 6);
  } else
    throw new ConntrackError('E_CONNTRACK_DECODE', `conntrack entry: ${what} without source and destination`);
  const p = scan(b, protoAt, protoAt + t[2 * CTA_TUPLE.PROTO + 1]!, PROTO);
  const protocol = u8(b, p, CTA_PROTO.NUM);
  if (protocol === undefined)
    throw new ConntrackError('E_CONNTRACK_DECODE', `conntrack entry: ${what} without a protocol number`);
  const tuple: CtTuple = { src, dst, protocol };
  const sport = u16(b, p, CTA_PROTO.SRC_PORT);
  const dport = u16(b, p, CTA_PROTO.DST_PORT);
  if (sport !== undefined) tuple.sport = sport;
  if (dport !== undefined) tuple.dport = dport;
  const icmpId = u16(b, p, CTA_PROTO.ICMP_ID) ?? u16(b, p, CTA_PROTO.ICMPV6_ID);
  const icmpType = u8(b, p, CTA_PROTO.ICMP_TYPE) ?? u8(b, p, CTA_PROTO.ICMPV6_TYPE);
  const icmpCode = u8(b, p, CTA_PROTO.ICMP_CODE) ?? u8(b, p, CTA_PROTO.ICMPV6_CODE);
  if (icmpId !== undefined) tuple.icmpId = icmpId;
  if (icmpType !== undefined) tuple.icmpType = icmpType;
  if (icmpCode !== undefined) tuple.icmpCode = icmpCode;
  return tuple;
}

/** Addresses to look for in a dump (a node's pods), keyed as the raw attributes are read. */
export interface AddressSet {
  v4: ReadonlySet<number>;
  v6: ReadonlySet<bigint>;
}

function tupleSourceIn(b: Buffer, top: Int32Array, type: number, set: AddressSet): boolean | undefined {
  const t = nested(b, top, type, TUPLE);
  const ipAt = t?.[2 * CTA_TUPLE.IP] ?? -1;
  if (!t || ipAt < 0) return undefined;
  const ip = scan(b, ipAt, ipAt + t[2 * CTA_TUPLE.IP + 1]!, IP);
  if (has(ip, CTA_IP.V4_SRC, 4)) return set.v4.has(b.readUInt32BE(ip[2 * CTA_IP.V4_SRC]!));
  if (has(ip, CTA_IP.V6_SRC, 16)) {
    const o = ip[2 * CTA_IP.V6_SRC]!;
    return set.v6.has((b.readBigUInt64BE(o) << 64n) | b.readBigUInt64BE(o + 8));
  }
  return undefined;
}

/**
 * Whether a dump message's original source or reply source (the two ends a cut judges, after DNAT) is in
 * `set`, read in place without decoding the entry: most of a busy node's entries have no local pod and
 * cost only this. True when it cannot tell (the decode then reports the message as undecodable).
 */
export function sourcesTouch(m: NlMessage, set: AddressSet): boolean {
  if (m.type !== ctnlType(IPCTNL_MSG.CT_NEW)) return true;
  const b = m.payload;
  const top = scan(b, NFGENMSG_LEN, b.length, TOP);
  const orig = tupleSourceIn(b, top, CTA.TUPLE_ORIG, set);
  if (orig !== false) return true;
  return tupleSourceIn(b, top, CTA.TUPLE_REPLY, set) !== false;
}

/** Decodes one CT_NEW message of a dump. */
export function decodeEntry(m: NlMessage): CtEntry {
  if (m.type !== ctnlType(IPCTNL_MSG.CT_NEW))
    throw new ConntrackError(
      'E_CONNTRACK_DECODE',
      `conntrack dump: unexpected message type 0x${m.type.toString(16)}`,
    );
  const b = m.payload;
  const top = scan(b, NFGENMSG_LEN, b.length, TOP);
  const orig = decodeTuple(b, top, CTA.TUPLE_ORIG, 'original tuple');
  const reply = decodeTuple(b, top, CTA.TUPLE_REPLY, 'reply tuple');
  const e: CtEntry = {
    family: orig.src.family,
    orig,
    reply,
    status: u32(b, top, CTA.STATUS) ?? 0,
    zone: u16(b, top, CTA.ZONE) ?? 0,
    mark: u32(b, top, CTA.MARK) ?? 0,
    id: u32(b, top, CTA.ID),
  };
  const info = nested(b, top, CTA.PROTOINFO, PROTOINFO);
  const tcp = info && nested(b, info, CTA_PROTOINFO.TCP, TCP_INFO);
  const state = tcp && u8(b, tcp, CTA_PROTOINFO_TCP.STATE);
  if (state !== undefined) e.tcpState = TCP_CONNTRACK_STATES[state] ?? `state ${state}`;
  const timeout = u32(b, top, CTA.TIMEOUT);
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

/** One tuple as a nested attribute (CTA_TUPLE_ORIG or CTA_TUPLE_REPLY). */
export function writeTuple(w: Writer, type: number, t: CtTuple): void {
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
