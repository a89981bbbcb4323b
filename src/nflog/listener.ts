// Listens to one nfnetlink_log group on its own NETLINK_NETFILTER socket (in the caller's network namespace):
// binds the group with a small packet copy, decodes each report, and counts the reports the kernel could
// not deliver. Reports only: it never changes the ruleset, and it attributes nothing to pods or policies.

import type { RawNetlinkSocket } from 'netlink';
import { Writer } from '../netlink/attr.ts';
import {
  NFPROTO,
  NFULA_CFG,
  NFULNL_CFG_CMD,
  NFULNL_CFG_F,
  NFULNL_COPY,
  NFULNL_MSG,
  NLM_F,
  NLMSG,
  ulogType,
} from '../netlink/constants.ts';
import { errnoName } from '../netlink/errors.ts';
import { beginMessage, endMessage, type NlMessage, parseError, splitMessages } from '../netlink/message.ts';
import { openNetfilterSocket, type SocketHandle } from '../netlink/sockopt.ts';
import { ERRNO, errnoNameOf } from '../util/errors.ts';
import { NflogError } from './errors.ts';
import { decodePacket, isPacketMessage, type NflogPacket } from './packet.ts';

/** Enough for an IPv4 header with options or an IPv6 header with a few extension headers, plus TCP flags. */
export const DEFAULT_COPY_RANGE = 128;

export interface NflogListenerOptions {
  group: number;
  onPacket(p: NflogPacket, receivedAtMs: number): void;
  /** A message could not be decoded (E_NFLOG_DECODE), or one of our own callbacks threw: the listener
   *  skips it and goes on. */
  onError?(err: NflogError): void;
  /** The socket failed after the bind (E_NFLOG_IO): the listener has closed itself and delivers nothing
   *  more. Called at most once, never for a close() of the caller's. */
  onClosed?(err: NflogError): void;
  /** Bytes of each packet to copy (from the IP header); 0 copies whole packets. */
  copyRange?: number;
  /** Reports the kernel queues before it sends them (1: each at once, so a report is never held back). */
  queueThreshold?: number;
  /** Longest the kernel holds queued reports, in 1/100 s (only matters with queueThreshold > 1). */
  flushTimeoutCs?: number;
  recvBufferSize?: number;
  /** Wait for each configuration ACK, ms. */
  timeoutMs?: number;
}

export interface NflogStats {
  /** Reports decoded and handed to onPacket. */
  received: number;
  /** Reports the kernel numbered (NFULA_SEQ) but that never arrived: lost to a full receive queue. Known
   *  only when a later report arrives; until then `overruns` is the sign. */
  lost: number;
  /** Datagrams the kernel dropped for us because the receive queue was full (its sk_drops count since
   *  the listener opened; read when the stats are read). */
  overruns: number;
  /** Messages skipped because they did not decode. */
  undecodable: number;
}

interface Pending {
  resolve(): void;
  reject(err: NflogError): void;
  timer: NodeJS.Timeout;
}

export class NflogListener {
  readonly group: number;
  private readonly sock: RawNetlinkSocket;
  private readonly options: NflogListenerOptions;
  private readonly pending = new Map<number, Pending>();
  private seq = 1;
  private lastSeq: number | undefined;
  private bound = false;
  private closed = false;
  private readonly counts: NflogStats = { received: 0, lost: 0, overruns: 0, undecodable: 0 };
  private readonly handle: SocketHandle;
  private readonly drops0: number;

  private constructor(options: NflogListenerOptions) {
    this.options = options;
    this.group = options.group;
    let drops0 = 0;
    // A full queue must not set sk_err: the package would abort the process on the poll error (see
    // sockopt.ts). Losses show as sequence gaps and in the kernel's drop count.
    ({ sock: this.sock, handle: this.handle } = openNetfilterSocket(options.recvBufferSize ?? 1024 * 1024, {
      setup: (_sock, handle) => {
        drops0 = handle.drops() ?? 0;
      },
    }));
    this.drops0 = drops0;
    // Anything thrown inside these handlers would abort the process (they run from a native callback).
    this.sock.on('message', (buf) => this.guard(() => this.onData(buf)));
    this.sock.on('error', (err) => this.guard(() => this.onSocketError(err)));
  }

  get stats(): NflogStats {
    if (!this.closed) {
      const d = this.handle.drops();
      if (d !== undefined) this.counts.overruns = d - this.drops0;
    }
    return this.counts;
  }

  /**
   * Binds the group and configures it; rejects with E_NFLOG_BIND (EPERM when another socket has the group)
   * and leaves no socket behind. The socket keeps the process alive until close().
   */
  static async open(options: NflogListenerOptions): Promise<NflogListener> {
    if (!Number.isInteger(options.group) || options.group < 0 || options.group > 0xffff)
      throw new NflogError('E_NFLOG_BIND', `nflog group ${options.group}: a whole number 0..65535`, {
        group: options.group,
      });
    const l = new NflogListener(options);
    try {
      await l.configure((w) => w.bytesAttr(NFULA_CFG.CMD, Buffer.from([NFULNL_CFG_CMD.BIND])), 'bind');
      l.bound = true;
      const mode = Buffer.alloc(6);
      mode.writeUInt32BE(options.copyRange ?? DEFAULT_COPY_RANGE, 0);
      mode[4] = NFULNL_COPY.PACKET;
      await l.configure((w) => {
        w.bytesAttr(NFULA_CFG.MODE, mode);
        w.u32be(NFULA_CFG.QTHRESH, options.queueThreshold ?? 1);
        w.u32be(NFULA_CFG.TIMEOUT, options.flushTimeoutCs ?? 10);
        // Per-group sequence numbers: a gap is a report the kernel made but could not deliver.
        w.u16be(NFULA_CFG.FLAGS, NFULNL_CFG_F.SEQ);
      }, 'configure');
    } catch (error) {
      l.close();
      throw error;
    }
    return l;
  }

