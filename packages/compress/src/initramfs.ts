import { CPIO_HEADER_SIZE, CPIO_TRAILER_NAME, CpioError, cpioBodyOffset, parseCpioHeader } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { unsupportedCompression } from './decompress.ts';
import { DETECT_BYTES, detectCompression } from './detect.ts';
import { gunzipMember } from './gzip-member.ts';
import { unlz4Legacy } from './lz4.ts';
import { ByteReader } from './reader.ts';
import { nodeUnzstdFrame, ZstdDecoder, zstdBackend } from './zstd.ts';

/** One member of an initramfs, as {@link decodeInitramfs} found it. */
export interface InitramfsMember {
  /** Position in the file, from 0. */
  index: number;
  /** `none` for a plain cpio archive. */
  format: 'none' | 'gzip' | 'zstd' | 'lz4';
  /** Offset of the member's first byte in the input. */
  start: number;
  /** Offset just past its last byte (NUL padding after it not included). */
  end: number;
  /** Offset of its first cpio byte in the stream {@link decodeInitramfs} yields. */
  outputStart: number;
  /** Offset just past its last cpio byte in that stream. */
  outputEnd: number;
}

/** Options of {@link decodeInitramfs}. */
export interface DecodeInitramfsOptions {
  /** Names the input in error messages. Default `'initramfs'`. */
  label?: string;
  /** Stops decoding: the iterator throws `signal.reason` at the next chunk. */
  signal?: AbortSignal;
  /**
   * Called when a member starts, before any of its bytes are yielded (`end` and `outputEnd` are
   * not known yet): an entry whose header starts at output offset `o` belongs to the last member
   * started with `outputStart` ≤ `o`.
   */
  onMemberStart?: (member: Omit<InitramfsMember, 'end' | 'outputEnd'>) => void;
  /** Called when a member has been read completely. */
  onMember?: (member: InitramfsMember) => void;
}

const TRAILER = new TextEncoder().encode(CPIO_TRAILER_NAME);

function isTrailer(nameField: Uint8Array, nameSize: number): boolean {
  if (nameSize !== TRAILER.length + 1) return false;
  for (let i = 0; i < TRAILER.length; i++) if (nameField[i] !== TRAILER[i]) return false;
  return true;
}

function cpioError(where: string, what: string): IrbError {
  return new IrbError(
    'IRB_INITRAMFS_CORRUPT',
    `${where}: ${what}; the initramfs is damaged or not an initramfs`,
  );
}

/**
 * Passes one cpio record through: header, name and body with their padding, a multiple of 4
 * bytes, so records emitted back to back stay 4-byte aligned for the cpio reader. True when it
 * was the `TRAILER!!!` record.
 */
async function* oneRecord(reader: ByteReader, where: string): AsyncGenerator<Uint8Array, boolean> {
  const at = reader.position;
  const head = await reader.read(CPIO_HEADER_SIZE);
  if (head.length < CPIO_HEADER_SIZE) throw cpioError(where, `cpio header at byte ${at} is cut short`);
  let nameSize: number;
  let fileSize: number;
  try {
    ({ nameSize, fileSize } = parseCpioHeader(head, 0, at));
  } catch (error) {
    if (!(error instanceof CpioError)) throw error;
    throw new IrbError(error.code, `${where}: ${error.message}`, { cause: error });
  }
  if (nameSize === 0) throw cpioError(where, `cpio entry at byte ${at} has an empty name`);
  const nameField = await reader.read(cpioBodyOffset(nameSize) - CPIO_HEADER_SIZE);
  if (nameField.length < cpioBodyOffset(nameSize) - CPIO_HEADER_SIZE) {
    throw cpioError(where, `the name of the cpio entry at byte ${at} is cut short`);
  }
  yield head;
  yield nameField;
  let remaining = fileSize + ((4 - (fileSize % 4)) % 4);
  while (remaining > 0) {
    const chunk = await reader.next();
    if (chunk === undefined) throw cpioError(where, `the body of the cpio entry at byte ${at} is cut short`);
    const take = chunk.subarray(0, remaining);
    reader.unshift(chunk.subarray(take.length));
    remaining -= take.length;
    yield take;
  }
  return isTrailer(nameField, nameSize);
}

/** The archive's device number in a record header (`devmajor:devminor`, as text). */
function deviceOf(head: Uint8Array): string {
  return String.fromCharCode(...head.subarray(62, 78));
}

/**
 * A plain member: records from a 4-byte aligned header up to and including a `TRAILER!!!`, up
 * to a record of another archive device number, or up to where something other than a record
 * follows (NUL padding, a compressed member, the end). The kernel reads on across all of these
 * (a trailer only empties its hard-link table); ending the member there keeps apart archives
 * that were concatenated, and the members irb writes without trailers between them (each has a
 * device number of its own).
 */
async function* plainMember(reader: ByteReader, where: string): AsyncGenerator<Uint8Array> {
  const device = deviceOf(await reader.peek(CPIO_HEADER_SIZE));
  for (;;) {
    if (yield* oneRecord(reader, where)) return;
    const next = await reader.peek(CPIO_HEADER_SIZE);
    if (next[0] !== 0x30 || (next.length === CPIO_HEADER_SIZE && deviceOf(next) !== device)) return;
  }
}

/** Skips NUL bytes; false at the end of the input. */
async function skipZeros(reader: ByteReader): Promise<boolean> {
  for (;;) {
    const chunk = await reader.next();
    if (chunk === undefined) return false;
    let i = 0;
    while (i < chunk.length && chunk[i] === 0) i++;
    if (i < chunk.length) {
      reader.unshift(chunk.subarray(i));
      return true;
    }
  }
}

