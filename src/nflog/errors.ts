// Errors of the nflog (drop report) listener, under stable codes; each names the group it is about and,
// for kernel refusals, the errno. Builds errors only: never logs, retries or touches a socket.

import { ErrnoError } from '../netlink/errors.ts';

/**
 * codes: E_NFLOG_BIND (the kernel refused a group configuration, e.g. EPERM: another socket
 * holds the group or CAP_NET_ADMIN is missing), E_NFLOG_IO (the socket failed, was closed, or the kernel did not
 * answer in time), E_NFLOG_DECODE (a report message we cannot parse; it is counted and skipped).
 */
export type NflogErrorCode = 'E_NFLOG_BIND' | 'E_NFLOG_IO' | 'E_NFLOG_DECODE';

export class NflogError extends ErrnoError<NflogErrorCode> {
  readonly group: number | undefined;
  constructor(
    code: NflogErrorCode,
    message: string,
    details: { group?: number; errno?: number; cause?: unknown } = {},
  ) {
    super(code, message, details);
    this.group = details.group;
  }
}
