// Builds one nfnetlink batch (BATCH_BEGIN ... BATCH_END) in a single buffer, remembering which object every
// message is about so a kernel error can be attributed. Encoding only: sending lives in socket.ts.

import { readFileSync } from 'node:fs';
import { InternalError } from '../util/errors.ts';
import { HOST_IS_LE, Writer } from './attr.ts';
import {
  NFNL_BATCH_GENID,
  NFNL_MSG_BATCH_BEGIN,
  NFNL_MSG_BATCH_END,
  NFNL_SUBSYS_NFTABLES,
  NFPROTO,
  NLM_F,
} from './constants.ts';
import { beginMessage, endMessage } from './message.ts';

export interface BatchEntry {
  /** Offset of the message in the batch buffer (its seq is patched there at send time). */
  offset: number;
  type: number;
  /** Human description of the object, e.g. "chain inet tollgate input". */
  object: string;
}

export class BatchBuilder {
  readonly w: Writer;
  readonly entries: BatchEntry[] = [];
  private current = -1;
  private readonly beginOffset: number;
  private genidOffset = -1;

  constructor(initialSize = 64 * 1024) {
    this.w = new Writer(initialSize);
    // res_id of the batch messages names the subsystem (NFNL_SUBSYS_NFTABLES), big-endian in nfgenmsg.
    this.beginOffset = beginMessage(
      this.w,
      NFNL_MSG_BATCH_BEGIN,
      NLM_F.REQUEST,
      0,
      NFPROTO.UNSPEC,
      NFNL_SUBSYS_NFTABLES,
    );
    // Always reserve NFNL_BATCH_GENID (u32 big-endian); 0 means "no generation check" to the kernel.
    this.genidOffset = this.w.pos + 4;
    this.w.u32be(NFNL_BATCH_GENID, 0);
    endMessage(this.w, this.beginOffset);
  }

  /** Starts an inner message; every inner message asks for an ACK so errors map back by sequence. */
  begin(type: number, flags: number, family: number, object: string): void {
    if (this.current >= 0)
      throw new InternalError(`BatchBuilder: ${object}: the previous message was not ended`);
    this.current = beginMessage(this.w, type, flags | NLM_F.REQUEST | NLM_F.ACK, 0, family);
    this.entries.push({ offset: this.current, type, object });
  }

  end(): void {
    endMessage(this.w, this.current);
    this.current = -1;
  }

  /** Size of the message being written so far (to split element lists below the 64 KiB attribute limit). */
  currentSize(): number {
    return this.w.pos - this.current;
  }

  get length(): number {
    return this.entries.length;
  }

  /** Closes the batch; the result can be sent (and re-sent after a generation change) by NfnlSocket. */
  finish(): Batch {
    const endOffset = this.w.pos;
    const s = beginMessage(
      this.w,
      NFNL_MSG_BATCH_END,
      NLM_F.REQUEST,
      0,
      NFPROTO.UNSPEC,
      NFNL_SUBSYS_NFTABLES,
    );
    endMessage(this.w, s);
    return new Batch(this.w.bytes(), this.beginOffset, this.genidOffset, endOffset, this.entries);
  }
}

export class Batch {
  readonly buf: Buffer;
  readonly beginOffset: number;
  readonly genidOffset: number;
  readonly endOffset: number;
  readonly entries: BatchEntry[];
  constructor(
    buf: Buffer,
    beginOffset: number,
    genidOffset: number,
    endOffset: number,
    entries: BatchEntry[],
  ) {
    this.buf = buf;
    this.beginOffset = beginOffset;
    this.genidOffset = genidOffset;
    this.endOffset = endOffset;
    this.entries = entries;
  }

  /** Numbers begin, inner messages and end consecutively from `first`; returns the seq of BATCH_END. */
  number(first: number): number {
    const put = (offset: number, seq: number) => {
      if (HOST_IS_LE) this.buf.writeUInt32LE(seq >>> 0, offset + 8);
      else this.buf.writeUInt32BE(seq >>> 0, offset + 8);
    };
    put(this.beginOffset, first);
    for (let i = 0; i < this.entries.length; i++) put(this.entries[i]!.offset, first + 1 + i);
    const last = first + 1 + this.entries.length;
    put(this.endOffset, last);
    return last;
  }

  setGenid(genid: number): void {
    this.buf.writeUInt32BE(genid >>> 0, this.genidOffset);
  }
}

let sendLimit: number | undefined;
/**
 * The largest batch an unprivileged SO_SNDBUF lets one sendmsg carry: socket.ts asks for more than any
 * batch needs, the kernel grants 2 x net.core.wmem_max, and netlink refuses a message longer than the
 * buffer less 32 bytes (425,952 bytes on a stock kernel, whose wmem_max is 212,992). Read once; a batch
 * planned under it never meets E_NETLINK_TOO_LARGE.
 */
export function defaultBatchLimit(): number {
  if (sendLimit === undefined) {
    let wmemMax = 212_992;
    try {
      const n = Number.parseInt(readFileSync('/proc/sys/net/core/wmem_max', 'utf8'), 10);
      if (Number.isSafeInteger(n) && n > 0) wmemMax = n;
    } catch {
      // No procfs (tests on another OS): the stock value.
    }
    // The kernel keeps the doubled value in an int.
    sendLimit = Math.min(2 * wmemMax, 2 ** 31 - 1) - 32;
  }
  return sendLimit;
}
