/** `irb append BASE -o OUT`: a new member with files after a built initramfs (see `appendOverlay`). */
import { parseArgs } from 'node:util';
import type { AppendSummary } from '@irb/builder/append';
import { EXIT } from '../kit/errors.ts';
import { type CliIo, writeWithBackpressure } from '../kit/io.ts';
import { UsageError } from '../kit/usage.ts';

/** Parsed `irb append`. */
export interface AppendArgs {
  base: string;
  output: string;
  inject: string[];
  init?: string;
  compression?: 'gzip' | 'zstd' | 'lz4' | 'none';
  level?: number;
  json: boolean;
  verbose: boolean;
}

export const name = 'append';
export const synopsis = 'append BASE -o OUT --inject SRC:DEST';
export const summary = 'add a member with files to a built initramfs';
export const help = `Usage: irb append BASE -o OUT --inject SRC:DEST… [--init FILE] [-c NAME]

Writes BASE (an initramfs, e.g. one irb build wrote) followed by a new member
holding the given files: the kernel unpacks it over BASE, so a per-job agent or
/init is added without rebuilding. BASE's contents are not read, only its first
bytes (to check it is a CPIO, gzip, zstd or lz4 archive); its bytes are copied
as they are.

  -o, --output FILE         the result (written atomically); - writes it to stdout
      --inject SRC:DEST     copy host file or directory SRC to DEST; repeatable
      --init FILE           put FILE at /init (replacing BASE's)
  -c, --compression NAME    gzip, zstd, lz4 or none (default: BASE's)
      --level N             gzip 1-9 (default 6), zstd 1-19 (default 3)
      --json                print the summary as JSON

DEST's parent directories must exist in BASE: the new member holds no parent
directory entries (BASE is not read, and a directory entry would reset the mode
of one BASE has), and the kernel skips a file whose directory is missing.
A directory SRC brings its own subdirectories. The kernel follows BASE's
symlinks on the way (/bin/x lands in /usr/bin/x when /bin -> usr/bin). A file
cannot replace a non-empty directory of BASE; nothing of BASE can be deleted; a
file of BASE is rewritten in place, hard-linked names of it included.`;

const LEVELS = { gzip: [1, 9], zstd: [1, 19] } as const;

export function parse(argv: string[]): AppendArgs | 'help' {
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
    throw new UsageError(message);
  }
  if (values.help) return 'help';
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? 'missing BASE' : `unexpected argument "${positionals[1]}"`,
    );
  }
  if (values.output === undefined || values.output === '') throw new UsageError('missing -o OUT');
  const inject = (values.inject as string[] | undefined) ?? [];
  if (inject.length === 0 && values.init === undefined) {
    throw new UsageError('nothing to append: give --inject SRC:DEST or --init FILE');
  }
  const args: AppendArgs = {
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
      throw new UsageError(`-c must be gzip, zstd, lz4 or none, not "${c}"`);
    }
    args.compression = c;
  }
  if (values.level !== undefined) {
    const c = args.compression;
    if (c !== 'gzip' && c !== 'zstd') throw new UsageError('--level needs -c gzip or -c zstd');
    const level = Number(values.level);
    const [lo, hi] = LEVELS[c];
    if (!Number.isInteger(level) || level < lo || level > hi) {
      throw new UsageError(`--level for ${c} must be ${lo}-${hi}, not "${values.level}"`);
    }
    args.level = level;
  }
  return args;
}

/** Runs `irb append`: the library is loaded only now, so other commands do not pay for it. */
/** With the archive on stdout (`-o -`), the report goes to stderr. */
export function reportsTo(args: AppendArgs): 'stdout' | 'stderr' {
  return args.output === '-' ? 'stderr' : 'stdout';
}

export async function run(args: AppendArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { appendOverlay } = await import('@irb/builder/append');
  io.beforeWork?.();
  const options = {
    ...(args.init !== undefined ? { init: args.init } : {}),
    ...(args.compression !== undefined ? { compression: args.compression } : {}),
    ...(args.level !== undefined ? { level: args.level } : {}),
    ...(signal ? { signal } : {}),
  };
  let summary: AppendSummary;
  if (args.output === '-') {
    const stream = appendOverlay(args.base, args.inject, options);
    for await (const chunk of stream) await writeWithBackpressure(io.stdout, chunk);
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
  return EXIT.ok;
}
