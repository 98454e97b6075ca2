import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
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
  let entries = 0;
  let unpackedBytes = 0;
  for await (const e of listArchive(path, options)) {
    entries++;
    if (e.type === 'file') unpackedBytes += tmpfsFootprint(e.size);
  }
  const compressedBytes = (await stat(path)).size;
  return {
    entries,
    compressedBytes,
    unpackedBytes,
    recommendedMemoryMiB: recommendGuestMemory({ tmpfsBytes: unpackedBytes, compressedBytes }),
  };
}
