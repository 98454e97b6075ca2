import type { CliIo } from './io.ts';

/**
 * One `irb` command: what a module under commands/ exports. The dispatcher loads the module when
 * the command runs (or for `irb --help`), so a command pays only for what it imports itself.
 */
export interface Command<Args = unknown> {
  /** The word after `irb`. */
  readonly name: string;
  /** How `irb --help` shows the command line, after `irb ` (`build IMAGE [options]`). */
  readonly synopsis: string;
  /** What the command does, for `irb --help`; one line, or a few. */
  readonly summary: string;
  /** `irb NAME --help`. */
  readonly help: string;
  /** Reads argv after the command name: its arguments, or `'help'` for -h/--help; throws UsageError. */
  parse(argv: string[]): Args | 'help';
  /** Where the `--json` report goes (and so a `--json` error). Default: stdout. */
  reportsTo?(args: Args): 'stdout' | 'stderr';
  /** Runs the parsed command; returns the exit code (errors are thrown to the dispatcher). */
  run(args: Args, io: CliIo, signal?: AbortSignal): Promise<number>;
}
