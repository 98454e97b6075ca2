import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { IRB_ARCHIVE_NAME, TRAILER_RECORD, trailerMember } from '@irb/compress/framing';
import { IrbError, isIrbError } from '@irb/errors';
import type { InitramfsCompression } from './types.ts';

/** What `irb append` keeps of BASE, and what its last member is. */
export interface BaseEnd {
  /** Bytes of BASE that go into the output: all of it but its trailer member. */
  keep: number;
  /**
   * The compression of the member that ends at `keep`, when it is known: then nothing but what
   * `memberJoint` asks for goes between it and the new member. Unknown: 4 to 7 NUL bytes, which
   * end any lz4 stream and align a plain member, whatever came before.
   */
  last?: InitramfsCompression;
  /**
   * True when BASE ends with irb's trailer member, or (a plain archive) with `TRAILER!!!` and NUL
   * padding: that end is dropped, and the new member followed by a trailer member takes its place,
   * so the standard tools read on into the new member.
   */
  trailerDropped: boolean;
}

const FORMATS: readonly InitramfsCompression[] = ['gzip', 'zstd', 'lz4', 'none'];
/** Bytes read from the end of BASE: enough for the trailer member and GNU cpio's block padding. */
const TAIL_BYTES = 8192;
/** Reads a walk may do before it gives up proving anything (a plain archive costs one per entry). */
const WALK_READS = 100_000;
/** The largest last member a walk decodes to see it end on `TRAILER!!!` (an overlay is far smaller). */
const LAST_MEMBER_BYTES = 16 * 1024 * 1024;

function broken(base: string, what: string): IrbError {
  return new IrbError(
    'IRB_INITRAMFS_CORRUPT',
    `${base} is damaged: ${what}; append needs an intact BASE — build or download it again`,
  );
}

function endsWith(bytes: Uint8Array, suffix: Uint8Array): boolean {
  if (bytes.length < suffix.length) return false;
  const from = bytes.length - suffix.length;
  for (let i = 0; i < suffix.length; i++) if (bytes[from + i] !== suffix[i]) return false;
  return true;
}

/** Positional reads of an open file, through a small window, with a budget. */
class FileWindow {
  readonly #fd: number;
  readonly size: number;
  #buffer = new Uint8Array(64 * 1024);
  #start = 0;
  #length = 0;
  reads = 0;

  constructor(fd: number, size: number) {
    this.#fd = fd;
    this.size = size;
  }

