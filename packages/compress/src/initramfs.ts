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
}

/** Options of {@link decodeInitramfs}. */
export interface DecodeInitramfsOptions {
  /** Names the input in error messages. Default `'initramfs'`. */
  label?: string;
  /** Stops decoding: the iterator throws `signal.reason`. */
  signal?: AbortSignal;
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
 * Passes one newc archive through, from its first header to the end of its `TRAILER!!!`
 * record. Every record is a multiple of 4 bytes long, so archives emitted back to back
 * stay 4-byte aligned for the cpio reader.
 */
async function* oneArchive(reader: ByteReader, where: string): AsyncGenerator<Uint8Array> {
  for (;;) {
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
      if (chunk === undefined)
        throw cpioError(where, `the body of the cpio entry at byte ${at} is cut short`);
      const take = chunk.subarray(0, remaining);
      reader.unshift(chunk.subarray(take.length));
      remaining -= take.length;
      yield take;
    }
    if (isTrailer(nameField, nameSize)) return;
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
 * The archives inside one decompressed member, as the kernel's flush_buffer takes them:
 * archives and NUL padding, nothing else, and the member must end after a trailer.
 */
async function* archivesIn(source: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  try {
    while (await skipZeros(reader)) {
      const at = reader.position;
      const first = (await reader.peek(1))[0];
      if (first !== 0x30) {
        throw cpioError(where, `junk (byte 0x${first?.toString(16).padStart(2, '0')}) at byte ${at}`);
      }
      if (at % 4 !== 0) throw cpioError(where, `cpio archive at byte ${at} is not 4-byte aligned`);
      yield* oneArchive(reader, where);
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
 * Reads an initramfs the way the kernel's `unpack_to_rootfs` does: a sequence of members,
 * each a plain newc archive or a gzip, zstd or lz4 (legacy format) stream of archives, with NUL padding between
 * them, and yields one stream of plain cpio bytes (the archives back to back) for
 * `readCpio` from `@irb/cpio`. Streams with bounded memory: a plain archive passes
 * through, a compressed member is decoded as it is read (zstd needs up to its window,
 * at most 128 MiB).
 *
 * @throws IrbError `IRB_INITRAMFS_CORRUPT` (junk, misaligned or cut-short archives, a
 *   compressed member not ending on a trailer), `IRB_COMPRESSION_UNSUPPORTED` (xz, lz4 …),
 *   `IRB_GZIP_*` / `IRB_ZSTD_*` for damaged members, cpio header errors from `@irb/cpio`.
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
  try {
    while (await skipZeros(reader)) {
      signal?.throwIfAborted();
      const start = reader.position;
      const head = await reader.peek(DETECT_BYTES);
      // Like the kernel: a plain archive only where a header may start (4-byte aligned).
      if (head[0] === 0x30 && start % 4 === 0) {
        yield* oneArchive(reader, `${label}, cpio archive at byte ${start}`);
        options.onMember?.({ index, format: 'none', start, end: reader.position });
        index++;
        continue;
      }
      const format = detectCompression(head);
      const where = `${label}, ${format} member at byte ${start}`;
      let decoded: AsyncIterable<Uint8Array>;
      if (format === 'gzip') decoded = gunzipMember(reader, where);
      else if (format === 'zstd') {
        decoded =
          zstdBackend() === 'zstd-napi' ? unzstdMember(reader, where) : nodeUnzstdFrame(reader, where);
      } else if (format === 'lz4') decoded = unlz4Legacy(reader, where);
      else if (format !== 'none') throw unsupportedCompression(format, `${label} (member at byte ${start})`);
      else {
        throw new IrbError(
          'IRB_INITRAMFS_CORRUPT',
          `${label}: unexpected bytes at ${start} (${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}): neither a 4-byte aligned cpio archive, NUL padding, nor a gzip, zstd or lz4 member`,
        );
      }
      for await (const chunk of archivesIn(decoded, where)) {
        signal?.throwIfAborted();
        yield chunk;
      }
      options.onMember?.({ index, format, start, end: reader.position });
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
