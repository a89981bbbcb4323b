// Errors raised by the netlink layer: every one carries errno (number and name), the message type and the
// object it was about, under stable codes. Builds messages only; never retries or logs.

import { constants } from 'node:os';
import { ERRNO, type ErrorCode, TollgateError } from '../util/errors.ts';

const errnoNames: Record<number, string> = {};
// Our table first (it has ERESTART, which Node does not export), then Node's for the rest.
for (const [name, num] of Object.entries(ERRNO)) errnoNames[num] = name;
for (const [name, num] of Object.entries(constants.errno)) errnoNames[num] ??= name;

export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `errno ${errno}`;
}

const sentences: Record<string, string> = {
  EEXIST: 'it already exists',
  ENOENT: 'it, or something it refers to (table, chain, set or element), does not exist',
  EINVAL: 'the kernel rejected the message as invalid (a bad value, flag or attribute)',
  EBUSY: 'it is in use (referenced by a rule, a map or another chain)',
  ENOTEMPTY: 'it is not empty',
  EPERM: 'not permitted (CAP_NET_ADMIN is needed in this network namespace)',
  EOPNOTSUPP: 'the kernel does not support this (a missing nf_tables module or feature)',
  ENOSPC: 'the set is full (its size limit was reached)',
  ERESTART: 'the ruleset changed since the transaction was built (stale generation id); rebuild and retry',
  ELOOP: 'a jump or goto would create a loop',
  EMSGSIZE: 'the message is larger than the socket allows',
  ENOBUFS: 'the kernel ran out of socket buffer space for the replies',
  E2BIG: 'too many elements or too large a value',
  EOVERFLOW: 'a value overflows its field',
  ERANGE: 'a value is out of range',
  EAFNOSUPPORT: 'the address family is not supported',
  ENOMEM: 'the kernel is out of memory',
};

/** A sentence for an errno in this domain, e.g. "ENOENT: it, or something it refers to, ... does not exist". */
export function describeErrno(errno: number): string {
  const name = errnoName(errno);
  return `${name}: ${sentences[name] ?? 'the kernel rejected the request'}`;
}

export interface NetlinkErrorDetails {
  errno?: number;
  /** nf_tables message type name, e.g. NEWSETELEM. */
  messageType?: string;
  /** The object the failing message was about, e.g. "set inet tollgate peers". */
  object?: string;
  seq?: number;
  cause?: unknown;
}

export type NetlinkErrorCode =
  | 'E_NETLINK'
  | 'E_NETLINK_GENID'
  | 'E_NETLINK_IO'
  | 'E_NETLINK_TOO_LARGE'
  | 'E_NETLINK_PROTOCOL';

/**
 * An error that may carry the kernel's errno (number and name) under a literal code: netlink, nflog,
 * conntrack; `object` names what it is about (an nf_tables object, a conntrack entry or request).
 */
export class ErrnoError<C extends ErrorCode> extends TollgateError<C> {
  readonly errno: number | undefined;
  readonly errnoName: string | undefined;
  readonly object: string | undefined;
  constructor(code: C, message: string, details: { errno?: number; object?: string; cause?: unknown } = {}) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.errno = details.errno;
    this.errnoName = details.errno === undefined ? undefined : errnoName(details.errno);
    this.object = details.object;
  }
}

/**
 * codes: E_NETLINK (kernel replied with an errno), E_NETLINK_GENID (stale generation, retries exhausted),
 * E_NETLINK_IO (socket failure or timeout), E_NETLINK_TOO_LARGE (batch does not fit in the socket buffer),
 * E_NETLINK_PROTOCOL (a reply we cannot parse).
 */
export class NetlinkError extends ErrnoError<NetlinkErrorCode> {
  readonly messageType: string | undefined;
  readonly seq: number | undefined;
  constructor(code: NetlinkErrorCode, message: string, details: NetlinkErrorDetails = {}) {
    super(code, message, details);
    this.messageType = details.messageType;
    this.seq = details.seq;
  }

  static fromErrno(errno: number, details: Omit<NetlinkErrorDetails, 'errno'> = {}): NetlinkError {
    const what = details.object ? ` for ${details.object}` : '';
    const type = details.messageType ? `${details.messageType}` : 'request';
    const code = errno === ERRNO.ERESTART ? 'E_NETLINK_GENID' : 'E_NETLINK';
    let sentence = describeErrno(errno);
    if (details.messageType === 'NEWSETELEM' && errno === ERRNO.EEXIST) {
      sentence = 'EEXIST: an element, or an interval overlapping it, already exists';
    }
    return new NetlinkError(code, `${type}${what} failed: ${sentence}`, { ...details, errno });
  }
}
