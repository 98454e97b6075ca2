/** Where a {@link TarFormatError} was found, when the thrower knows. */
export interface TarFormatErrorOptions {
  /** Byte offset in the (uncompressed) tar. */
  offset?: number;
  /** The tar ends early (a short block, a member's data cut off) rather than holding bad bytes. */
  truncated?: boolean;
}

/**
 * A tar header or extended record that cannot be decoded. `problem` is a short phrase ("bad
 * header checksum", "invalid uid field") that the caller puts into its own error, with the file
 * or layer it knows and this package does not.
 */
export class TarFormatError extends Error {
  /** What is wrong, without location: the caller adds that. */
  readonly problem: string;
  /** Byte offset in the tar; set by {@link TarMembers}, absent from the decoders (they see one block). */
  readonly offset: number | undefined;
  /** True when the tar ends early (the caller may report it as truncated rather than corrupt). */
  readonly truncated: boolean;

  constructor(problem: string, options: TarFormatErrorOptions = {}) {
    super(options.offset === undefined ? problem : `${problem} (tar offset ${options.offset})`);
    this.name = 'TarFormatError';
    this.problem = problem;
    this.offset = options.offset;
    this.truncated = options.truncated ?? false;
  }
}
