/** `irb append BASE -o OUT`: a new member with files after a built initramfs (see `appendOverlay`). */
import type { AppendSummary } from '@irb/builder/append';
import { COMPRESSION_FLAGS, type CompressionName, chosenCompression, levelFor } from '../kit/compression.ts';
import { EXIT } from '../kit/errors.ts';
import { type CliIo, writeWithBackpressure } from '../kit/io.ts';
import { parseOptions, strings } from '../kit/options.ts';
import {
  joinProgramWords,
  PROGRAM_FLAGS,
  PROGRAM_HELP,
  type ProgramArgs,
  programArgs,
  programOptions,
} from '../kit/program.ts';
import { CACHE_FLAGS, REGISTRY_FLAGS, sourceArgs, toSourceOptions } from '../kit/source.ts';
import { UsageError } from '../kit/usage.ts';

/** Parsed `irb append`. */
export interface AppendArgs extends ProgramArgs {
  base: string;
  output: string;
  inject: string[];
  init?: string;
  compression?: CompressionName;
  level?: number;
  json: boolean;
  verbose: boolean;
  /** For an image in --kernel-modules. */
  platform?: string;
  insecureRegistries: string[];
  keychains: string[];
  /** The cache that holds BASE's tree (and a module source's resolution): another directory, or none. */
  cacheDir?: string;
  noCache: boolean;
}

export const name = 'append';
export const synopsis = 'append BASE -o OUT [--inject SRC:DEST] [--env NAME=VALUE]';
export const summary = "add a member (files, a job's program, modules) to a built initramfs";
export const help = `Usage: irb append BASE -o OUT [--inject SRC:DEST]… [--init FILE] [-c NAME]
                  [--env NAME=VALUE]… [--cmd ARG]… [--entrypoint PATH] [--workdir DIR]
                  [--user U] [--net CIDR…] [--kernel-modules SOURCE --modules LIST]

Writes BASE (an initramfs, e.g. one irb build wrote) followed by a new member
holding the given files: the kernel unpacks it over BASE, so a per-job agent or
/init is added without rebuilding. BASE's bytes are copied as they are.

The program flags (--env, --cmd, --entrypoint, --workdir, --user) and --net do
what they do for irb build, without rebuilding: they go into a job file
(/irb/job.d/<BASE's size>.conf) that BASE's generated /init applies at boot, after
the job files of earlier appends. --kernel-modules with --modules adds a modules
member before the new one, and the job file has the init load them.

  -o, --output FILE         the result (written atomically); - writes it to stdout; a
                            .gz, .zst, .lz4 or .cpio ending picks the new member's
                            compression (a contradicting -c is refused, as for irb build)
      --inject SRC:DEST     copy host file or directory SRC to DEST; repeatable
      --init FILE           put FILE at /init (replacing BASE's)
  -c, --compression NAME    gzip, zstd, lz4 or none (default: what -o's name says, else BASE's)
      --level N             gzip 1-9 (default 6), zstd 1-19 (default 3), lz4 1; needs -c
      --platform OS/ARCH[/V]  --insecure-registry HOST  --keychain MODULE[#EXPORT]
                            for an image in --kernel-modules (as for irb build)
      --cache-dir DIR       irb's cache directory (default $IRB_CACHE_DIR, else
                            $XDG_CACHE_HOME/irb or ~/.cache/irb)
      --no-cache            read BASE's tree again, store nothing
${PROGRAM_HELP}
      --json                print the summary as JSON (on stderr with -o -)
      --verbose             with errors, the error code and the cause chain

The guest gets the tree irb build --inject gives: DEST goes through BASE's
symlinks (/bin/x lands in /usr/bin/x when /bin -> usr/bin), missing parents and
DEST itself are created (0755, root), directories BASE has keep their mode, and
a file where BASE has a directory is refused. BASE's tree is read once per
archive and kept in irb's cache (output/ of --cache-dir); later appends onto the
same file read only that.`;

export function parse(argv: string[]): AppendArgs | 'help' {
  const { values, positionals } = parseOptions(joinProgramWords(argv), {
    output: { type: 'string', short: 'o' },
    inject: { type: 'string', multiple: true },
    init: { type: 'string' },
    ...COMPRESSION_FLAGS,
    ...REGISTRY_FLAGS,
    ...CACHE_FLAGS,
    ...PROGRAM_FLAGS,
    json: { type: 'boolean' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return 'help';
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0 ? 'missing BASE' : `unexpected argument "${positionals[1]}"`,
    );
  }
  if (values.output === undefined || values.output === '') throw new UsageError('missing -o OUT');
  const inject = strings(values.inject);
  const program = programArgs(values);
  if (inject.length === 0 && values.init === undefined && Object.keys(program).length === 0) {
    throw new UsageError(
      'nothing to append: give --inject SRC:DEST, --init FILE, program flags (--env, --cmd, …), --net or --modules',
    );
  }
  if (
    values.init !== undefined &&
    Object.keys(program).some((k) => k !== 'kernelModules' && k !== 'modules')
  ) {
    throw new UsageError(
      "--init replaces BASE's /init, which is what applies --env, --cmd, … and --net; give one or the other",
    );
  }
  const output = String(values.output);
  const source = sourceArgs(values);
  const args: AppendArgs = {
    base: positionals[0] as string,
    output,
    inject,
    json: Boolean(values.json),
    verbose: Boolean(values.verbose),
    insecureRegistries: source.insecureRegistries,
    keychains: source.keychains,
    noCache: source.noCache,
    ...(source.cacheDir !== undefined ? { cacheDir: source.cacheDir } : {}),
    ...program,
  };
  if (source.platform !== undefined) args.platform = source.platform;
  if (values.init !== undefined) args.init = String(values.init);
  // -c, else what -o's name says (as for irb build), else BASE's: known only once BASE is read.
  const compression = chosenCompression(values, output);
  if (compression !== undefined) args.compression = compression;
  if (values.level !== undefined) {
    if (compression === undefined) {
      throw new UsageError(
        "--level needs -c (the new member takes BASE's compression, unknown until it is read)",
      );
    }
    const level = levelFor(values, compression);
    if (level !== undefined) args.level = level;
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
  // The cache, and the registry for an image in --kernel-modules: a --keychain (which loads the
  // library) only counts there, the one thing append may pull.
  const source = await toSourceOptions(
    args.kernelModules !== undefined ? args : { ...args, keychains: [] },
    signal,
  );
  const options = {
    ...(args.init !== undefined ? { init: args.init } : {}),
    ...(args.compression !== undefined ? { compression: args.compression } : {}),
    ...(args.level !== undefined ? { level: args.level } : {}),
    ...programOptions(args),
    ...source,
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
    const what = summary.modules
      ? `a ${summary.compression} modules member (${summary.modules.names.length} for ${summary.modules.release}) and a member`
      : `a ${summary.compression} member`;
    out.write(
      `${summary.output}: ${summary.baseBytes} bytes of ${summary.base} + ${what} of ${summary.entries} entries (${summary.memberBytes} bytes) in ${summary.durationMs} ms${summary.job ? `; job file ${summary.job}` : ''}\n`,
    );
  }
  return EXIT.ok;
}
