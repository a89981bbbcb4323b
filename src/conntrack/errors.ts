// Errors of the conntrack (ctnetlink) client, under stable codes; each names the entry it is about and,
// for kernel refusals, the errno. Builds errors only: never logs, retries or touches a socket.

import { ErrnoError } from '../netlink/errors.ts';

/**
 * codes: E_CONNTRACK_KERNEL (the kernel refused a dump or a delete, e.g. EPERM without CAP_NET_ADMIN;
 * ENOENT on delete is not an error, the entry is already gone), E_CONNTRACK_IO (the socket failed, was
 * closed, or the kernel did not answer in time), E_CONNTRACK_DECODE (an entry we cannot parse, or one
 * without the fields a delete needs).
 */
export type ConntrackErrorCode = 'E_CONNTRACK_KERNEL' | 'E_CONNTRACK_IO' | 'E_CONNTRACK_DECODE';

/** `object`: the entry (its original tuple as text) or the request the error is about. */
export class ConntrackError extends ErrnoError<ConntrackErrorCode> {}
