import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type ArchiveFile, type ElfHeaderInfo, INIT_HEAD_BYTES, initElfOf } from '@irb/boot/arch';
import { decodeInitramfs } from '@irb/compress';
import type { CpioEntryType } from '@irb/cpio';
import { readCpio } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { recommendGuestMemory, tmpfsFootprint } from './memory.ts';

/** One entry of an initramfs as {@link listArchive} reports it. */
export interface ArchiveEntry {
  /** Which member of a concatenated initramfs (from 0). */
  member: number;
  /** Name as stored (UTF-8 decoded, invalid sequences as U+FFFD; no leading `/`). */
  name: string;
  /** The name's exact bytes (names are bytes; `name` is their UTF-8 reading). */
  nameBytes: Uint8Array;
  type: CpioEntryType | 'unknown';
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Body size in bytes (0 for all but the last name of a hard-linked file). */
  size: number;
  mtime: number;
  ino: number;
  /** Symlink target. */
  target?: string;
  /** The symlink target's exact bytes. */
  targetBytes?: Uint8Array;
  rdevMajor: number;
  rdevMinor: number;
}

/** Options of {@link listArchive} and {@link measureArchive}. */
export interface ListArchiveOptions {
  signal?: AbortSignal;
}

/** The bytes of an archive file, after checking it is a readable regular file. */
export async function* openArchive(path: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  try {
    const st = await stat(path);
    if (!st.isFile())
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `${path} is not a file; give the path of an initramfs archive`,
      );
  } catch (error) {
    if (error instanceof IrbError) throw error;
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the path`,
      { cause: error },
    );
  }
  for await (const chunk of createReadStream(path, signal ? { signal } : {})) yield chunk as Uint8Array;
}

/**
 * Lists an initramfs like `lsinitramfs`: every entry of every member of a concatenation, plain,
 * gzip or zstd compressed, in archive order. Bodies are skipped, never held. `archive` is a file
 * path or the archive's bytes as a stream (a pipe, for example).
 */
export async function* listArchive(
  archive: string | AsyncIterable<Uint8Array>,
  options: ListArchiveOptions = {},
): AsyncGenerator<ArchiveEntry> {
  const { signal } = options;
  const bytes = typeof archive === 'string' ? openArchive(archive, signal) : archive;
  const label = typeof archive === 'string' ? archive : 'the input stream';
  const source = decodeInitramfs(bytes, { label, ...(signal ? { signal } : {}) });
  for await (const e of readCpio(source, signal ? { signal } : {})) {
    const entry: ArchiveEntry = {
      member: e.member,
      name: e.name,
      nameBytes: e.nameBytes,
      type: e.type,
      mode: e.permissions,
      uid: e.uid,
      gid: e.gid,
      nlink: e.nlink,
      size: e.type === 'symlink' ? (e.targetBytes?.byteLength ?? e.fileSize) : e.fileSize,
      mtime: e.mtime,
      ino: e.ino,
      rdevMajor: e.rdevMajor,
      rdevMinor: e.rdevMinor,
    };
    if (e.target !== undefined) entry.target = e.target;
    if (e.targetBytes !== undefined) entry.targetBytes = e.targetBytes;
    yield entry;
  }
}

/** What an initramfs needs from the guest, measured from the archive itself. */
export interface ArchiveMeasure {
  entries: number;
  /** Bytes of the archive file. */
  compressedBytes: number;
  /** Bytes its files take in tmpfs (page-rounded). */
  unpackedBytes: number;
  /** See `recommendGuestMemory`. */
  recommendedMemoryMiB: number;
}

/** Reads an archive once to tell how much guest RAM unpacking it takes. */
export async function measureArchive(
  path: string,
  options: ListArchiveOptions = {},
): Promise<ArchiveMeasure> {
  const { initElf: _, ...measure } = await archiveFacts(path, options);
  return measure;
}

/** What {@link archiveFacts} reads of an archive. */
export interface ArchiveFacts extends ArchiveMeasure {
  /** The ELF header of the program its `/init` runs (see `initElfOf` of `@irb/boot`), when it can tell. */
  initElf?: ElfHeaderInfo;
}

/**
 * One pass over an archive, as a stream (memory holds names and a few bytes of executables, not
 * files): what {@link measureArchive} measures, and the ELF header of the program its `/init`
 * runs, decided by `@irb/boot`'s `initElfOf` (what `irb boot` picks its QEMU by).
 */
export async function archiveFacts(path: string, options: ListArchiveOptions = {}): Promise<ArchiveFacts> {
  const { signal } = options;
  let entries = 0;
  let unpackedBytes = 0;
  // The executables and symlinks by name, the last entry of a name winning, as the kernel leaves them.
  const files = new Map<string, ArchiveFile>();
  const source = decodeInitramfs(openArchive(path, signal), { label: path, ...(signal ? { signal } : {}) });
  for await (const e of readCpio(source, signal ? { signal } : {})) {
    entries++;
    const name = e.name.replace(/^(\.?\/)+/, '');
    files.delete(name);
    if (e.type === 'symlink') files.set(name, { mode: e.mode, head: e.targetBytes ?? new Uint8Array(0) });
    if (e.type !== 'file') continue;
    unpackedBytes += tmpfsFootprint(e.fileSize);
    if ((e.mode & 0o111) === 0) continue;
    const head: Uint8Array[] = [];
    let length = 0;
    for await (const chunk of e.body) {
      head.push(chunk.slice(0, INIT_HEAD_BYTES - length));
      length += Math.min(chunk.byteLength, INIT_HEAD_BYTES - length);
      if (length >= INIT_HEAD_BYTES) break;
    }
    files.set(name, { mode: e.mode, head: new Uint8Array(Buffer.concat(head)) });
  }
  const compressedBytes = (await stat(path)).size;
  const initElf = initElfOf(files);
  return {
    entries,
    compressedBytes,
    unpackedBytes,
    recommendedMemoryMiB: recommendGuestMemory({ tmpfsBytes: unpackedBytes, compressedBytes }),
    ...(initElf ? { initElf } : {}),
  };
}
