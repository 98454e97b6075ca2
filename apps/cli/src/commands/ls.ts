/** `irb ls ARCHIVE|-`: an initramfs's members and entries, like `lsinitramfs -l`. */
import type { ArchiveEntry } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { formatMode, formatTime } from '../kit/format.ts';
import { bytesOf, type CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { one, parseOptions } from '../kit/options.ts';
import { UsageError } from '../kit/usage.ts';

/** Parsed `irb ls`. */
export interface LsArgs {
  archive: string;
  json: boolean;
  verbose: boolean;
}

export const name = 'ls';
export const synopsis = 'ls ARCHIVE|-';
export const summary = 'list an initramfs (compressed, concatenated members too)';
export const help = `Usage: irb ls ARCHIVE|- [--json]

Lists an initramfs like lsinitramfs -l: mode, owner, size, mtime, name and link
target, over gzip/zstd/plain members concatenated in one file. - reads the
archive from stdin (irb build IMAGE -o - | irb ls -).`;

export function parse(argv: string[]): LsArgs | 'help' {
  const { values, positionals } = parseOptions(argv, {
    json: { type: 'boolean' },
    verbose: { type: 'boolean' },
  });
  if (values.help) return 'help';
  return {
    archive: one(positionals, 'ARCHIVE'),
    json: Boolean(values.json),
    verbose: Boolean(values.verbose),
  };
}

export async function run(args: LsArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  let member = 0;
  let archive: string | AsyncIterable<Uint8Array> = args.archive;
  if (args.archive === '-') {
    if (!io.stdin || io.stdin.isTTY) {
      throw new UsageError('"-" reads the archive from stdin; pipe one in (irb build … -o - | irb ls -)');
    }
    archive = bytesOf(io.stdin);
  }
  const { listArchive } = await builder();
  io.beforeWork?.();
  for await (const entry of listArchive(archive, signal ? { signal } : {})) {
    if (args.json) {
      io.stdout.write(`${JSON.stringify(entry)}\n`);
      continue;
    }
    if (entry.member !== member) {
      member = entry.member;
      io.stdout.write(`--- archive member ${member + 1}\n`);
    }
    io.stdout.write(`${lsLine(entry)}\n`);
  }
  return EXIT.ok;
}

/** One `irb ls` line, like `lsinitramfs -l` with numeric owners (an archive has no user names). */
export function lsLine(e: ArchiveEntry): string {
  const size = e.type === 'char' || e.type === 'block' ? `${e.rdevMajor}, ${e.rdevMinor}` : String(e.size);
  const name = e.type === 'symlink' && e.target !== undefined ? `${e.name} -> ${e.target}` : e.name;
  return [
    formatMode(e.type, e.mode),
    String(e.nlink).padStart(3),
    String(e.uid).padEnd(5),
    String(e.gid).padEnd(5),
    size.padStart(10),
    formatTime(e.mtime),
    name,
  ].join(' ');
}
