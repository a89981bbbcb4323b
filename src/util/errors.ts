// The one error base class of the project: every error carries a stable literal `code` that callers match
// on, plus the one errno table and the not-found/already-exists tests. Subclasses add the object the error
// is about; messages name that object and say what to do. No I/O, no logging here.

/** Every code of the project's errors starts with E_; each class narrows it to its own literal union. */
export type ErrorCode = `E_${string}`;

export class TollgateError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad user input (a scenario file, a command-line argument): names the file or flag. */
export class UsageError extends TollgateError<'E_USAGE'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_USAGE', message, options);
  }
}

/**
 * The Linux errno numbers the project compares against, by name (include/uapi/asm-generic/errno*.h).
 * Compare with these, never with bare numbers. ERESTART is kernel-internal (node does not export it) but
 * nf_tables answers it for a stale generation.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  E2BIG: 7,
  ENOMEM: 12,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOTEMPTY: 39,
  ELOOP: 40,
  EOVERFLOW: 75,
  ERESTART: 85,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  ENOBUFS: 105,
} as const;

export type ErrnoName = keyof typeof ERRNO;

/** The errno name an error carries: a kernel reply (NetlinkError.errnoName) or a Node system call (code). */
export function errnoNameOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { errnoName?: unknown; code?: unknown };
  if (typeof e.errnoName === 'string') return e.errnoName;
  // Node's system errors: code 'ENOENT' (ours are 'E_...', which this pattern excludes).
  if (typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) return e.code;
  return undefined;
}

/** The kernel or the file system said ENOENT: the object (or one it refers to) does not exist. */
export function isNotFound(err: unknown): boolean {
  return errnoNameOf(err) === 'ENOENT';
}

/** The kernel or the file system said EEXIST: the object (or an overlapping element) already exists. */
export function isAlreadyExists(err: unknown): boolean {
  return errnoNameOf(err) === 'EEXIST';
}

/** code E_INTERNAL: an invariant of the code itself does not hold (a bug); the message names the object. */
export class InternalError extends TollgateError<'E_INTERNAL'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INTERNAL', message, options);
  }
}
