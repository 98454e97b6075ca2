/**
 * `irb analyze IMAGE|ARCHIVE`: where the bytes of an initramfs (or of the one an image would
 * give) are — by directory, by kind, the largest files, identical files that are not hard links,
 * and what each slim preset would save (see `analyzeArchive` / `analyzeImage` in @irb/builder).
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { AnalyzeOptions, ArchiveAnalysis, BuildProgressEvent, SizeGroup } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { bar, formatBytes, formatPercent, table } from '../kit/format.ts';
import { archiveInput, type CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { integer, one, parseOptions } from '../kit/options.ts';
import { createProgressRenderer } from '../kit/progress.ts';
import { SLIM_SHORT } from '../kit/slim.ts';
import { SOURCE_FLAGS, type SourceFlagArgs, sourceFlagArgs, toSourceOptions } from '../kit/source.ts';
import { UsageError } from '../kit/usage.ts';

/** Parsed `irb analyze`. */
export interface AnalyzeArgs extends SourceFlagArgs {
  /** An existing file is an archive; anything else an image reference. */
  target: string;
  top: number;
}

/** Endings that say "a file", so a missing one is not looked up in a registry. */
const ARCHIVE_NAME = /\.(cpio|gz|gzip|zst|zstd|lz4|img|xz)$/i;

export const name = 'analyze';
export const synopsis = 'analyze IMAGE|ARCHIVE|-';
export const summary = 'where the bytes are, and what --slim would save';

export function parse(argv: string[]): AnalyzeArgs | 'help' {
  const { values, positionals } = parseOptions(argv, { ...SOURCE_FLAGS, top: { type: 'string' } });
  if (values.help) return 'help';
  const target = one(positionals, 'IMAGE or ARCHIVE');
  return {
    target,
    top: integer('top', values.top, 1, 10_000) ?? 10,
    ...sourceFlagArgs(values),
  };
}

/**
 * `irb analyze -`: the archive from stdin, spooled to a temporary file first (the analysis reads
 * an archive by path), which is removed afterwards whatever happens.
 */
