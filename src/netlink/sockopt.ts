// Socket options the `netlink` package cannot set (it exposes neither setsockopt nor the fd), and the
// kernel's drop counter of one netlink socket, and the opening of a NETLINK_NETFILTER socket with them.
// Finds the socket's fd by inode; never reads or sends data.
//
// Why: on a receive-queue overflow the kernel sets sk_err = ENOBUFS, poll reports EPOLLERR, and the
// package's poll handler then aborts the whole process (an exception thrown in native code) and would
// close the socket even without that. NETLINK_NO_ENOBUFS stops the kernel from setting sk_err (it still
// drops and counts in sk_drops, which /proc/net/netlink shows), so losses are found by reading that count.
// koffi is used only for setsockopt/getsockopt on an fd we already own.
// Weighed and not enough alone: a bigger queue (SO_RCVBUFFORCE, also set) only moves the limit, and a
// foreign commit of many elements notifies per element, synchronously inside its sendmsg, faster than
// any reader; NFNLGRP_NFTABLES is one group, so a subscriber cannot leave element events out.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import koffi from 'koffi';
import { RawNetlinkSocket } from 'netlink';
import { NETLINK_NETFILTER } from './constants.ts';
import { NetlinkError } from './errors.ts';

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_NO_ENOBUFS = 5;

interface Libc {
  setsockopt(fd: number, level: number, name: number, value: number[], len: number): number;
  getsockopt(fd: number, level: number, name: number, value: number[], len: number[]): number;
  errno(): number;
}

let libc: Libc | undefined;
function loadLibc(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  libc = {
    setsockopt: lib.func('int setsockopt(int, int, int, const int *, uint32_t)'),
    getsockopt: lib.func('int getsockopt(int, int, int, _Out_ int *, _Inout_ uint32_t *)'),
    errno: () => koffi.errno(),
  };
  return libc;
}

interface NetlinkRow {
  protocol: number;
  portId: number;
  drops: number;
  inode: number;
}

/** Rows of /proc/self/net/netlink (the netns of this process): sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode. */
function netlinkRows(): NetlinkRow[] {
  const out: NetlinkRow[] = [];
  const lines = readFileSync('/proc/self/net/netlink', 'utf8').split('\n');
  for (const line of lines.slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    out.push({ protocol: Number(f[1]), portId: Number(f[2]), drops: Number(f[8]), inode: Number(f[9]) });
  }
  return out;
}

/** One netlink socket's fd and inode, for the options and drop counter below. */
export class SocketHandle {
  readonly fd: number;
  readonly inode: number;

  private constructor(fd: number, inode: number) {
    this.fd = fd;
    this.inode = inode;
  }

  /** Finds the fd of `sock` (protocol `protocol`) by its port id's inode among this process's fds. */
  static of(sock: RawNetlinkSocket, protocol: number): SocketHandle {
    const port = sock.address().port;
    const row = netlinkRows().find((r) => r.protocol === protocol && r.portId === port);
    if (row === undefined)
      throw new NetlinkError('E_NETLINK_IO', `netlink socket port ${port}: not in /proc/self/net/netlink`);
    const want = `socket:[${row.inode}]`;
    for (const name of readdirSync('/proc/self/fd')) {
      let link: string;
      try {
        link = readlinkSync(`/proc/self/fd/${name}`);
      } catch {
        continue; // the fd readdir itself used, or one closed meanwhile
      }
      if (link === want) return new SocketHandle(Number(name), row.inode);
    }
    throw new NetlinkError('E_NETLINK_IO', `netlink socket port ${port}: no fd for inode ${row.inode}`);
  }

  private set(level: number, name: number, value: number, what: string): void {
    const c = loadLibc();
    if (c.setsockopt(this.fd, level, name, [value], 4) !== 0) {
      const errno = c.errno();
      throw new NetlinkError('E_NETLINK_IO', `setsockopt ${what} on netlink fd ${this.fd} failed`, { errno });
    }
  }

  /** The kernel drops what does not fit but no longer sets sk_err (no EPOLLERR, no ENOBUFS from recvmsg). */
  setNoEnobufs(): void {
    this.set(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1, 'NETLINK_NO_ENOBUFS');
  }

  /**
   * Receive buffer over net.core.rmem_max (SO_RCVBUFFORCE, CAP_NET_ADMIN); without the capability falls
   * back to SO_RCVBUF (capped by the kernel). Returns the size the kernel reports (twice the request).
   */
  forceRecvBuffer(bytes: number): number {
    try {
      this.set(SOL_SOCKET, SO_RCVBUFFORCE, bytes, 'SO_RCVBUFFORCE');
    } catch {
      this.set(SOL_SOCKET, SO_RCVBUF, bytes, 'SO_RCVBUF');
    }
    const c = loadLibc();
    const v = [0];
    if (c.getsockopt(this.fd, SOL_SOCKET, SO_RCVBUF, v, [4]) !== 0)
      throw new NetlinkError('E_NETLINK_IO', `getsockopt SO_RCVBUF on netlink fd ${this.fd} failed`, {
        errno: c.errno(),
      });
    return v[0] ?? 0;
  }

  /** Messages the kernel dropped for this socket so far (sk_drops); undefined once the socket is gone. */
  drops(): number | undefined {
    return netlinkRows().find((r) => r.inode === this.inode)?.drops;
  }
}

export interface NetfilterSocketOptions {
  /** SO_RCVBUFFORCE to the requested size (default); false: only the package's SO_RCVBUF request. */
  forceRecvBuffer?: boolean;
  /** More set-up before the socket is handed out (a multicast group to join, a first drop count). */
  setup?: (sock: RawNetlinkSocket, handle: SocketHandle) => void;
}

/**
 * A NETLINK_NETFILTER socket whose full receive queue cannot abort the process (NETLINK_NO_ENOBUFS, see
 * above), with a receive buffer of `recvBufferSize` bytes. Closed again if any of its set-up fails.
 */
export function openNetfilterSocket(
  recvBufferSize: number,
  options: NetfilterSocketOptions = {},
): { sock: RawNetlinkSocket; handle: SocketHandle } {
  const sock = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize, sendBufferSize: 0 });
  try {
    const handle = SocketHandle.of(sock, NETLINK_NETFILTER);
    handle.setNoEnobufs();
    if (options.forceRecvBuffer !== false) handle.forceRecvBuffer(recvBufferSize);
    options.setup?.(sock, handle);
    return { sock, handle };
  } catch (error) {
    sock.close();
    throw error;
  }
}
