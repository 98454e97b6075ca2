/**
 * `irb build IMAGE`: an initramfs from an image (see `InitramfsBuilder` in @irb/builder); with
 * `--cache-from` / `--cache-to`, through the remote build cache.
 */
import type { BuildProgressEvent, BuildSummary, InitramfsBuilderOptions } from '@irb/builder';
import { initOptionsConflict } from '@irb/builder/options';
import { BOUNDS_FLAGS, BOUNDS_HELP, type BoundsArgs, boundsArgs, boundsOptions } from '../kit/bounds.ts';
import {
  COMPRESSION_FLAGS,
  type CompressionArgs,
  compressionArgs,
  defaultOutput,
} from '../kit/compression.ts';
import { cliWording, EXIT } from '../kit/errors.ts';
import { injectSpec } from '../kit/inject.ts';
import { type CliIo, writeWithBackpressure } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { integer, one, parseOptions, strings } from '../kit/options.ts';
import {
  joinProgramWords,
  PROGRAM_FLAGS,
  PROGRAM_HELP,
  type ProgramArgs,
  programArgs,
  programOptions,
} from '../kit/program.ts';
import { createProgressRenderer } from '../kit/progress.ts';
import { REMOTE_CACHE_FLAGS, type RemoteCacheArgs, remoteCacheArgs } from '../kit/remote-cache.ts';
import { SLIM_FLAGS, type SlimArgs, slimArgs, slimPresetLines } from '../kit/slim.ts';
import {
  CACHE_FLAGS,
  REGISTRY_FLAGS,
  REPORT_FLAGS,
  type ReportArgs,
  reportArgs,
  type SourceArgs,
  sourceArgs,
  toSourceOptions,
} from '../kit/source.ts';
import { UsageError } from '../kit/usage.ts';
import { summaryJson, summaryText } from './build-report.ts';

/** Parsed `irb build` (`slim`, `keepOnly`, `keep`: see kit/slim.ts). */
export interface BuildArgs
  extends SlimArgs,
    SourceArgs,
    ReportArgs,
    CompressionArgs,
    RemoteCacheArgs,
    ProgramArgs,
    BoundsArgs {
  image: string;
  output: string;
  threads?: number;
  inject: string[];
  init?: string;
  replaceInit: boolean;
  keepInit: boolean;
  onExit: 'poweroff' | 'reboot';
  initKind: 'auto' | 'static' | 'sh';
  /** `--allow-arch-mismatch`: a program built for another architecture is a warning, not an error. */
  allowArchMismatch?: true;
  exclude: string[];
}

export const name = 'build';
export const synopsis = 'build IMAGE [options]';
export const summary = 'build an initramfs from an image';
export const help = `Usage: irb build IMAGE [options]

Pulls IMAGE (no Docker daemon needed), applies its layers, adds an /init and
injected files, and writes a compressed CPIO newc archive the kernel boots.

Output:
  -o, --output FILE            default initramfs.cpio.gz (.zst for zstd, .lz4 for lz4, .cpio for none);
                               a .gz, .zst, .lz4 or .cpio ending picks the compression (a
                               contradicting -c is refused); - writes the archive to stdout
                               and the summary to stderr (with --json: only the JSON)
  -c, --compression NAME       gzip (default), zstd, lz4 (the kernel's legacy format) or none:
                               lz4 unpacks fastest; zstd is small and quick to unpack; none
                               skips decompression but has the most bytes to load; gzip
                               boots on every kernel but unpacks slowest
      --level N                gzip 1-9 (default 6), zstd 1-19 (default 3), lz4 1
      --threads N              compression threads (default: all cores)
Image:
      --platform OS/ARCH[/V]   platform of a multi-platform image (default linux/amd64);
                               an architecture alone (arm64) means linux/ARCH
      --insecure-registry HOST use plain HTTP for HOST (localhost always may); repeatable
      --keychain MODULE[#EXPORT]  credentials from your own auth package (a file or an
                               installed package exporting createKeychain()); asked before
                               IRB_AUTH_* and Docker/Podman config; repeatable
      --cache-dir DIR          the cache directory (default $IRB_CACHE_DIR, else
                               $XDG_CACHE_HOME/irb or ~/.cache/irb): everything irb caches
                               goes inside it, nothing beside it (see irb cache path)
      --no-cache               do not read or write the cache
      --cache-from REPO        remote build cache: on a hit (tag irb-<build key> in REPO)
                               pull the archive instead of building
      --cache-to REPO          push the result to REPO under irb-<build key>
Contents:
      --inject SRC:DEST        copy host file or directory SRC to DEST (an absolute path) in
                               the image; repeatable
      --exclude GLOB           leave out paths matching GLOB (*, **, ?; anchored at /); repeatable
      --slim PRESET[,PRESET]   leave out well-known dead weight; repeatable; all = every preset:
${slimPresetLines('                                 ').join('\n')}
      --keep-only TRACE.json   keep only what a traced run used (irb trace writes the file),
                               their parent directories, /etc/passwd and /etc/group;
                               repeatable (traces are merged)
      --keep GLOB              with --keep-only: keep GLOB too (what the trace could not see:
                               stat-only checks, code paths the run did not take); repeatable
      --init FILE              use FILE as /init instead of the generated one
      --replace-init           replace an /init the image already has
      --keep-init              boot the image's own /init (no /init is generated)
      --init-kind auto|static|sh  the generated /init: irb's static program (x86_64,
                               aarch64; needs nothing in the image) or a POSIX sh script
                               (needs /bin/sh and mount); auto (default): static if irb
                               has it for the image's architecture, else sh
      --on-exit poweroff|reboot  how the generated /init ends the VM (default poweroff;
                               reboot for Firecracker, which ignores power-off)
      --allow-arch-mismatch    build even when the program the generated /init runs is
                               an ELF file for another architecture than the image's
                               (it would fail at boot with 126): a warning, not an error
${BOUNDS_HELP}
${PROGRAM_HELP}
Output control:
      --json                   print the summary as JSON on stdout (stderr with -o -)
  -q, --quiet                  no progress and no summary
      --verbose                more detail; with errors, the cause chain and stack

Without --init, irb generates an /init (its static program, or a POSIX sh script
with --init-kind sh) that mounts /proc, /sys, /dev
(+ /dev/pts, /dev/shm), /run and /tmp, sets the config's Env, WorkingDir and User,
runs Entrypoint + Cmd, prints "irb: exit status N" and powers the VM off.

The kernel modules go into a member of their own, cached and shared by every image
built for that kernel; a changed --env, --cmd, --net or agent reuses the cached image.
irb config ARCHIVE shows what an archive runs.`;

