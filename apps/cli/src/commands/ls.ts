/** `irb ls ARCHIVE|-`: an initramfs's members and entries, like `lsinitramfs -l`. */
import type { ArchiveEntry } from '@irb/builder';
import { EXIT } from '../kit/errors.ts';
import { escapeName, formatMode, formatTime } from '../kit/format.ts';
import { archiveInput, bytesOf, type CliIo } from '../kit/io.ts';
import { builder } from '../kit/library.ts';
import { type ArchiveArgs, parseArchiveArgs } from '../kit/options.ts';

/** Parsed `irb ls`. */
export type LsArgs = ArchiveArgs;

export const name = 'ls';
export const synopsis = 'ls ARCHIVE|-';
export const summary = 'list an initramfs (compressed, concatenated members too)';
export const help = `Usage: irb ls ARCHIVE|- [--json] [--verbose]

Lists an initramfs like lsinitramfs -l: mode, owner, size, mtime, name and link
target, over gzip/zstd/lz4/plain members concatenated in one file; a later member
starts with "--- archive member N". - reads the archive from stdin
(irb build IMAGE -o - | irb ls -).

Names are printed as ls -b and bsdtar print them: control bytes and bytes that are
not UTF-8 as \\n, \\t, \\033-style escapes, a backslash as \\\\; a later name of a
hard-linked file ends in "link to NAME".

  --json      one JSON object per entry (member counted from 1, as the headers);
              names, link targets and hard-link names that are not valid UTF-8
              also as base64 bytes (nameBytes, targetBytes, hardlinkBytes)
  --verbose   with errors, the error code and the cause chain`;

export function parse(argv: string[]): LsArgs | 'help' {
  return parseArchiveArgs(argv);
}

export async function run(args: LsArgs, io: CliIo, signal?: AbortSignal): Promise<number> {
  const input = archiveInput(args.archive, io, 'ls');
  const archive = typeof input === 'string' ? input : bytesOf(input);
  const { listArchive } = await builder();
  io.beforeWork?.();
  const links = hardLinks();
  let member = 0;
  // Lines go out ~64 KiB at a time: a write per line was a tenth of listing a large archive.
  let pending = '';
  const emit = (line: string) => {
    pending += `${line}\n`;
    if (pending.length >= 65536) {
      io.stdout.write(pending);
      pending = '';
    }
  };
  try {
    for await (const entry of listArchive(archive, signal ? { signal } : {})) {
      const first = links(entry);
      if (args.json) {
        emit(JSON.stringify(lsJson(entry, first)));
        continue;
      }
      if (entry.member !== member) {
        member = entry.member;
        emit(`--- archive member ${member + 1}`);
      }
      emit(lsLine(entry, first));
    }
  } finally {
    // What was listed before a damaged member stands, as the error after it says.
    if (pending) io.stdout.write(pending);
  }
  return EXIT.ok;
}

/**
 * Names the first name of each hard-linked file, as the kernel groups them: within one member,
 * by inode number, for all but directories. Returns, for each entry, the earlier name it is a
 * hard link to (`undefined` for the first name and for everything else).
 */
function hardLinks(): (entry: ArchiveEntry) => Uint8Array | undefined {
  const seen = new Map<string, Uint8Array>();
  return (entry) => {
    if (entry.nlink < 2 || entry.type === 'directory') return undefined;
    const key = `${entry.member}:${entry.ino}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, entry.nameBytes);
    return first;
  };
}

/** One `irb ls` line, like `lsinitramfs -l` with numeric owners (an archive has no user names). */
export function lsLine(e: ArchiveEntry, hardLinkTo?: Uint8Array): string {
  const size = e.type === 'char' || e.type === 'block' ? `${e.rdevMajor}, ${e.rdevMinor}` : String(e.size);
  // Names are escaped as bsdtar -tv prints them, and a later name of a hard-linked file says
  // which it is a link to, as there.
  let shown = escapeName(e.nameBytes);
  if (e.type === 'symlink' && e.targetBytes !== undefined) shown += ` -> ${escapeName(e.targetBytes)}`;
  else if (hardLinkTo !== undefined) shown += ` link to ${escapeName(hardLinkTo)}`;
  return [
    formatMode(e.type, e.mode),
    String(e.nlink).padStart(3),
    String(e.uid).padEnd(5),
    String(e.gid).padEnd(5),
    size.padStart(10),
    formatTime(e.mtime),
    shown,
  ].join(' ');
}

/** Whether `text` is exactly what `bytes` say (valid UTF-8, no byte order mark dropped). */
function readsExactly(text: string, bytes: Uint8Array): boolean {
  if (text.length === bytes.length && bytes.every((b) => b < 0x80)) return true;
  const encoded = new TextEncoder().encode(text);
  return encoded.length === bytes.length && encoded.every((b, i) => b === bytes[i]);
}

/** A name for JSON: the text, and its bytes in base64 when the text cannot carry them exactly. */
function jsonName(key: string, text: string, bytes: Uint8Array): Record<string, string> {
  return readsExactly(text, bytes)
    ? { [key]: text }
    : {
        [key]: text,
        [`${key}Bytes`]: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
      };
}

/**
 * One `irb ls --json` line: the entry's fields, `member` counted from 1 as the text's headers
 * count, names that are not UTF-8 carried exactly (`nameBytes`, `targetBytes`, `hardlinkBytes`,
 * base64), and `hardlink` for a later name of a hard-linked file.
 */
export function lsJson(e: ArchiveEntry, hardLinkTo?: Uint8Array): Record<string, unknown> {
  return {
    member: e.member + 1,
    ...jsonName('name', e.name, e.nameBytes),
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    nlink: e.nlink,
    size: e.size,
    mtime: e.mtime,
    ino: e.ino,
    rdevMajor: e.rdevMajor,
    rdevMinor: e.rdevMinor,
    ...(e.target !== undefined && e.targetBytes !== undefined
      ? jsonName('target', e.target, e.targetBytes)
      : {}),
    ...(hardLinkTo !== undefined ? jsonName('hardlink', UTF8.decode(hardLinkTo), hardLinkTo) : {}),
  };
}

const UTF8 = new TextDecoder();
