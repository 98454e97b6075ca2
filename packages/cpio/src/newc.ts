import { CpioError } from './errors.ts';
import type { CpioEntryType } from './types.ts';

/** Magic of a newc header without checksum. */
export const NEWC_MAGIC = '070701';
/** Magic of a newc header whose `check` field holds the sum of the body bytes ("crc" format). */
export const CRC_MAGIC = '070702';
/** Length of a newc header before the name. */
export const CPIO_HEADER_SIZE = 110;
/** Name of the entry that ends an archive. */
export const CPIO_TRAILER_NAME = 'TRAILER!!!';
/**
 * Largest name or symlink target the Linux kernel unpacks, in bytes without the NUL:
 * init/initramfs.c skips entries whose namesize (name + NUL) exceeds PATH_MAX (4096), and the
 * symlink it creates goes through getname_kernel(), which also needs strlen + 1 <= PATH_MAX.
 */
export const CPIO_MAX_PATH_BYTES = 4095;
/** Largest path component (file name) Linux file systems take, in bytes (NAME_MAX). */
export const CPIO_MAX_NAME_COMPONENT = 255;
/** Largest body the 32-bit filesize field holds (4 GiB - 1). */
export const CPIO_MAX_FILE_SIZE = 0xffff_ffff;

/** File type bits (S_IFMT) per entry kind. */
export const S_IFMT = 0o170000;
/** `st_mode` type bits of each entry kind. */
export const TYPE_BITS: Readonly<Record<CpioEntryType, number>> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
  socket: 0o140000,
};

/** The entry kind for `st_mode` type bits, or `undefined` for bits no kind uses. */
export function typeFromMode(mode: number): CpioEntryType | undefined {
  switch (mode & S_IFMT) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      return undefined;
  }
}

/** The 13 numeric fields of a newc header, in header order. */
export interface CpioHeaderFields {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  fileSize: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
  nameSize: number;
  check: number;
}

/** A parsed newc header: its format and numeric fields (the name follows it in the stream). */
export interface CpioHeader extends CpioHeaderFields {
  /** `newc` for magic 070701, `crc` for 070702. */
  format: 'newc' | 'crc';
  /** The six magic characters as found. */
  magic: '070701' | '070702';
}

const HEX = new TextEncoder().encode('0123456789ABCDEF');
/** Two hex digits per byte value, high digit in the upper 8 bits. */
const HEX2 = Uint16Array.from({ length: 256 }, (_, b) => (HEX[b >>> 4]! << 8) | HEX[b & 15]!);

/** Writes `value` as 8 upper-case hex digits (the newc field encoding). */
export function writeHex8(buf: Uint8Array, offset: number, value: number): void {
  const v = value >>> 0;
  let p = HEX2[v >>> 24]!;
  buf[offset] = p >>> 8;
  buf[offset + 1] = p & 0xff;
  p = HEX2[(v >>> 16) & 0xff]!;
  buf[offset + 2] = p >>> 8;
  buf[offset + 3] = p & 0xff;
  p = HEX2[(v >>> 8) & 0xff]!;
  buf[offset + 4] = p >>> 8;
  buf[offset + 5] = p & 0xff;
  p = HEX2[v & 0xff]!;
  buf[offset + 6] = p >>> 8;
  buf[offset + 7] = p & 0xff;
}

/** Writes a complete 110-byte newc header at `offset`. */
export function writeHeader(
  buf: Uint8Array,
  offset: number,
  format: 'newc' | 'crc',
  h: CpioHeaderFields,
): void {
  // "07070" + "1" or "2"
  buf[offset] = 0x30;
  buf[offset + 1] = 0x37;
  buf[offset + 2] = 0x30;
  buf[offset + 3] = 0x37;
  buf[offset + 4] = 0x30;
  buf[offset + 5] = format === 'crc' ? 0x32 : 0x31;
  const o = offset + 6;
  writeHex8(buf, o, h.ino);
  writeHex8(buf, o + 8, h.mode);
  writeHex8(buf, o + 16, h.uid);
  writeHex8(buf, o + 24, h.gid);
  writeHex8(buf, o + 32, h.nlink);
  writeHex8(buf, o + 40, h.mtime);
  writeHex8(buf, o + 48, h.fileSize);
  writeHex8(buf, o + 56, h.devMajor);
  writeHex8(buf, o + 64, h.devMinor);
  writeHex8(buf, o + 72, h.rdevMajor);
  writeHex8(buf, o + 80, h.rdevMinor);
  writeHex8(buf, o + 88, h.nameSize);
  writeHex8(buf, o + 96, h.check);
}

