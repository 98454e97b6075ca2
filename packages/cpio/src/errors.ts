/**
 * The base class of every error irb throws on purpose.
 *
 * It lives in `@irb/cpio` because that is the one package every other irb package
 * already builds on, and `@irb/cpio` itself must depend on nothing.
 *
 * `code` is stable (`IRB_…`) and safe to branch on; `message` says what happened
 * and what to do about it; `cause` keeps the underlying error.
 */
export class IrbError extends Error {
  /** Stable machine-readable code, always starting with `IRB_`. */
  readonly code: string;

  constructor(code: `IRB_${string}`, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IrbError';
    this.code = code;
  }
}

/** True for any irb error, also one thrown by another copy of this package. */
export function isIrbError(error: unknown): error is IrbError {
  if (error instanceof IrbError) return true;
  const code: unknown = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('IRB_');
}
