import type { IrbErrorCode } from './codes.ts';

/**
 * The base class of every error irb throws on purpose.
 *
 * `code` is stable (see {@link ERROR_CODES}) and safe to branch on; `message` says what happened
 * and what to do about it, in terms of the library's options (the CLI translates them into
 * flags); `cause` keeps the underlying error.
 *
 * `instanceof IrbError` is true for any error whose `code` starts with `IRB_`, also one thrown by
 * another copy of this package or by `@irb/cpio` (which has its own class so that it depends on
 * nothing).
 */
export class IrbError extends Error {
  /** Stable machine-readable code from the catalog. */
  readonly code: IrbErrorCode;

  constructor(code: IrbErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IrbError';
    this.code = code;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return isIrbError(value);
  }
}

/** True for any irb error: an {@link IrbError}, one from another copy of this package, or a `CpioError`. */
export function isIrbError(error: unknown): error is IrbError {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('IRB_');
}