  /** `n` bytes at `at` (fewer at the end of the file). */
  bytes(at: number, n: number): Uint8Array {
    if (at >= this.#start && at + n <= this.#start + this.#length) {
      return this.#buffer.subarray(at - this.#start, at - this.#start + n);
    }
    if (n > this.#buffer.length) this.#buffer = new Uint8Array(n);
    this.reads++;
    this.#start = at;
    this.#length = readSync(this.#fd, this.#buffer, 0, this.#buffer.length, at);
    return this.#buffer.subarray(0, Math.min(n, this.#length));
  }

  le32(at: number): number | undefined {
    const b = this.bytes(at, 4);
    return b.length < 4 ? undefined : (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }
}

/** Where the zstd frame at `at` ends (RFC 8878: header, block headers, checksum), without decoding it. */
function zstdFrameEnd(file: FileWindow, at: number, base: string): number {
  const magic = file.le32(at);
  if (magic !== undefined && (magic & 0xfffffff0) === 0x184d2a50) {
    const size = file.le32(at + 4);
    if (size === undefined || at + 8 + size > file.size)
      throw broken(base, `the zstd frame at byte ${at} is cut short`);
    return at + 8 + size;
  }
  const descriptor = file.bytes(at + 4, 1)[0];
  if (descriptor === undefined) throw broken(base, `the zstd frame at byte ${at} is cut short`);
  const singleSegment = (descriptor & 0x20) !== 0;
  let p =
    at +
    5 +
    (singleSegment ? 0 : 1) +
    [0, 1, 2, 4][descriptor & 0x03]! +
    [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
  for (;;) {
    const header = file.bytes(p, 3);
    if (header.length < 3) throw broken(base, `the zstd frame at byte ${at} is cut short`);
    const word = header[0]! | (header[1]! << 8) | (header[2]! << 16);
    const type = (word >> 1) & 0x03;
    if (type === 3) throw broken(base, `the zstd frame at byte ${at} has a reserved block type at byte ${p}`);
    p += 3 + (type === 1 ? 1 : word >>> 3);
    if (p > file.size) throw broken(base, `the zstd frame at byte ${at} is cut short`);
    if (word & 1) break;
    if (file.reads > WALK_READS) return -1;
  }
  p += descriptor & 0x04 ? 4 : 0;
  if (p > file.size) throw broken(base, `the zstd frame at byte ${at} is cut short`);
  return p;
}

/** lz4-napi's (and the kernel's) largest compressed block: LZ4_compressBound(8 MiB). */
const LZ4_MAX_BLOCK = 8 * 1024 * 1024 + Math.floor((8 * 1024 * 1024) / 255) + 16;

/** Where the lz4 legacy stream at `at` ends: at a zero length word, the end of the file, or the next magic. */
function lz4StreamEnd(file: FileWindow, at: number, base: string): number {
  let p = at + 4;
  for (;;) {
    if (p === file.size) return p;
    const size = file.le32(p);
    if (size === undefined) {
      // Fewer than 4 bytes left end the stream for the kernel; only NUL padding may be there.
      if (file.bytes(p, 4).every((b) => b === 0)) return p;
      throw broken(base, `the lz4 stream at byte ${at} ends in a block header`);
    }
    if (size === 0 || size === 0x184c2102) return p;
    if (size > LZ4_MAX_BLOCK) throw broken(base, `the lz4 block at byte ${p} claims ${size} bytes`);
    p += 4 + size;
    if (p > file.size) throw broken(base, `the lz4 block at byte ${p - size - 4} is cut short`);
    if (file.reads > WALK_READS) return -1;
  }
}

/**
 * Where the plain cpio records from `at` end: after a trailer, or where no header follows; as a
 * negative number when that is not a trailer.
 */
function plainEnd(file: FileWindow, at: number, base: string): number {
  let p = at;
  for (;;) {
    const head = file.bytes(p, 110);
    if (head.length < 110) throw broken(base, `the cpio header at byte ${p} is cut short`);
    const text = new TextDecoder().decode(head);
    if (!/^07070[12][0-9A-Fa-f]{104}$/.test(text)) throw broken(base, `no cpio header at byte ${p}`);
    const fileSize = Number.parseInt(text.slice(54, 62), 16);
    const nameSize = Number.parseInt(text.slice(94, 102), 16);
    const name = file.bytes(p + 110, nameSize);
    const trailer = nameSize === 11 && new TextDecoder().decode(name) === 'TRAILER!!!\0';
    p = ((((p + 110 + nameSize + 3) & ~3) + fileSize + 3) & ~3) >>> 0;
    if (p > file.size) throw broken(base, 'its last cpio entry is cut short');
    if (trailer) return p;
    if (p === file.size || file.bytes(p, 1)[0] !== 0x30) return -p;
    if (file.reads > WALK_READS) return Number.NaN;
  }
}

/**
 * Walks BASE's members from the start without decoding them (zstd frames by their block
 * headers, lz4 streams by their block lengths, plain cpio by its headers): the end is intact when
 * the walk reaches it between two members. A gzip member cannot be walked without inflating it:
 * there the walk stops and proves nothing. Throws when the walk finds BASE cut short or damaged.
 */
function walk(file: FileWindow, base: string): { last: InitramfsCompression; start: number } | undefined {
  let at = 0;
  let last: InitramfsCompression | undefined;
  let start = 0;
  let plainWithoutTrailer = false;
  while (at < file.size) {
    if (file.reads > WALK_READS) return undefined;
    const head = file.bytes(at, 4);
    if (head[0] === 0) {
      at++;
      continue;
    }
    let end: number;
    start = at;
    if (head[0] === 0x30 && at % 4 === 0) {
      end = plainEnd(file, at, base);
      plainWithoutTrailer = end < 0;
      [end, last] = [Math.abs(end), 'none'];
    } else if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
      [end, last, plainWithoutTrailer] = [zstdFrameEnd(file, at, base), 'zstd', false];
    } else if (head[0] === 0x02 && head[1] === 0x21 && head[2] === 0x4c && head[3] === 0x18) {
      [end, last, plainWithoutTrailer] = [lz4StreamEnd(file, at, base), 'lz4', false];
    } else if (head[0] === 0x1f && head[1] === 0x8b) return undefined;
    else throw broken(base, `unexpected bytes at byte ${at}`);
    if (Number.isNaN(end) || end < 0) return undefined;
    at = end;
  }
  // The kernel would take it, but GNU cpio, bsdtar and irb ls call a plain archive without its
  // trailer cut short, and it usually is.
  if (plainWithoutTrailer) throw broken(base, 'its cpio records end without TRAILER!!! (cut short?)');
  return last === undefined ? undefined : { last, start };
}

/**
 * Decodes BASE's last member, from `start`, and checks that its records end on `TRAILER!!!`, as
 * every archive's last member does: a walk over zstd frames or lz4 blocks proves their structure
 * whole, not that no member was lost at the end, nor the bytes inside the last one.
 */
async function lastMemberEndsOnTrailer(base: string, start: number): Promise<void> {
  const [{ decodeInitramfs }, { readArchiveEntries }] = await Promise.all([
    import('@irb/compress'),
    import('./archive.ts'),
  ]);
  const label = `the last member of ${base} (at byte ${start})`;
  const bytes = createReadStream(base, { start }) as AsyncIterable<Uint8Array>;
  try {
    for await (const _ of readArchiveEntries(decodeInitramfs(bytes, { label }), label)) {
      // every record read, bodies skipped
    }
  } catch (error) {
    if (!isIrbError(error)) throw error;
    throw broken(base, (error as Error).message.replace(/; [^;]*$/, ''));
  }
}

/**
 * How BASE ends, from a few reads near its end (and, only for archives irb did not write in its
 * current layout, a walk over its zstd, lz4 or plain members and a decode of the last one, up to
 * 16 MiB): irb's trailer member, which is dropped and written anew after the new member; or, for
 * an archive of irb's earlier layout or another tool's, the whole file. Refuses a BASE it can
 * prove cut short or damaged at its end: a gzip archive irb wrote without its trailer member, a
 * plain archive that does not end on `TRAILER!!!`, zstd or lz4 data that stops inside a frame
 * or block, or whose last member does not decode to records ending on `TRAILER!!!`.
 */
export async function baseEnd(base: string, head: InitramfsCompression, size: number): Promise<BaseEnd> {
  const fd = openSync(base, 'r');
  let walked: { last: InitramfsCompression; start: number } | undefined;
  try {
    const file = new FileWindow(fd, size);
    const tailAt = Math.max(0, size - TAIL_BYTES);
    const tail = file.bytes(tailAt, size - tailAt).slice();
    for (const format of [head, ...FORMATS.filter((f) => f !== head)]) {
      const member = trailerMember(format);
      if (endsWith(tail, member)) return { keep: size - member.length, last: format, trailerDropped: true };
    }
    // Another tool's plain archive: the trailer, then NUL padding to its block size.
    const trailerAt = Buffer.from(tail.buffer, tail.byteOffset, tail.length).lastIndexOf(TRAILER_RECORD);
    if (
      head === 'none' &&
      trailerAt >= 0 &&
      (tailAt + trailerAt) % 4 === 0 &&
      tail.subarray(trailerAt + TRAILER_RECORD.length).every((b) => b === 0)
    ) {
      return { keep: tailAt + trailerAt, last: 'none', trailerDropped: true };
    }
    if (head === 'gzip') {
      const name = new TextEncoder().encode(`${IRB_ARCHIVE_NAME}\0`);
      const header = file.bytes(0, 10 + name.length);
      if ((header[3]! & 0x08) !== 0 && endsWith(header, name)) {
        throw broken(
          base,
          "irb wrote it, but it does not end with irb's trailer member (cut short, or something was added after it)",
        );
      }
      return { keep: size, trailerDropped: false };
    }
    walked = walk(file, base);
  } finally {
    closeSync(fd);
  }
  if (walked === undefined) return { keep: size, trailerDropped: false };
  if (walked.last !== 'none' && size - walked.start <= LAST_MEMBER_BYTES) {
    await lastMemberEndsOnTrailer(base, walked.start);
  }
  return { keep: size, trailerDropped: false, last: walked.last };
}
