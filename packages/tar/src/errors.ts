/**
 * A tar header or extended record that cannot be decoded. `problem` is a short phrase ("bad
 * header checksum", "invalid uid field") that the caller puts into its own error, with the file,
 * layer and offset it knows and this package does not.
 */
export class TarFormatError extends Error {
  /** What is wrong, without location: the caller adds that. */
  readonly problem: string;

  constructor(problem: string) {
    super(problem);
    this.name = 'TarFormatError';
    this.problem = problem;
  }
}
