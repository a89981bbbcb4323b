// Netlink attribute (TLV) encoding and decoding with the byte order spelled out at every call site.
// Pure bytes: no socket and no nf_tables semantics here; callers name each attribute and its order.

import { endianness } from 'node:os';
import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants.ts';

export const HOST_IS_LE = endianness() === 'LE';

const align4 = (n: number): number => (n + 3) & ~3;

/**
 * A growable byte buffer for whole batches: messages and (nested) attributes are written in place and
 * their length fields patched when closed, so a 100k-element batch costs no per-attribute allocation.
 */
export class Writer {
  buf: Buffer;
  pos = 0;
  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** The bytes written so far (a view, not a copy). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private header(type: number, payloadLen: number): void {
    this.ensure(align4(4 + payloadLen));
    // nlattr.nla_len and nla_type are host byte order (they are part of the netlink framing).
    this.writeU16Host(4 + payloadLen);
    this.writeU16Host(type);
  }

  private pad(): void {
    const end = align4(this.pos);
    this.buf.fill(0, this.pos, end);
    this.pos = end;
  }

  private writeU16Host(v: number): void {
    if (HOST_IS_LE) this.buf.writeUInt16LE(v, this.pos);
    else this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }

  /** Raw bytes (e.g. a message header), no attribute framing. */
  raw(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  u8(type: number, v: number): void {
    this.header(type, 1);
    this.buf.writeUInt8(v, this.pos);
    this.pos += 1;
    this.pad();
  }

  u16be(type: number, v: number): void {
    this.header(type, 2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
    this.pad();
  }

  u32be(type: number, v: number): void {
    this.header(type, 4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }

  s32be(type: number, v: number): void {
    this.header(type, 4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  u64be(type: number, v: bigint | number): void {
    this.header(type, 8);
    this.buf.writeBigUInt64BE(BigInt(v), this.pos);
    this.pos += 8;
  }

  /** NUL-terminated string (NLA_STRING / NLA_NUL_STRING in the kernel policies). */
  str(type: number, s: string): void {
    const len = Buffer.byteLength(s);
    this.header(type, len + 1);
    this.buf.write(s, this.pos);
    this.buf[this.pos + len] = 0;
    this.pos += len + 1;
    this.pad();
  }

  /** Opaque bytes, written exactly as given (the caller already chose their byte order). */
  bytesAttr(type: number, data: Uint8Array): void {
    this.header(type, data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    this.pad();
  }

  /**
   * Opaque bytes copied from `src[start, start + len)`: for the few bytes of a set key taken from a larger
   * slab, a plain loop costs less than making a view to copy from.
   */
  bytesAttrFrom(type: number, src: Uint8Array, start: number, len: number): void {
    this.header(type, len);
    const buf = this.buf;
    const at = this.pos;
    for (let i = 0; i < len; i++) buf[at + i] = src[start + i]!;
    this.pos = at + len;
    this.pad();
  }

  /** Opens a nested attribute (NLA_F_NESTED set); returns the offset to pass to end(). */
  begin(type: number): number {
    this.ensure(4);
    const start = this.pos;
    this.pos += 2;
    this.writeU16Host(type | NLA_F_NESTED);
    return start;
  }

  end(start: number): void {
    const len = this.pos - start;
    if (len > 0xffff) throw new RangeError(`netlink attribute too long (${len} bytes > 65535)`);
    if (HOST_IS_LE) this.buf.writeUInt16LE(len, start);
    else this.buf.writeUInt16BE(len, start);
  }

  nest(type: number, fill: () => void): void {
    const start = this.begin(type);
    fill();
    this.end(start);
  }
}

/** Attributes of one level, by type (NLA_F_* flags stripped). A repeated type keeps all its values. */
export class Attrs {
  readonly map = new Map<number, Buffer[]>();

  static parse(buf: Buffer, offset = 0, end = buf.length): Attrs {
    const a = new Attrs();
    let pos = offset;
    while (pos + 4 <= end) {
      const len = HOST_IS_LE ? buf.readUInt16LE(pos) : buf.readUInt16BE(pos);
      const rawType = HOST_IS_LE ? buf.readUInt16LE(pos + 2) : buf.readUInt16BE(pos + 2);
      if (len < 4 || pos + len > end) break;
      const type = rawType & NLA_TYPE_MASK;
      const value = buf.subarray(pos + 4, pos + len);
      const list = a.map.get(type);
      if (list) list.push(value);
      else a.map.set(type, [value]);
      pos += align4(len);
    }
    return a;
  }

  has(type: number): boolean {
    return this.map.has(type);
  }
  get(type: number): Buffer | undefined {
    return this.map.get(type)?.[0];
  }
  all(type: number): Buffer[] {
    return this.map.get(type) ?? [];
  }
  nested(type: number): Attrs | undefined {
    const b = this.get(type);
    return b ? Attrs.parse(b) : undefined;
  }
  str(type: number): string | undefined {
    const b = this.get(type);
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.toString('utf8', 0, nul < 0 ? b.length : nul);
  }
  u8(type: number): number | undefined {
    return this.get(type)?.readUInt8(0);
  }
  u16be(type: number): number | undefined {
    return this.get(type)?.readUInt16BE(0);
  }
  u32be(type: number): number | undefined {
    return this.get(type)?.readUInt32BE(0);
  }
  s32be(type: number): number | undefined {
    return this.get(type)?.readInt32BE(0);
  }
  u64be(type: number): bigint | undefined {
    return this.get(type)?.readBigUInt64BE(0);
  }
  /** Values of a list attribute (NFTA_LIST_ELEM entries, whatever their index type). */
  static list(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos + 4 <= buf.length) {
      const len = HOST_IS_LE ? buf.readUInt16LE(pos) : buf.readUInt16BE(pos);
      if (len < 4 || pos + len > buf.length) break;
      out.push(buf.subarray(pos + 4, pos + len));
      pos += align4(len);
    }
    return out;
  }
}
