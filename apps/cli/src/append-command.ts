import { parseArgs } from 'node:util';
import type { AppendSummary } from '@irb/builder/append';
import { UsageError } from './args.ts';
import type { CliIo } from './cli.ts';

/** Parsed `irb append`. */
export interface AppendArgs {
  command: 'append';
  base: string;
  output: string;
  inject: string[];
  init?: string;
  compression?: 'gzip' | 'zstd' | 'lz4' | 'none';
  level?: number;
  json: boolean;
  verbose: boolean;
}

/** `irb append --help`. */
export const APPEND_HELP = `Usage: irb append BASE -o OUT --inject SRC:DEST… [--init FILE] [-c NAME]

Writes BASE (an initramfs, e.g. one irb build wrote) followed by a new member
holding the given files: the kernel unpacks it over BASE, so a per-job agent or
/init is added without rebuilding. BASE's bytes are copied as they are.

  -o, --output FILE         the result (written atomically); - writes it to stdout
      --inject SRC:DEST     copy host file or directory SRC to DEST; repeatable
      --init FILE           put FILE at /init (replacing BASE's)
  -c, --compression NAME    gzip, zstd, lz4 or none (default: BASE's)
      --level N             gzip 1-9 (default 6), zstd 1-19 (default 3)
      --json                print the summary as JSON

The guest gets the tree irb build --inject gives: DEST goes through BASE's
symlinks (/bin/x lands in /usr/bin/x when /bin -> usr/bin), missing parents and
DEST itself are created (0755, root), directories BASE has keep their mode, and
a file where BASE has a directory is refused. BASE's tree is read once per
archive and kept in the output cache ($IRB_CACHE_DIR); later appends onto the
same file read only that.`;

const LEVELS = { gzip: [1, 9], zstd: [1, 19] } as const;

/** Parses the arguments after `irb append`; throws {@link UsageError} on mistakes. */
export function parseAppendArgs(argv: string[]): AppendArgs | { command: 'help'; topic: 'append' } {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        output: { type: 'string', short: 'o' },
        inject: { type: 'string', multiple: true },
        init: { type: 'string' },
        compression: { type: 'string', short: 'c' },
        level: { type: 'string' },
        json: { type: 'boolean' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    const message = error instanceof Error ? error.message.split('. ')[0]!.replace(/\.$/, '') : String(error);
    throw new UsageError(message, 'append');
  }
  if (values.help) return { command: 'help', topic: 'append' };
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? 'missing BASE' : `unexpected argument "${positionals[1]}"`,
      'append',
    );
  }
  if (values.output === undefined || values.output === '') throw new UsageError('missing -o OUT', 'append');
  const inject = (values.inject as string[] | undefined) ?? [];
  if (inject.length === 0 && values.init === undefined) {
    throw new UsageError('nothing to append: give --inject SRC:DEST or --init FILE', 'append');
  }
  const args: AppendArgs = {
    command: 'append',
    base: positionals[0] as string,
    output: String(values.output),
    inject,
    json: Boolean(values.json),
    verbose: Boolean(values.verbose),
  };
  if (values.init !== undefined) args.init = String(values.init);
  if (values.compression !== undefined) {
    const c = String(values.compression);
    if (c !== 'gzip' && c !== 'zstd' && c !== 'lz4' && c !== 'none') {
      throw new UsageError(`-c must be gzip, zstd, lz4 or none, not "${c}"`, 'append');
    }
    args.compression = c;
  }
  if (values.level !== undefined) {
    const c = args.compression;
    if (c !== 'gzip' && c !== 'zstd') throw new UsageError('--level needs -c gzip or -c zstd', 'append');
    const level = Number(values.level);
    const [lo, hi] = LEVELS[c];
    if (!Number.isInteger(level) || level < lo || level > hi) {
      throw new UsageError(`--level for ${c} must be ${lo}-${hi}, not "${values.level}"`, 'append');
    }
    args.level = level;
  }
  return args;
}

/** Runs `irb append`: the library is loaded only now, so other commands do not pay for it. */
export async function runAppend(args: AppendArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { appendOverlay } = await import('@irb/builder/append');
  const options = {
    ...(args.init !== undefined ? { init: args.init } : {}),
    ...(args.compression !== undefined ? { compression: args.compression } : {}),
    ...(args.level !== undefined ? { level: args.level } : {}),
    ...(signal ? { signal } : {}),
  };
  let summary: AppendSummary;
  if (args.output === '-') {
    const stream = appendOverlay(args.base, args.inject, options);
    for await (const chunk of stream) {
      if (io.stdout.write(chunk) === false && io.stdout.once) {
        await new Promise<void>((resolve) => io.stdout.once?.('drain', resolve));
      }
    }
    summary = await stream.summary;
  } else {
    summary = await appendOverlay(args.base, args.inject, { ...options, output: args.output });
  }
  const out = args.output === '-' ? io.stderr : io.stdout;
  if (args.json) out.write(`${JSON.stringify(summary)}\n`);
  else {
    out.write(
      `${summary.output}: ${summary.baseBytes} bytes of ${summary.base} + a ${summary.compression} member of ${summary.entries} entries (${summary.memberBytes} bytes) in ${summary.durationMs} ms\n`,
    );
  }
  return 0;
}
