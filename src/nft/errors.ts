// Validation errors of the nftables object model (raised when an object or transaction call is invalid).
// Kernel errors are NetlinkError (src/netlink/errors.ts); this file never talks to the kernel.

import { TollgateError } from '../util/errors.ts';

/** code E_NFT_INVALID: the object named in `object` cannot be programmed; `field` says which part. */
export class NftValidationError extends TollgateError<'E_NFT_INVALID'> {
  readonly object: string;
  readonly field: string | undefined;
  constructor(object: string, message: string, field?: string, options?: { cause?: unknown }) {
    super('E_NFT_INVALID', `${object}: ${message}`, options);
    this.object = object;
    this.field = field;
  }
}

/** code E_NFT_VALUE: a value (address, port, verdict, element) does not parse for its type; callers add the object. */
export class ValueError extends TollgateError<'E_NFT_VALUE'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_NFT_VALUE', message, options);
  }
}

/** code E_NFT_RENDER: an expression list cannot be shown as nft text; callers add the rule it is in. */
export class RenderError extends TollgateError<'E_NFT_RENDER'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_NFT_RENDER', message, options);
  }
}
