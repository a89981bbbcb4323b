// Validation errors of the nftables object model (raised when an object or transaction call is invalid).
// Kernel errors are NetlinkError (src/netlink/errors.ts); this file never talks to the kernel.

import { TollgateError } from '../util/errors.ts';

/** code E_NFT_INVALID: the object named in `object` cannot be programmed; `field` says which part. */
export class NftValidationError extends TollgateError {
  readonly object: string;
  readonly field: string | undefined;
  constructor(object: string, message: string, field?: string, options?: { cause?: unknown }) {
    super('E_NFT_INVALID', `${object}: ${message}`, options);
    this.object = object;
    this.field = field;
  }
}
