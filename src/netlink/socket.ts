// The only code that touches a netlink socket: requests, dumps (multipart until NLMSG_DONE) and atomic batch
// commits with ACKs mapped back by sequence number. The socket lives in the caller's network namespace.

import type { RawNetlinkSocket } from 'netlink';
import { ERRNO, errnoNameOf } from '../util/errors.ts';
import { Attrs, Writer } from './attr.ts';
import type { Batch } from './batch.ts';
import { messageTypeName, NFT_MSG, NFTA_GEN_ID, NLM_F, NLMSG, nftType } from './constants.ts';
import { NetlinkError } from './errors.ts';
import {
  beginMessage,
  endMessage,
  NFGENMSG_LEN,
  type NlMessage,
  parseError,
  splitMessages,
} from './message.ts';
import { openNetfilterSocket, type SocketHandle } from './sockopt.ts';

interface Waiter {
  /** Returns true when the waiter is complete. */
  onMessage(m: NlMessage): boolean;
  fail(err: Error): void;
}

export interface SocketOptions {
  /** SO_RCVBUF request (the kernel caps it at net.core.rmem_max). */
  recvBufferSize?: number;
  /** Reply timeout for requests and commits, ms. */
  timeoutMs?: number;
}

export interface CommitResult {
  /** Generation after the commit (read with NFT_MSG_GETGEN right after the batch). */
  genid: number;
  /** Number of messages inside the batch. */
  messages: number;
  bytes: number;
}

export interface CommitOptions {
  /** Generation the batch was built against; the kernel answers ERESTART if the ruleset changed since. */
  genid?: number;
}

export class NfnlSocket {
  private readonly sock: RawNetlinkSocket;
  private seq: number;
  private readonly waiters = new Map<number, Waiter>();
  private readonly timeoutMs: number;
  private closed = false;
  private overflowed = false;
  private readonly handle: SocketHandle;
  /** The kernel's drop count when last looked at (see commit()). */
  private dropsSeen = 0;

  constructor(options: SocketOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    const rcv = options.recvBufferSize ?? 8 * 1024 * 1024;
    // A full receive queue (a batch's ACKs) must not set sk_err: the package would abort the process on
    // the poll error (see sockopt.ts). Drops are then read from the kernel's count around each commit.
    ({ sock: this.sock, handle: this.handle } = openNetfilterSocket(rcv));
    this.seq = Math.floor(Date.now() / 1000) & 0x3fffffff;
    this.sock.on('message', (buf) => this.onData(buf));
    this.sock.on('error', (err) => this.onError(err));
    this.sock.unref();
  }