/** Value of 8 hex digits at `o`, or -1 if any is not a hex digit. */
function hex8(buf: Uint8Array, o: number): number {
  let v = 0;
  for (let i = o; i < o + 8; i++) {
    const c = buf[i]!;
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

const FIELD_NAMES = [
  'ino',
  'mode',
  'uid',
  'gid',
  'nlink',
  'mtime',
  'fileSize',
  'devMajor',
  'devMinor',
  'rdevMajor',
  'rdevMinor',
  'nameSize',
  'check',
] as const;

function showBytes(bytes: Uint8Array): string {
  return JSON.stringify(String.fromCharCode(...bytes));
}

/**
 * Parses the 110-byte newc header at `offset` of `buf` (which must hold all 110 bytes).
 *
 * This is the low-level building block for tools that walk archives themselves, e.g. to
 * find where a plain cpio member ends inside a concatenated initramfs: with
 * {@link cpioRecordSize} the whole record length follows from the header alone.
 * `streamOffset` only improves error messages.
 *
 * @throws CpioError `IRB_CPIO_MAGIC_INVALID` (also for the old binary and odc formats) or `IRB_CPIO_HEADER_INVALID`.
 */
export function parseCpioHeader(buf: Uint8Array, offset = 0, streamOffset = offset): CpioHeader {
  if (buf.length - offset < CPIO_HEADER_SIZE) {
    throw new CpioError(
      'IRB_CPIO_TRUNCATED',
      `cpio header at byte ${streamOffset} is cut short (${buf.length - offset} of ${CPIO_HEADER_SIZE} bytes); the archive is truncated`,
    );
  }
  const m5 = buf[offset + 5];
  if (
    buf[offset] !== 0x30 ||
    buf[offset + 1] !== 0x37 ||
    buf[offset + 2] !== 0x30 ||
    buf[offset + 3] !== 0x37 ||
    buf[offset + 4] !== 0x30 ||
    (m5 !== 0x31 && m5 !== 0x32)
  ) {
    const magic = buf.subarray(offset, offset + 6);
    const hint =
      m5 === 0x37 && buf[offset] === 0x30
        ? ' (odc/070707 format: only newc 070701/070702 is supported; write it with `cpio -H newc`)'
        : (buf[offset] === 0xc7 && buf[offset + 1] === 0x71) ||
            (buf[offset] === 0x71 && buf[offset + 1] === 0xc7)
          ? ' (old binary cpio: only newc 070701/070702 is supported)'
          : buf[offset] === 0x1f && (buf[offset + 1] === 0x8b || buf[offset + 1] === 0x9d)
            ? ' (gzip data: decompress it first, e.g. with @irb/compress)'
            : buf[offset] === 0x28 && buf[offset + 1] === 0xb5
              ? ' (zstd data: decompress it first, e.g. with @irb/compress)'
              : '';
    throw new CpioError(
      'IRB_CPIO_MAGIC_INVALID',
      `no cpio newc magic at byte ${streamOffset}: found ${showBytes(magic)}, expected "070701" or "070702"${hint}`,
    );
  }
  const f = (n: number): number => {
    const v = hex8(buf, offset + 6 + n * 8);
    if (v < 0) {
      const at = offset + 6 + n * 8;
      throw new CpioError(
        'IRB_CPIO_HEADER_INVALID',
        `cpio header at byte ${streamOffset}: field ${FIELD_NAMES[n]} is not 8 hex digits (${showBytes(buf.subarray(at, at + 8))}); the archive is corrupt`,
      );
    }
    return v;
  };
  const crc = m5 === 0x32;
  return {
    format: crc ? 'crc' : 'newc',
    magic: crc ? CRC_MAGIC : NEWC_MAGIC,
    ino: f(0),
    mode: f(1),
    uid: f(2),
    gid: f(3),
    nlink: f(4),
    mtime: f(5),
    fileSize: f(6),
    devMajor: f(7),
    devMinor: f(8),
    rdevMajor: f(9),
    rdevMinor: f(10),
    nameSize: f(11),
    check: f(12),
  };
}

/** Bytes from the start of a header to the start of its body: header, name, NUL and padding to 4. */
export function cpioBodyOffset(nameSize: number): number {
  return padded4(CPIO_HEADER_SIZE + nameSize);
}

/** Total bytes of one record (header, name, padding, body, padding); the next header starts there. */
export function cpioRecordSize(header: Pick<CpioHeaderFields, 'nameSize' | 'fileSize'>): number {
  return cpioBodyOffset(header.nameSize) + padded4(header.fileSize);
}

/** `n` rounded up to a multiple of 4. */
export function padded4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}
