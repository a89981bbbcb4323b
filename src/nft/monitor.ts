// Watches nf_tables change notifications (the NFNLGRP_NFTABLES multicast group of NETLINK_NETFILTER) for
// one table and reports each transaction that changed it, with the port id and process of whoever
// committed it, so that the agent can tell other writers' changes from its own. Decodes and reports only:
// never reads or changes the ruleset.
import type { RawNetlinkSocket } from 'netlink';
import { Attrs } from '../netlink/attr.ts';
import {
  messageTypeName,
  NFNL_SUBSYS_NFTABLES,
  NFNLGRP_NFTABLES,
  NFT_MSG,
  NFTA_ANY_TABLE,
  NFTA_GEN,
} from '../netlink/constants.ts';
import { NFGENMSG_LEN, type NlMessage, splitMessages } from '../netlink/message.ts';
import { openNetfilterSocket, type SocketHandle } from '../netlink/sockopt.ts';

/** How often the kernel's drop count is read besides at each transaction's end (a lost NEWGEN). */
const DROP_CHECK_MS = 1000;

/** One committed transaction that touched the watched table. */
export interface TableChange {
  /** Netlink port id of the committing socket (0: the kernel itself, e.g. a namespace going away). */
  portId: number;
  /** From the NFT_MSG_NEWGEN that closes the transaction (undefined if it was not seen). */
  pid?: number;
  process?: string;
  genid?: number;
  /** The message types that touched our table, with counts, e.g. "DELTABLE 1, DELCHAIN 3". */
  summary: string;
}

export interface MonitorOptions {
  /** NFPROTO_* family of the table. */
  family: number;
  table: string;
  onChange(change: TableChange): void;
  /** Notifications were dropped (receive queue overflow), or the socket failed: whatever happened is
   *  unknown. Called once per detection; the monitor goes on. */
  onLost(): void;
  /** Our own port id: its messages are skipped unparsed (a large commit of ours notifies per element). */
  ownPort?: () => number | undefined;
  recvBufferSize?: number;
}

export class TableMonitor {
  private readonly sock: RawNetlinkSocket;
  private readonly options: MonitorOptions;
  /** Messages of the transaction being received, per committing port (until its NEWGEN). */
  private readonly pending = new Map<number, Map<string, number>>();
  private readonly handle: SocketHandle;
  private readonly timer: NodeJS.Timeout;
  private drops: number;
  private closed = false;
  private paused = 0;
  /** Times a loss was detected (kernel drop count went up, or a socket error). */
  lost = 0;

  constructor(options: MonitorOptions) {
    this.options = options;
    const rcv = options.recvBufferSize ?? 4 * 1024 * 1024;
    let drops = 0;
    // NETLINK_NO_ENOBUFS before the subscription: an overflow with sk_err set would abort the process.
    ({ sock: this.sock, handle: this.handle } = openNetfilterSocket(rcv, {
      setup: (sock, handle) => {
        drops = handle.drops() ?? 0;
        sock.addMembership(NFNLGRP_NFTABLES);
      },
    }));
    this.drops = drops;
    this.sock.on('message', (buf) => {
      for (const m of splitMessages(buf)) this.onMessage(m);
    });
    // With NETLINK_NO_ENOBUFS an error here is not an overflow; report it as a loss all the same.
    this.sock.on('error', () => this.reportLost());
    this.sock.unref();
    this.timer = setInterval(() => this.checkDrops(), DROP_CHECK_MS);
    this.timer.unref();
  }

  private reportLost(): void {
    this.lost++;
    this.options.onLost();
  }

  /** The kernel's drop count for our socket went up: notifications were lost. */
  private checkDrops(): void {
    if (this.closed) return;
    let now: number | undefined;
    try {
      now = this.handle.drops();
    } catch {
      now = undefined;
    }
    if (now === undefined || now === this.drops) return;
    this.drops = now;
    this.reportLost();
  }

  private onMessage(m: NlMessage): void {
    if (m.type >> 8 !== NFNL_SUBSYS_NFTABLES) return;
    if (m.pid !== 0 && m.pid === this.options.ownPort?.()) return;
    const type = m.type & 0xff;
    if (type === NFT_MSG.NEWGEN) {
      // After the change below is reported: a transaction seen in part is still a change by someone.
      queueMicrotask(() => this.checkDrops());
      const seen = this.pending.get(m.pid);
      if (seen === undefined) return;
      this.pending.delete(m.pid);
      const a = Attrs.parse(m.payload, NFGENMSG_LEN);
      const pid = a.u32be(NFTA_GEN.PROC_PID);
      const process = a.str(NFTA_GEN.PROC_NAME);
      const genid = a.u32be(NFTA_GEN.ID);
      this.options.onChange({
        portId: m.pid,
        ...(pid === undefined ? {} : { pid }),
        ...(process === undefined ? {} : { process }),
        ...(genid === undefined ? {} : { genid }),
        summary: [...seen].map(([t, n]) => `${t} ${n}`).join(', '),
      });
      return;
    }
    if (m.family !== this.options.family) return;
    if (Attrs.parse(m.payload, NFGENMSG_LEN).str(NFTA_ANY_TABLE) !== this.options.table) return;
    const seen = this.pending.get(m.pid) ?? new Map<string, number>();
    this.pending.set(m.pid, seen);
    const name = messageTypeName(m.type);
    seen.set(name, (seen.get(name) ?? 0) + 1);
  }

  /**
   * Leaves the multicast group until resume(): while nobody listens the kernel builds no notifications,
   * and a large commit of our own would otherwise make one per element (tens of thousands of
   * datagrams we would only skip). What happens meanwhile must be found out otherwise (the generation).
   */
  pause(): void {
    if (this.closed || this.paused++ > 0) return;
    this.sock.dropMembership(NFNLGRP_NFTABLES);
  }

  resume(): void {
    if (this.closed || this.paused === 0 || --this.paused > 0) return;
    this.sock.addMembership(NFNLGRP_NFTABLES);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.sock.close();
  }
}