  /** The socket's netlink port id: the kernel's change notifications of our commits carry it. */
  get portId(): number {
    return this.sock.address().port;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.values()) w.fail(new NetlinkError('E_NETLINK_IO', 'netlink socket closed'));
    this.waiters.clear();
    this.sock.close();
  }

  private onData(buf: Buffer): void {
    for (const m of splitMessages(buf)) {
      const w = this.waiters.get(m.seq);
      if (w === undefined) continue;
      try {
        if (w.onMessage(m)) this.waiters.delete(m.seq);
      } catch (error) {
        // A reply we cannot decode (e.g. an NLMSG_ERROR cut to its 16-byte header) is an error of the
        // request it answers; thrown from here it would end the process (an event handler).
        this.waiters.delete(m.seq);
        w.fail(
          new NetlinkError(
            'E_NETLINK_PROTOCOL',
            `cannot decode the kernel's ${messageTypeName(m.type)} reply (${m.raw.length} bytes, seq ${m.seq}): ${(error as Error).message}`,
            { cause: error, seq: m.seq },
          ),
        );
      }
    }
    if (this.waiters.size === 0) this.sock.unref();
  }

  private onError(err: Error & { errno?: number }): void {
    // ENOBUFS on receive: the kernel dropped replies because our receive queue was full. Requests keep
    // waiting (the sentinel in commit() bounds that); anything else fails every waiter.
    if (err.errno === ERRNO.ENOBUFS || errnoNameOf(err) === 'ENOBUFS') {
      this.overflowed = true;
      return;
    }
    for (const w of this.waiters.values())
      w.fail(new NetlinkError('E_NETLINK_IO', err.message, { cause: err }));
    this.waiters.clear();
  }

  private nextSeq(n = 1): number {
    const s = this.seq;
    this.seq = (this.seq + n) & 0x7fffffff;
    if (this.seq < s) this.seq = n; // wrapped: restart low, seqs only have to be unique while in flight
    return s;
  }

  private send(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock.send(data, { port: 0 }, (err) => {
        if (err)
          reject(
            new NetlinkError('E_NETLINK_IO', `sendmsg failed: ${err.message}`, {
              cause: err,
              errno: err.errno,
            }),
          );
        else resolve();
      });
    });
  }

  private wait<T>(seqs: number[], w: Waiter & { promise: Promise<T> }): Promise<T> {
    this.sock.ref();
    for (const s of seqs) this.waiters.set(s, w);
    const timer = setTimeout(() => {
      for (const s of seqs) this.waiters.delete(s);
      w.fail(new NetlinkError('E_NETLINK_IO', `no reply from the kernel within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    const p = w.promise.finally(() => {
      clearTimeout(timer);
      for (const s of seqs) this.waiters.delete(s);
      if (this.waiters.size === 0) this.sock.unref();
    });
    // The kernel can answer (with an error) while the caller is still awaiting send(): mark the promise
    // handled now so that such a reply is never an unhandled rejection, which would end the process. The
    // caller awaits p afterwards and gets the error as usual.
    p.catch(() => {});
    return p;
  }

  /**
   * One request: a dump (flags include NLM_F.DUMP) collects every message until NLMSG_DONE; otherwise
   * the first reply (or ACK) completes it. Kernel errors reject with NetlinkError.
   */
  async request(
    msgType: number,
    family: number,
    flags: number,
    fill?: (w: Writer) => void,
    object?: string,
  ): Promise<NlMessage[]> {
    const w = new Writer(256);
    const seq = this.nextSeq();
    const start = beginMessage(w, nftType(msgType), NLM_F.REQUEST | flags, seq, family);
    fill?.(w);
    endMessage(w, start);
    const dump = (flags & NLM_F.DUMP) === NLM_F.DUMP;
    const typeName = messageTypeName(nftType(msgType));
    const out: NlMessage[] = [];
    let resolve!: (v: NlMessage[]) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<NlMessage[]>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const waiter = {
      promise,
      onMessage(m: NlMessage): boolean {
        if (m.type === NLMSG.ERROR) {
          const e = parseError(m);
          if (e.errno === 0) resolve(out);
          else reject(NetlinkError.fromErrno(e.errno, { messageType: typeName, object, seq }));
          return true;
        }
        if (m.type === NLMSG.DONE) {
          resolve(out);
          return true;
        }
        out.push(m);
        if (!dump) {
          resolve(out);
          return true;
        }
        return false;
      },
      fail: (e: Error) => reject(e),
    };
    const p = this.wait([seq], waiter);
    await this.send(w.bytes());
    return p;
  }

  dump(msgType: number, family: number, fill?: (w: Writer) => void, object?: string): Promise<NlMessage[]> {
    return this.request(msgType, family, NLM_F.DUMP, fill, object);
  }

  /** Current ruleset generation (NFT_MSG_GETGEN -> NEWGEN with NFTA_GEN_ID, u32 big-endian). */
  async getGeneration(): Promise<number> {
    const [m] = await this.request(NFT_MSG.GETGEN, 0, 0);
    if (!m) throw new NetlinkError('E_NETLINK_PROTOCOL', 'GETGEN: no reply');
    const id = Attrs.parse(m.payload, NFGENMSG_LEN).u32be(NFTA_GEN_ID);
    if (id === undefined) throw new NetlinkError('E_NETLINK_PROTOCOL', 'GETGEN: reply without NFTA_GEN_ID');
    return id;
  }

  /** Largest batch this socket can send in one sendmsg (netlink refuses len > sk_sndbuf - 32). */
  ensureSendBuffer(bytes: number): number {
    const need = bytes + 64 * 1024;
    if (this.sock.getSendBufferSize() < need) this.sock.setSendBufferSize(need);
    return this.sock.getSendBufferSize() - 32;
  }

  /**
   * Sends the batch as ONE datagram (a batch split over several sendmsg calls would not be atomic) and
   * waits for every inner message's ACK. Throws the FIRST real error (lowest sequence number): later
   * errors in a failed batch usually cascade from it. Nothing is committed when any message fails.
   */
  async commit(batch: Batch, options: CommitOptions = {}): Promise<CommitResult> {
    const max = this.ensureSendBuffer(batch.buf.length);
    if (batch.buf.length > max) {
      throw new NetlinkError(
        'E_NETLINK_TOO_LARGE',
        `batch of ${batch.buf.length} bytes exceeds the socket send buffer (${max} bytes); raise net.core.wmem_max ` +
          'or split the change into several transactions',
      );
    }
    batch.setGenid(options.genid ?? 0);
    const n = batch.entries.length;
    const first = this.nextSeq(n + 3);
    const last = batch.number(first);
    const sentinel = last + 1;
    const errors = new Map<number, number>();
    const acked = new Set<number>();
    let genid = -1;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.overflowed = false;
    const waiter = {
      promise,
      onMessage(m: NlMessage): boolean {
        if (m.seq === sentinel) {
          if (m.type === NLMSG.ERROR) {
            const e = parseError(m);
            if (e.errno !== 0) reject(NetlinkError.fromErrno(e.errno, { messageType: 'GETGEN' }));
            return false;
          }
          const id = Attrs.parse(m.payload, NFGENMSG_LEN).u32be(NFTA_GEN_ID);
          genid = id ?? -1;
          resolve();
          return true;
        }
        if (m.type === NLMSG.ERROR) {
          const e = parseError(m);
          if (e.errno !== 0) errors.set(m.seq, e.errno);
          else acked.add(m.seq);
        }
        return false;
      },
      fail: (e: Error) => reject(e),
    };
    const seqs = [];
    for (let s = first; s <= sentinel; s++) seqs.push(s);
    const p = this.wait(seqs, waiter);
    await this.send(batch.buf);
    // The kernel processes a batch synchronously inside sendmsg and queues all ACKs before returning, so a
    // GETGEN sent afterwards is answered after every ACK of the batch: its reply marks "all ACKs are in".
    const w = new Writer(64);
    const s = beginMessage(w, nftType(NFT_MSG.GETGEN), NLM_F.REQUEST, sentinel, 0);
    endMessage(w, s);
    await this.send(w.bytes());
    await p;
    if (errors.size > 0) {
      const seq = Math.min(...errors.keys());
      const errno = errors.get(seq) ?? 0;
      if (seq === first) {
        throw NetlinkError.fromErrno(errno, {
          messageType: 'BATCH_BEGIN',
          object:
            errno === ERRNO.ERESTART ? `the batch (built against generation ${options.genid})` : 'the batch',
          seq,
        });
      }
      const entry = batch.entries[seq - first - 1];
      throw NetlinkError.fromErrno(errno, {
        messageType: entry ? messageTypeName(entry.type) : undefined,
        object: entry?.object,
        seq,
      });
    }
    // Missing ACKs are the loss signal; the kernel's drop count (a read walks every netlink socket of the
    // host, about 1 ms) only says why, so it is read on this path alone.
    if (acked.size < n && (this.handle.drops() ?? 0) > this.dropsSeen) this.overflowed = true;
    if (this.overflowed || acked.size < n) {
      this.dropsSeen = this.handle.drops() ?? this.dropsSeen;
      throw new NetlinkError(
        'E_NETLINK_IO',
        `only ${acked.size} of ${n} batch messages were acknowledged${this.overflowed ? ' (receive buffer overflow)' : ''}`,
      );
    }
    return { genid, messages: n, bytes: batch.buf.length };
  }
}