/**
 * `--init-kind`, checked with the library's init rules (`initOptionsConflict`) and worded in
 * flags; `--keep-init` with `--replace-init` is the CLI's own rule.
 */
function initKindArg(values: Record<string, unknown>): 'auto' | 'static' | 'sh' {
  const given = values['init-kind'] as string | undefined;
  const conflict = initOptionsConflict({
    ...(values.init !== undefined ? { init: String(values.init) } : {}),
    keepImageInit: Boolean(values['keep-init']),
    ...(given !== undefined ? { initKind: given as 'auto' } : {}),
  });
  if ((values['keep-init'] && values['replace-init']) || conflict?.option === 'init') {
    throw new UsageError('--keep-init excludes --replace-init and --init');
  }
  if (conflict?.option === 'initKind') {
    throw new UsageError(
      conflict.conflictsWith === undefined
        ? `--init-kind must be auto, static or sh, not "${conflict.value}"`
        : `--init-kind chooses the generated /init; it excludes ${conflict.conflictsWith === 'init' ? '--init' : '--keep-init'}`,
    );
  }
  return (given ?? 'auto') as 'auto' | 'static' | 'sh';
}

export function parse(argv: string[]): BuildArgs | 'help' {
  const { values, positionals } = parseOptions(joinProgramWords(argv), {
    output: { type: 'string', short: 'o' },
    ...COMPRESSION_FLAGS,
    threads: { type: 'string' },
    ...REGISTRY_FLAGS,
    inject: { type: 'string', multiple: true },
    init: { type: 'string' },
    'replace-init': { type: 'boolean' },
    'keep-init': { type: 'boolean' },
    'on-exit': { type: 'string' },
    'init-kind': { type: 'string' },
    'allow-arch-mismatch': { type: 'boolean' },
    exclude: { type: 'string', multiple: true },
    ...SLIM_FLAGS,
    ...BOUNDS_FLAGS,
    ...PROGRAM_FLAGS,
    ...CACHE_FLAGS,
    ...REMOTE_CACHE_FLAGS,
    ...REPORT_FLAGS,
  });
  if (values.help) return 'help';
  const image = one(positionals, 'IMAGE');
  const given = values.output as string | undefined;
  const compression = compressionArgs(values, given);
  const source = sourceArgs(values);
  const initKind = initKindArg(values);
  const report = reportArgs(values);
  const onExit = (values['on-exit'] ?? 'poweroff') as string;
  if (onExit !== 'poweroff' && onExit !== 'reboot') {
    throw new UsageError(`--on-exit must be poweroff or reboot, not "${onExit}"`);
  }
  const inject = strings(values.inject);
  for (const spec of inject) {
    const split = injectSpec(spec);
    if (split === undefined) {
      throw new UsageError(
        `--inject wants SRC:DEST (a host path and an absolute path in the image), not "${spec}"`,
      );
    }
    // A relative DEST has no meaning in an image (there is no working directory at build time);
    // guessing "relative to /" would hide a typo such as a missing leading slash.
    if (!split.dest.startsWith('/')) {
      throw new UsageError(
        `--inject ${spec}: DEST must be an absolute path in the image, e.g. ${split.src}:/${split.dest}`,
      );
    }
  }
  const output = given ?? defaultOutput(compression.compression);
  if (output === '') throw new UsageError('-o needs a file name');
  const args: BuildArgs = {
    image,
    output,
    ...compression,
    inject,
    replaceInit: Boolean(values['replace-init']),
    keepInit: Boolean(values['keep-init']),
    onExit,
    initKind,
    exclude: strings(values.exclude),
    ...slimArgs(values),
    ...boundsArgs(values),
    ...programArgs(values),
    ...source,
    ...report,
  };
  const threads = integer('threads', values.threads, 1, 1024);
  if (threads !== undefined) args.threads = threads;
  if (values.init !== undefined) args.init = String(values.init);
  if (values['allow-arch-mismatch']) args.allowArchMismatch = true;
  return Object.assign(args, remoteCacheArgs(values, output));
}

