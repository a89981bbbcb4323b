// The one error base class of the project: every error carries a stable `code` that callers match on.
// Subclasses add the object the error is about; messages name that object and say what to do.

export class TollgateError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad user input (a scenario file, a command-line argument): names the file or flag. */
export class UsageError extends TollgateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_USAGE', message, options);
  }
}