/**
 * The records inside one decompressed member, as the kernel's flush_buffer takes them: records
 * and NUL padding, nothing else, each record 4-byte aligned from the member's start. The member
 * may end after any whole record: with or without a `TRAILER!!!`, as the kernel allows (irb
 * writes its members without one, so that GNU cpio and bsdtar read on into the next).
 */
async function* recordsIn(source: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  try {
    while (await skipZeros(reader)) {
      const at = reader.position;
      const first = (await reader.peek(1))[0];
      if (first !== 0x30) {
        throw cpioError(where, `junk (byte 0x${first?.toString(16).padStart(2, '0')}) at byte ${at}`);
      }
      if (at % 4 !== 0) throw cpioError(where, `cpio archive at byte ${at} is not 4-byte aligned`);
      yield* oneRecord(reader, where);
    }
  } finally {
    await reader.close();
  }
}

/** Yields the decoded bytes of one zstd frame and leaves `reader` just past it. */
async function* unzstdMember(reader: ByteReader, label: string): AsyncGenerator<Uint8Array> {
  const decoder = new ZstdDecoder(label);
  let started = false;
  for (;;) {
    const chunk = await reader.next();
    if (chunk === undefined) {
      throw new IrbError(
        'IRB_ZSTD_TRUNCATED',
        `zstd member in ${label} ends in the middle of a frame; the data is truncated — fetch or build it again`,
      );
    }
    const consumed = yield* decoder.decode(chunk, true);
    started ||= consumed > 0;
    if (started && decoder.atFrameEnd) {
      reader.unshift(chunk.subarray(consumed));
      return;
    }
    if (consumed < chunk.length) {
      throw new IrbError(
        'IRB_ZSTD_CORRUPT',
        `zstd member in ${label} stopped making progress; the data is damaged`,
      );
    }
  }
}

/**
 * Reads an initramfs the way the kernel's `unpack_to_rootfs` does and yields one stream of plain
 * cpio records for `readCpio` from `@irb/cpio`. The file is a sequence of members with NUL
 * padding allowed between them. A member is one compressed stream — a gzip member, a zstd
 * frame, an lz4 legacy stream (from its magic number) — whose content is whole cpio records, or
 * an uncompressed run of records starting 4-byte aligned in the file, which ends after a
 * `TRAILER!!!`, before a record of another archive device number, or where something else
 * follows. Streams with bounded memory: plain records pass
 * through, a compressed member is decoded as it is read (zstd needs up to its window, at most
 * 128 MiB).
 *
 * @throws IrbError `IRB_INITRAMFS_CORRUPT` (an empty input, junk, misaligned or cut-short
 *   records, a compressed member ending inside a record), `IRB_COMPRESSION_UNSUPPORTED` (xz,
 *   bzip2, lz4's frame format …), `IRB_GZIP_*` / `IRB_ZSTD_*` / `IRB_LZ4_*` for damaged
 *   members, cpio header errors from `@irb/cpio`.
 */
export async function* decodeInitramfs(
  source: AsyncIterable<Uint8Array>,
  options: DecodeInitramfsOptions = {},
): AsyncGenerator<Uint8Array> {
  const label = options.label ?? 'initramfs';
  const { signal } = options;
  signal?.throwIfAborted();
  const reader = new ByteReader(source);
  let index = 0;
  let produced = 0;
  try {
    while (await skipZeros(reader)) {
      signal?.throwIfAborted();
      const start = reader.position;
      const head = await reader.peek(DETECT_BYTES);
      let format: InitramfsMember['format'];
      let records: AsyncIterable<Uint8Array>;
      // Like the kernel: a plain archive only where a header may start (4-byte aligned).
      if (head[0] === 0x30 && start % 4 === 0) {
        format = 'none';
        records = plainMember(reader, `${label}, cpio archive at byte ${start}`);
      } else {
        const detected = detectCompression(head);
        const where = `${label}, ${detected} member at byte ${start}`;
        let decoded: AsyncIterable<Uint8Array>;
        if (detected === 'gzip') decoded = gunzipMember(reader, where);
        else if (detected === 'zstd' && head[0] !== 0x28) {
          throw new IrbError(
            'IRB_INITRAMFS_CORRUPT',
            `${where}: a zstd skippable frame, which the kernel does not read as an initramfs member; the initramfs is damaged or not an initramfs`,
          );
        } else if (detected === 'zstd') {
          decoded =
            zstdBackend() === 'zstd-napi' ? unzstdMember(reader, where) : nodeUnzstdFrame(reader, where);
        } else if (detected === 'lz4') decoded = unlz4Legacy(reader, where);
        else if (detected !== 'none') {
          throw unsupportedCompression(detected, `${label} (member at byte ${start})`);
        } else {
          throw new IrbError(
            'IRB_INITRAMFS_CORRUPT',
            `${label}: unexpected bytes at ${start} (${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}): neither a 4-byte aligned cpio archive, NUL padding, nor a gzip, zstd or lz4 member`,
          );
        }
        format = detected;
        records = recordsIn(decoded, where);
      }
      const outputStart = produced;
      options.onMemberStart?.({ index, format, start, outputStart });
      for await (const chunk of records) {
        signal?.throwIfAborted();
        produced += chunk.length;
        yield chunk;
      }
      options.onMember?.({ index, format, start, end: reader.position, outputStart, outputEnd: produced });
      index++;
    }
    if (index === 0) {
      throw new IrbError(
        'IRB_INITRAMFS_CORRUPT',
        `${label} ${reader.position === 0 ? 'is empty' : 'holds only NUL bytes'}: no cpio archive or compressed member; give an initramfs archive`,
      );
    }
  } finally {
    await reader.close();
  }
}
