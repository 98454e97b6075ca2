import { isIrbError } from '@irb/builder';
import { UsageError } from './args.ts';

/** Exit codes of `irb`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

function isAbort(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === 'AbortError' || (error as { code?: unknown }).code === 'ABORT_ERR')
  );
}

function causeChain(error: unknown): string[] {
  const lines: string[] = [];
  const seen = new Set<unknown>();
  let cause = error instanceof Error ? error.cause : undefined;
  while (cause !== undefined && !seen.has(cause)) {
    seen.add(cause);
    const code = (cause as { code?: unknown }).code;
    const message = cause instanceof Error ? cause.message : String(cause);
    lines.push(`  caused by: ${typeof code === 'string' ? `[${code}] ` : ''}${message.split('\n')[0]}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return lines;
}

/** Turns any error into what the CLI prints and the exit code: one line unless `verbose`. */
export function describeError(
  error: unknown,
  verbose: boolean,
  command?: string,
): { lines: string[]; code: number } {
  if (error instanceof UsageError) {
    const help = error.command ? `irb ${error.command} --help` : 'irb --help';
    return { lines: [`irb: error: ${error.message}; see "${help}"`], code: EXIT.usage };
  }
  if (isAbort(error)) {
    // Only build writes a file; saying so reassures that no half-written output is left.
    const line = command === 'build' ? 'irb: interrupted; nothing was written' : 'irb: interrupted';
    return { lines: [line], code: EXIT.interrupted };
  }
  if (isIrbError(error)) {
    const lines = [`irb: error: ${error.message.split('\n')[0]}`];
    if (verbose) lines.push(`  code: ${error.code}`, ...causeChain(error));
    return { lines, code: EXIT.failure };
  }
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  const lines = [`irb: error: unexpected failure: ${message}; rerun with --verbose and report it`];
  if (verbose && error instanceof Error && error.stack) lines.push(error.stack, ...causeChain(error));
  return { lines, code: EXIT.failure };
}
