import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { BootOptions, BootResult, BootTimelineOptions, BootTimelineReport } from '@irb/boot';
import type { ElfHeaderInfo } from '@irb/boot/arch';
import { createInitramfsInspector, type InitramfsInfo } from '@irb/boot/archive';
import { decodeInitramfs } from '@irb/compress';
import type { CpioEntryType, CpioReadEntry } from '@irb/cpio';
import { CpioError, readCpio } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { recommendGuestMemory, tmpfsFootprint } from './memory.ts';

/** One entry of an initramfs as {@link listArchive} reports it. */
export interface ArchiveEntry {
  /**
   * Which member of the file it is in (from 0): a compressed stream (a gzip member, a zstd frame,
   * an lz4 legacy stream) or an uncompressed run of records, which ends after a `TRAILER!!!`,
   * before a record of another archive device number, or where a compressed member follows (see
   * `decodeInitramfs` of `@irb/compress`). Members that hold no entry are not counted: an archive
   * irb builds has a base member (0) and an overlay member (1), then the trailer member (no
   * entry); each `irb append` adds one.
   */
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
  /**
   * The archive's device number for this entry: with `ino`, what makes names of one file hard
   * links (irb gives each member its own, since no trailer between members resets the table).
   */
  devMajor: number;
  devMinor: number;
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
  // 1 MiB reads: at the stream's default 64 KiB, a 150 MB archive took 2 300 thread-pool round
  // trips, and `irb ls` spent a third of its time waiting on them.
  const reads = createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  for await (const chunk of reads) yield chunk as Uint8Array;
}

/**
 * Lists an initramfs like `lsinitramfs`: every entry of every member of a concatenation, plain,
 * gzip, zstd or lz4 compressed, in archive order. Bodies are skipped, never held. `archive` is a file
 * path or the archive's bytes as a stream (a pipe, for example).
 */
export async function* listArchive(
  archive: string | AsyncIterable<Uint8Array>,
  options: ListArchiveOptions = {},
): AsyncGenerator<ArchiveEntry> {
  const { signal } = options;
  const bytes = typeof archive === 'string' ? openArchive(archive, signal) : archive;
  const label = typeof archive === 'string' ? archive : 'the input stream';
  // The member an entry is in: the last one that started at or before its header.
  const starts: number[] = [];
  const source = decodeInitramfs(bytes, {
    label,
    ...(signal ? { signal } : {}),
    onMemberStart: (m) => {
      starts[m.index] = m.outputStart;
    },
  });
  // Members without entries (the trailer member) are not counted.
  let raw = 0;
  let member = -1;
  let counted = -1;
  for await (const e of readArchiveEntries(source, label, signal)) {
    while (raw + 1 < starts.length && (starts[raw + 1] as number) <= e.offset) raw++;
    if (counted !== raw) {
      counted = raw;
      member++;
    }
    const entry: ArchiveEntry = {
      member,
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
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      rdevMajor: e.rdevMajor,
      rdevMinor: e.rdevMinor,
    };
    if (e.target !== undefined) entry.target = e.target;
    if (e.targetBytes !== undefined) entry.targetBytes = e.targetBytes;
    yield entry;
  }
}

/**
 * `readCpio` over an archive's decoded records, with its errors naming the archive: the cpio
 * reader only knows offsets in the decoded data.
 */
export async function* readArchiveEntries(
  records: AsyncIterable<Uint8Array>,
  label: string,
  signal?: AbortSignal,
): AsyncGenerator<CpioReadEntry> {
  try {
    yield* readCpio(records, signal ? { signal } : {});
  } catch (error) {
    if (!(error instanceof CpioError)) throw error;
    throw new IrbError(error.code, `${label}, in its cpio data: ${error.message}`, { cause: error });
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

/**
 * Archives this process read to the end without an error, by path: the file's identity (device,
 * inode, size, times) when it was read, so a boot right after a measure does not read it again.
 */
const readWhole = new Map<string, { identity: string; info: InitramfsInfo }>();

async function identity(path: string): Promise<string | undefined> {
  const st = await stat(path, { bigint: true }).catch(() => undefined);
  return st && `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
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
  return (await readArchiveFacts(path, options)).facts;
}

/** {@link archiveFacts}, and what `@irb/boot` reads of the archive before a boot, in the same pass. */
async function readArchiveFacts(
  path: string,
  options: ListArchiveOptions = {},
): Promise<{ facts: ArchiveFacts; info: InitramfsInfo }> {
  const { signal } = options;
  let entries = 0;
  let unpackedBytes = 0;
  const before = await identity(path);
  // The heads of executables, symlink targets and modules, the last entry of a name winning, as
  // the kernel leaves them: what decides /init's architecture and the modules' releases.
  const inspector = createInitramfsInspector();
  const source = decodeInitramfs(openArchive(path, signal), { label: path, ...(signal ? { signal } : {}) });
  for await (const e of readArchiveEntries(source, path, signal)) {
    entries++;
    if (e.type === 'file') unpackedBytes += tmpfsFootprint(e.fileSize);
    await inspector.add(e);
  }
  const info = inspector.result();
  if (before !== undefined && before === (await identity(path)))
    readWhole.set(path, { identity: before, info });
  const compressedBytes = (await stat(path)).size;
  const facts: ArchiveFacts = {
    entries,
    compressedBytes,
    unpackedBytes,
    recommendedMemoryMiB: recommendGuestMemory({ tmpfsBytes: unpackedBytes, compressedBytes }),
    ...(info.initElf ? { initElf: info.initElf } : {}),
  };
  return { facts, info };
}

/**
 * Reads the archive to its end (unless {@link measureArchive} just did, and it has not changed
 * since), so that an archive the kernel could not unpack either — corrupt, cut short, not an
 * initramfs — fails here with the decoder's error instead of in a VM.
 */
async function readableToTheEnd(path: string, signal?: AbortSignal): Promise<InitramfsInfo | undefined> {
  const now = await identity(path);
  // A missing file is left to @irb/boot, which names it as the archive to boot.
  if (now === undefined) return undefined;
  const seen = readWhole.get(path);
  if (seen?.identity === now) return seen.info;
  return (await readArchiveFacts(path, signal ? { signal } : {})).info;
}

/**
 * `bootInitramfs` of `@irb/boot`, after the archive was read to its end (see
 * {@link readableToTheEnd}); what that pass found of `/init` and the modules goes along, so the
 * archive is read once.
 */
export async function bootInitramfs(options: BootOptions): Promise<BootResult> {
  const info = await readableToTheEnd(options.initramfs, options.signal);
  const boot = await import('@irb/boot');
  return boot.bootInitramfs({ ...(info ? { initramfsInfo: info } : {}), ...options });
}

/** `bootTimeline` of `@irb/boot`, after the archive was read to its end: see {@link bootInitramfs}. */
export async function bootTimeline(options: BootTimelineOptions): Promise<BootTimelineReport> {
  const info = await readableToTheEnd(options.initramfs, options.signal);
  const boot = await import('@irb/boot');
  return boot.bootTimeline({ ...(info ? { initramfsInfo: info } : {}), ...options });
}