/** With the archive on stdout (`-o -`), the report goes to stderr. */
export function reportsTo(args: BuildArgs): 'stdout' | 'stderr' {
  return args.output === '-' ? 'stderr' : 'stdout';
}

export async function run(args: BuildArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const toStdout = args.output === '-';
  // With the archive on stdout and --json, stderr carries the JSON summary and nothing else, so
  // `irb build … -o - --json 2>summary.json | …` leaves a valid JSON file (or one error line).
  const silent = args.quiet || (toStdout && args.json);
  const renderer = createProgressRenderer(io.stderr, {
    mode: silent ? 'none' : io.stderr.isTTY ? 'tty' : 'plain',
    compression: args.compression,
  });
  // The facade alone (`@irb/builder/build`): a cached rebuild loads no more than it needs.
  const { InitramfsBuilder } = await import('@irb/builder/build');
  // V8's heap settings for the work (run.ts) at the build's first download, layer or pack event,
  // not before: a changed V8 flag makes V8 refuse Node's built-in code cache, so the modules an
  // unchanged rebuild loads afterwards (node:http, to revalidate the manifest) were compiled from
  // source, 5–15 ms of its ~130 ms. (Such a rebuild reads only the config blob from the cache.)
  let tuned = false;
  const onWork = (event: BuildProgressEvent) => {
    const work =
      (event.type === 'blob' && event.phase === 'network') || event.type === 'index' || event.type === 'pack';
    if (tuned || !work) return;
    tuned = true;
    io.beforeWork?.();
  };
  // Said once: zstd output bytes depend on the library that wrote them (zstd-napi or node:zlib).
  if (args.verbose && args.compression === 'zstd')
    io.stderr.write(`irb: zstd backend: ${(await builder()).zstdBackend()}\n`);
  const options: InitramfsBuilderOptions = {
    image: args.image,
    compression: args.compression,
    inject: args.inject,
    exclude: args.exclude,
    slim: args.slim,
    keepOnly: args.keepOnly,
    keep: args.keep,
    replaceImageInit: args.replaceInit,
    keepImageInit: args.keepInit,
    exitAction: args.onExit,
    initKind: args.initKind,
    ...programOptions(args),
    onProgress: (event) => {
      onWork(event);
      renderer.onEvent(event);
    },
    ...(await toSourceOptions(args, signal)),
  };
  if (args.maxEntries !== undefined || args.maxUnpacked !== undefined)
    Object.assign(options, boundsOptions(args, (await builder()).parseByteSize));
  if (args.level !== undefined) options.level = args.level;
  if (args.threads !== undefined) options.threads = args.threads;
  if (args.init !== undefined) options.init = args.init;
  if (args.allowArchMismatch) options.allowArchMismatch = true;
  if (args.cacheFrom !== undefined || args.cacheTo !== undefined)
    return (await import('./build-remote.ts')).buildCached(args, options, io, renderer);
  if (toStdout && io.stdout.isTTY) {
    throw new UsageError(
      'refusing to write a binary archive to a terminal; pipe or redirect stdout, or use -o FILE',
    );
  }
  let summary: BuildSummary;
  try {
    const builder = new InitramfsBuilder(options);
    if (toStdout) {
      const stream = builder.stream();
      for await (const chunk of stream) await writeWithBackpressure(io.stdout, chunk);
      summary = await stream.summary;
    } else {
      summary = await builder.build(args.output);
    }
  } finally {
    renderer.finish();
  }
  // With the archive on stdout, the summary goes to stderr.
  const out = toStdout ? io.stderr : io.stdout;
  if (args.json) out.write(`${JSON.stringify(summaryJson(summary), null, 2)}\n`);
  else if (!args.quiet) out.write(`${summaryText(summary).join('\n')}\n`);
  // --quiet drops the summary, not what will stop the VM from working.
  else for (const w of summary.warnings) io.stderr.write(`irb: warning: ${cliWording(w)}\n`);
  return EXIT.ok;
}
