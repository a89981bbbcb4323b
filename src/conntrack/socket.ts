// A ctnetlink client on its own NETLINK_NETFILTER socket (in the caller's network namespace): dumps the
// conntrack table and deletes single entries by their original tuple. One request at a time per call
// site is enough (the agent cuts after each sync); it never flushes the table and decides nothing.

import type { RawNetlinkSocket } from 'netlink';
import { Writer } from '../netlink/attr.ts';
import { NLMSG } from '../netlink/constants.ts';
import { describeErrno } from '../netlink/errors.ts';
import { type NlMessage, parseError, splitMessages } from '../netlink/message.ts';
import { openNetfilterSocket } from '../netlink/sockopt.ts';
import type { Family } from '../policy/address.ts';
import { ERRNO } from '../util/errors.ts';
import { IdleDeadline, realTimers, type Timers } from './deadline.ts';
import {
  type AddressSet,
  type CtEntry,
  decodeEntry,
  formatTuple,
  sourcesTouch,
  writeDeleteRequest,
  writeDumpRequest,
} from './entry.ts';
import { ConntrackError } from './errors.ts';

interface Waiter {
  /** True when the request is complete. */
  onMessage(m: NlMessage): boolean;
  fail(err: ConntrackError): void;
}

export interface ConntrackDump {
  entries: CtEntry[];
  /** Messages of the dump that did not decode (skipped, so that one odd entry cannot stop a cut). */
  undecodable: number;
  /** Entries left out undecoded because neither end is in the dump's `only` set. */
  skipped: number;
}

/** What a delete did: removed the entry, or found it already gone (expired, closed, or a newer id). */
export type DeleteOutcome = 'deleted' | 'gone';

export class ConntrackSocket {
  private readonly sock: RawNetlinkSocket;
  private readonly waiters = new Map<number, Waiter>();
  private readonly timeoutMs: number;
  private readonly timers: Timers;
  private seq = 1;
  private closed = false;

  /** timeoutMs: longest silence of the kernel within one request (a dump may take longer in all). */
  constructor(options: { timeoutMs?: number; recvBufferSize?: number; timers?: Timers } = {}) {
    // Generous: one chunk of a dump comes within milliseconds; 30 s of silence is a dead kernel or socket.
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.timers = options.timers ?? realTimers;
    const rcv = options.recvBufferSize ?? 1024 * 1024;
    // A full queue must not set sk_err: the package would abort the process on the poll error (see
    // sockopt.ts). A dump is paced by our reads, so it does not overflow: no forced buffer size.
    this.sock = openNetfilterSocket(rcv, { forceRecvBuffer: false }).sock;
    // Anything thrown inside these handlers would abort the process (they run from a native callback).
    this.sock.on('message', (buf) => this.onData(buf));
    this.sock.on('error', (err) => this.failAll(`socket error: ${err.message}`, err));
    this.sock.unref();
  }

  /**
   * Every entry of the namespace's table (one family's with `family`); with `only`, just those whose
   * original or reply source is in it (the kernel cannot filter on a set of addresses: its dump filter
   * takes one exact tuple, so the others are skipped here before they are decoded).
   */
  dump(family?: Family, only?: AddressSet): Promise<ConntrackDump> {
    const out: ConntrackDump = { entries: [], undecodable: 0, skipped: 0 };
    const what = `conntrack dump${family === undefined ? '' : ` (IPv${family})`}`;
    return this.request(
      what,
      (w, seq) => writeDumpRequest(w, seq, family),
      (m, done, fail) => {
        if (m.type === NLMSG.DONE) return done(out);
        if (m.type === NLMSG.ERROR) {
          const e = parseError(m);
          return e.errno === 0 ? done(out) : fail(this.kernelError(what, e.errno));
        }
        if (only && !sourcesTouch(m, only)) {
          out.skipped++;
          return false;
        }
        try {
          out.entries.push(decodeEntry(m));
        } catch {
          out.undecodable++;
        }
        return false;
      },
    );
  }

  /** Deletes one entry (by its original tuple, zone and id); an entry already gone is not an error. */
  delete(entry: CtEntry): Promise<DeleteOutcome> {
    const what = `conntrack delete ${formatTuple(entry.orig)}`;
    return this.request<DeleteOutcome>(
      what,
      (w, seq) => writeDeleteRequest(w, seq, entry),
      (m, done, fail) => {
        if (m.type !== NLMSG.ERROR) return false;
        const e = parseError(m);
        if (e.errno === 0) return done('deleted');
        if (e.errno === ERRNO.ENOENT) return done('gone');
        return fail(this.kernelError(what, e.errno, formatTuple(entry.orig)));
      },
    );
  }

  close(): void {
    if (this.closed) return;
    this.failAll('socket closed');
    this.closed = true;
    this.sock.close();
  }

  private kernelError(what: string, errno: number, object = what): ConntrackError {
    return new ConntrackError('E_CONNTRACK_KERNEL', `${what} failed: ${describeErrno(errno)}`, {
      object,
      errno,
    });
  }

  private request<T>(
    what: string,
    write: (w: Writer, seq: number) => void,
    onMessage: (m: NlMessage, done: (v: T) => true, fail: (e: ConntrackError) => true) => boolean,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new ConntrackError('E_CONNTRACK_IO', `${what}: socket closed`));
    const seq = this.seq;
    this.seq = (this.seq + 1) & 0x7fffffff || 1;
    const w = new Writer(256);
    try {
      write(w, seq);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => {
      const finish = () => {
        deadline.stop();
        this.waiters.delete(seq);
        if (this.waiters.size === 0) this.sock.unref();
      };
      const deadline = new IdleDeadline(
        this.timeoutMs,
        () => {
          finish();
          reject(
            new ConntrackError('E_CONNTRACK_IO', `${what}: nothing from the kernel for ${this.timeoutMs} ms`),
          );
        },
        this.timers,
      );
      const done = (v: T): true => {
        finish();
        resolve(v);
        return true;
      };
      const fail = (e: ConntrackError): true => {
        finish();
        reject(e);
        return true;
      };
      this.waiters.set(seq, {
        onMessage: (m) => {
          deadline.touch();
          return onMessage(m, done, fail);
        },
        fail,
      });
      this.sock.ref();
      this.sock.send(w.bytes(), { port: 0 }, (err) => {
        if (err)
          fail(
            new ConntrackError('E_CONNTRACK_IO', `${what}: sending failed: ${err.message}`, {
              errno: err.errno,
              cause: err,
            }),
          );
      });
    });
  }

  private onData(buf: Buffer): void {
    for (const m of splitMessages(buf)) {
      const w = this.waiters.get(m.seq);
      if (!w) continue;
      try {
        w.onMessage(m);
      } catch (error) {
        w.fail(
          new ConntrackError(
            'E_CONNTRACK_DECODE',
            `cannot decode the kernel's reply: ${(error as Error).message}`,
            {
              cause: error,
            },
          ),
        );
      }
    }
  }

  private failAll(message: string, cause?: unknown): void {
    for (const w of [...this.waiters.values()])
      w.fail(new ConntrackError('E_CONNTRACK_IO', message, { cause }));
  }
}
