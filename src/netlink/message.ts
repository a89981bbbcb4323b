// nlmsghdr + nfgenmsg framing: writing nfnetlink messages into a Writer and splitting received datagrams.
// No socket I/O and no nf_tables object semantics here.

import { HOST_IS_LE, type Writer } from './attr.ts';
import { NFNETLINK_V0, NLMSG } from './constants.ts';

export const NLMSG_HDRLEN = 16;
export const NFGENMSG_LEN = 4;

/** Starts a message: nlmsghdr (host byte order) + nfgenmsg (family u8, version u8, res_id u16 BIG endian). */
export function beginMessage(
  w: Writer,
  type: number,
  flags: number,
  seq: number,
  family: number,
  resId = 0,
): number {
  w.ensure(NLMSG_HDRLEN + NFGENMSG_LEN);
  const start = w.pos;
  const b = w.buf;
  if (HOST_IS_LE) {
    b.writeUInt32LE(0, start);
    b.writeUInt16LE(type, start + 4);
    b.writeUInt16LE(flags, start + 6);
    b.writeUInt32LE(seq >>> 0, start + 8);
    b.writeUInt32LE(0, start + 12);
  } else {
    b.writeUInt32BE(0, start);
    b.writeUInt16BE(type, start + 4);
    b.writeUInt16BE(flags, start + 6);
    b.writeUInt32BE(seq >>> 0, start + 8);
    b.writeUInt32BE(0, start + 12);
  }
  b.writeUInt8(family, start + 16);
  b.writeUInt8(NFNETLINK_V0, start + 17);
  b.writeUInt16BE(resId, start + 18);
  w.pos = start + NLMSG_HDRLEN + NFGENMSG_LEN;
  return start;
}

export function endMessage(w: Writer, start: number): void {
  const len = w.pos - start;
  if (HOST_IS_LE) w.buf.writeUInt32LE(len, start);
  else w.buf.writeUInt32BE(len, start);
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** nfgenmsg.nfgen_family (only meaningful for nfnetlink messages, not for ERROR/DONE). */
  family: number;
  /** The whole message including headers. */
  raw: Buffer;
  /** Bytes after nlmsghdr (for nfnetlink: nfgenmsg then attributes). */
  payload: Buffer;
}

/** Splits one received datagram into its netlink messages. */
export function splitMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let pos = 0;
  while (pos + NLMSG_HDRLEN <= buf.length) {
    const len = HOST_IS_LE ? buf.readUInt32LE(pos) : buf.readUInt32BE(pos);
    if (len < NLMSG_HDRLEN || pos + len > buf.length) break;
    const rd16 = (o: number) => (HOST_IS_LE ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
    const rd32 = (o: number) => (HOST_IS_LE ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const raw = buf.subarray(pos, pos + len);
    out.push({
      type: rd16(pos + 4),
      flags: rd16(pos + 6),
      seq: rd32(pos + 8),
      pid: rd32(pos + 12),
      family: len > NLMSG_HDRLEN ? buf.readUInt8(pos + NLMSG_HDRLEN) : 0,
      raw,
      payload: raw.subarray(NLMSG_HDRLEN),
    });
    pos += (len + 3) & ~3;
  }
  return out;
}

/** Decodes an NLMSG_ERROR payload: errno (0 = ACK) and the header of the message it answers. */
export function parseError(msg: NlMessage): { errno: number; seq: number; type: number } {
  const p = msg.payload;
  const err = HOST_IS_LE ? p.readInt32LE(0) : p.readInt32BE(0);
  const seq = HOST_IS_LE ? p.readUInt32LE(4 + 8) : p.readUInt32BE(4 + 8);
  const type = HOST_IS_LE ? p.readUInt16LE(4 + 4) : p.readUInt16BE(4 + 4);
  return { errno: -err, seq, type };
}

export const isError = (m: NlMessage): boolean => m.type === NLMSG.ERROR;
export const isDone = (m: NlMessage): boolean => m.type === NLMSG.DONE;
