/** The codes `@irb/cpio` throws; each is also listed, with its meaning, in `@irb/errors`' catalog. */
export const CPIO_ERROR_CODES = [
  'IRB_OPTION_INVALID',
  'IRB_CPIO_MAGIC_INVALID',
  'IRB_CPIO_HEADER_INVALID',
  'IRB_CPIO_TRUNCATED',
  'IRB_CPIO_TRAILING_DATA',
  'IRB_CPIO_CHECKSUM_MISMATCH',
  'IRB_CPIO_BODY_UNAVAILABLE',
  'IRB_CPIO_INPUT_INVALID',
  'IRB_CPIO_FIELD_INVALID',
  'IRB_CPIO_PATH_INVALID',
  'IRB_CPIO_PATH_TOO_LONG',
  'IRB_CPIO_FILE_TOO_LARGE',
  'IRB_CPIO_BODY_INVALID',
  'IRB_CPIO_SIZE_MISMATCH',
  'IRB_CPIO_TOO_MANY_INODES',
  'IRB_CPIO_DIRECTORY_UNREADABLE',
] as const;

/** A code `@irb/cpio` throws. */
export type CpioErrorCode = (typeof CPIO_ERROR_CODES)[number];

/**
 * The error `@irb/cpio` throws on purpose.
 *
 * `@irb/cpio` depends on nothing, so it does not import `@irb/errors`; its errors follow the same
 * contract (a stable `IRB_…` code, a message that says what to do, `cause` kept), and
 * `instanceof IrbError` / `isIrbError()` from `@irb/errors` are true for them.
 */
export class CpioError extends Error {
  /** Stable machine-readable code. */
  readonly code: CpioErrorCode;

  constructor(code: CpioErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IrbError';
    this.code = code;
  }
}