  /** One NFULNL_MSG_CONFIG for our group, resolved by its ACK. */
  private configure(fill: (w: Writer) => void, what: string): Promise<void> {
    if (this.closed)
      return Promise.reject(new NflogError('E_NFLOG_IO', `nflog group ${this.group}: socket closed`));
    const seq = this.seq++;
    const w = new Writer(128);
    const start = beginMessage(
      w,
      ulogType(NFULNL_MSG.CONFIG),
      NLM_F.REQUEST | NLM_F.ACK,
      seq,
      NFPROTO.UNSPEC,
      this.group,
    );
    fill(w);
    endMessage(w, start);
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(
          new NflogError(
            'E_NFLOG_IO',
            `nflog group ${this.group}: no answer to ${what} within ${timeoutMs} ms`,
            {
              group: this.group,
            },
          ),
        );
      }, timeoutMs);
      this.pending.set(seq, { resolve, reject, timer });
      this.sock.send(w.bytes(), { port: 0 }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(seq);
        reject(
          new NflogError('E_NFLOG_IO', `nflog group ${this.group}: sending ${what} failed: ${err.message}`, {
            group: this.group,
            errno: err.errno,
            cause: err,
          }),
        );
      });
    });
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      try {
        this.options.onError?.(
          error instanceof NflogError
            ? error
            : new NflogError('E_NFLOG_IO', `nflog group ${this.group}: ${(error as Error).message}`, {
                group: this.group,
                cause: error,
              }),
        );
      } catch {
        // The caller's own error handler failed; there is nobody left to tell.
      }
    }
  }

  private onData(buf: Buffer): void {
    const now = Date.now();
    for (const m of splitMessages(buf)) {
      if (m.type === NLMSG.ERROR) this.onAck(m);
      else if (isPacketMessage(m)) this.onReport(m, now);
      // NLMSG_DONE closes a batch of several reports (queueThreshold > 1); nothing to do.
    }
  }

  private onAck(m: NlMessage): void {
    let e: { errno: number; seq: number };
    try {
      e = parseError(m);
    } catch {
      return;
    }
    const p = this.pending.get(m.seq);
    if (!p) return;
    this.pending.delete(m.seq);
    clearTimeout(p.timer);
    if (e.errno === 0) {
      p.resolve();
      return;
    }
    // The kernel answers EPERM (not EBUSY) when another socket owns the group; EBUSY is a second bind by
    // the same socket. Without CAP_NET_ADMIN it is EPERM too.
    const why =
      e.errno === ERRNO.EPERM
        ? 'another socket is bound to this group (one listener per group and network namespace), or CAP_NET_ADMIN is missing'
        : e.errno === ERRNO.EBUSY
          ? 'this socket is already bound to the group'
          : 'the kernel refused the configuration';
    p.reject(
      new NflogError('E_NFLOG_BIND', `nflog group ${this.group}: ${errnoName(e.errno)}: ${why}`, {
        group: this.group,
        errno: e.errno,
      }),
    );
  }

  private onReport(m: NlMessage, now: number): void {
    let p: NflogPacket;
    try {
      p = decodePacket(m);
    } catch (error) {
      this.counts.undecodable++;
      this.options.onError?.(error as NflogError);
      return;
    }
    if (p.seq !== undefined) {
      // NFULA_SEQ counts every report the group made, delivered or not; u32, wraps.
      if (this.lastSeq !== undefined) this.counts.lost += (p.seq - this.lastSeq - 1) >>> 0;
      this.lastSeq = p.seq;
    }
    this.counts.received++;
    this.options.onPacket(p, now);
  }

  private onSocketError(err: Error & { errno?: number }): void {
    // ENOBUFS (not expected with NETLINK_NO_ENOBUFS): reports were dropped; the socket goes on, and the
    // next report's sequence number says how many were lost.
    if (err.errno === ERRNO.ENOBUFS || errnoNameOf(err) === 'ENOBUFS') {
      this.counts.overruns++;
      return;
    }
    // Anything else is sk_err set on the socket: it is not trusted to deliver again, so it is closed and
    // the owner told (it rebinds), not just warned while its gauge says it listens.
    if (this.closed) return;
    this.close();
    const dead = new NflogError('E_NFLOG_IO', `nflog group ${this.group}: socket error: ${err.message}`, {
      group: this.group,
      errno: err.errno,
      cause: err,
    });
    (this.options.onClosed ?? this.options.onError)?.(dead);
  }

  /** Unbinds the group (so another listener can take it at once) and closes the socket. */
  async unbind(): Promise<void> {
    if (this.bound && !this.closed) {
      this.bound = false;
      await this.configure((w) => w.bytesAttr(NFULA_CFG.CMD, Buffer.from([NFULNL_CFG_CMD.UNBIND])), 'unbind');
    }
    this.close();
  }

  /** Closes the socket; the kernel releases the group with it (NETLINK_URELEASE). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(
        new NflogError('E_NFLOG_IO', `nflog group ${this.group}: socket closed`, { group: this.group }),
      );
    }
    this.pending.clear();
    this.sock.close();
  }
}