async function analyzeStdin(io: CliIo, options: AnalyzeOptions): Promise<ArchiveAnalysis> {
  const input = archiveInput('-', io, 'analyze');
  const dir = await mkdtemp(join(tmpdir(), 'irb-analyze-'));
  try {
    const file = join(dir, 'stdin.cpio');
    await pipeline(input, createWriteStream(file), options.signal ? { signal: options.signal } : {});
    return await (await builder()).analyzeArchive(file, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Whether `target` names a file on this machine (an archive) rather than an image. */
async function archiveFile(target: string): Promise<boolean> {
  if (target === '-') return true;
  const info = await stat(target).catch(() => undefined);
  if (info?.isDirectory()) {
    throw new UsageError(
      `${target} is a directory; give an archive file, or oci:${target} for an OCI image layout`,
    );
  }
  if (info) return true;
  // "./x.cpio.gz" or "out/initramfs.cpio.zst" that does not exist is a typo, not an image name.
  if (/^\.{0,2}\//.test(target) || (ARCHIVE_NAME.test(target) && !target.includes(':'))) {
    throw new UsageError(`${target}: no such file (an image reference would not look like a path)`);
  }
  return false;
}

/** Runs `irb analyze`. */
export async function run(args: AnalyzeArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const { analyzeArchive, analyzeImage } = await builder();
  io.beforeWork?.();
  const analysis: AnalyzeOptions = { top: args.top, topDuplicates: args.top, ...(signal ? { signal } : {}) };
  let result: ArchiveAnalysis;
  const isArchive = await archiveFile(args.target);
  if (isArchive) {
    if (args.platform !== undefined || args.insecureRegistries.length || args.keychains.length) {
      throw new UsageError(
        `${args.target} is an archive file; --platform, --insecure-registry and --keychain are for an IMAGE`,
      );
    }
    result =
      args.target === '-' ? await analyzeStdin(io, analysis) : await analyzeArchive(args.target, analysis);
  } else {
    const renderer = createProgressRenderer(io.stderr, {
      mode: args.quiet ? 'none' : io.stderr.isTTY ? 'tty' : 'plain',
      compression: 'none',
    });
    const options = {
      image: args.target,
      onProgress: (event: BuildProgressEvent) => renderer.onEvent(event),
      ...(await toSourceOptions(args, signal)),
    };
    try {
      result = await analyzeImage({ ...options, ...analysis });
    } finally {
      renderer.finish();
    }
  }
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({ [isArchive ? 'archive' : 'image']: args.target, ...result }, null, 2)}\n`,
    );
  } else {
    io.stdout.write(`${analysisText(args.target, result, args.top).join('\n')}\n`);
  }
  return EXIT.ok;
}

const BAR = 24;

/** A size table: name, bytes, share of the total, a bar, file count. At most `limit` rows. */
function groupRows(groups: readonly SizeGroup[], total: number, limit: number): string[] {
  const shown = groups.slice(0, limit);
  const max = Math.max(0, ...shown.map((g) => g.bytes));
  const lines = table(
    shown.map((g) => [
      g.name,
      formatBytes(g.bytes),
      formatPercent(g.bytes, total),
      bar(g.bytes, max, BAR).padEnd(BAR),
      `${g.files} ${g.files === 1 ? 'file' : 'files'}`,
    ]),
    [false, true, true, false, true],
  ).map((l) => `  ${l}`);
  const rest = groups.slice(limit);
  if (rest.length > 0) {
    const bytes = rest.reduce((n, g) => n + g.bytes, 0);
    lines.push(`  … ${rest.length} more, ${formatBytes(bytes)} (--json lists all)`);
  }
  return lines;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A path list cut to `keep` names: `/a, /b, /c and 4 more`. */
function pathList(paths: readonly string[], keep: number): string {
  const shown = paths.slice(0, keep).join(', ');
  return paths.length > keep ? `${shown} and ${paths.length - keep} more` : shown;
}

/** The report, meant to be read in ten seconds: totals, then one small table per question. */
export function analysisText(target: string, a: ArchiveAnalysis, top: number): string[] {
  const total = a.totalBytes;
  const lines = [
    `${target}: ${formatBytes(total)} in ${plural(a.files, 'file')}, ${plural(a.directories, 'directory', 'directories')}, ${plural(a.symlinks, 'symlink')}${a.other ? `, ${a.other} other` : ''}`,
    '',
    'by directory',
    ...groupRows(a.byDirectory, total, Math.max(8, Math.min(top, 20))),
    '',
    'by kind',
    ...groupRows(a.byKind, total, 20),
    '',
    `largest files`,
    ...table(
      a.largest.map((f) => [formatBytes(f.bytes), formatPercent(f.bytes, total), f.kind, f.path]),
      [true, true, false, false],
    ).map((l) => `  ${l}`),
  ];
  lines.push('');
  if (a.duplicates.length === 0) {
    lines.push('identical files: none outside hard links');
  } else {
    lines.push(
      `identical files that are not hard links: ${formatBytes(a.duplicateBytes)} wasted (a hard link per copy would save it)`,
      ...table(
        a.duplicates.map((d) => [
          formatBytes(d.wastedBytes),
          `${d.paths.length} × ${formatBytes(d.bytes)}`,
          pathList(d.paths, 3),
        ]),
        [true, true, false],
      ).map((l) => `  ${l}`),
    );
  }
  lines.push('', 'slim presets (irb build --slim NAME[,NAME]; all = every one)');
  const max = Math.max(0, ...a.presets.map((p) => p.bytes));
  lines.push(
    ...table(
      a.presets.map((p) => [
        p.name,
        formatBytes(p.bytes),
        p.bytes > 0 ? formatPercent(p.bytes, total) : '',
        bar(p.bytes, max, BAR).padEnd(BAR),
        SLIM_SHORT[p.name],
      ]),
      [false, true, true, false, false],
    ).map((l) => `  ${l}`),
  );
  const all = a.presets.reduce((n, p) => n + p.bytes, 0);
  if (all > 0) {
    // Presets do not overlap much but may (a header under /usr/share/doc): "up to".
    lines.push(`  all: up to ${formatBytes(all)} (${formatPercent(all, total)}) of ${formatBytes(total)}`);
  }
  return lines;
}

export const help = `Usage: irb analyze IMAGE|ARCHIVE|- [--top N] [--json] [image options]

Shows where the bytes are: the total, sizes by top directory and by kind of file
(executables, shared and static libraries, headers, Python sources and bytecode,
JavaScript, docs, locales, package caches), the largest files, identical files
that are not hard links (the bytes a hard link would save), and what each slim
preset (irb build --slim) would remove.

An existing file is read as an initramfs (gzip, zstd, lz4 or plain, members
concatenated), - reads one from stdin (irb build IMAGE -o - | irb analyze -);
anything else is an image reference, analysed as irb build would pack it
(nothing is written to disk).

      --top N                  largest files and duplicate groups to list (default 10)
      --json                   the whole analysis as JSON (sizes in bytes)
  -q, --quiet                  no progress while an image is pulled
      --verbose                with errors, the error code and the cause chain
Image (as for irb build):
      --platform OS/ARCH[/V]   platform of a multi-platform image (default linux/amd64)
      --insecure-registry HOST use plain HTTP for HOST; repeatable
      --keychain MODULE[#EXPORT]  credentials from your own auth package; repeatable
      --cache-dir DIR / --no-cache  the cache directory, or none`;
