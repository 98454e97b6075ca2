import { bytesToBinary } from './bytes.ts';
import { TarFormatError } from './errors.ts';

/*
 * The 512-byte tar header, field by field. One table of offsets for every reader (the layer
 * applier's streaming reader and the registry's seeking index), the way tar-stream's headers.js
 * names them; the semantics follow Go's archive/tar (what Docker, containerd and umoci use)
 * where the formats leave room.
 */

/** Size of a tar block: headers, extension blocks and data padding are multiples of it. */
export const BLOCK_SIZE = 512;

/** A field of a header block: where it starts and how many bytes it has. */
export interface TarField {
  readonly offset: number;
  readonly length: number;
}

/** The fields of a ustar / GNU header block (POSIX.1-1988, GNU tar's `struct posix_header`). */
export const FIELDS = {
  name: { offset: 0, length: 100 },
  mode: { offset: 100, length: 8 },
  uid: { offset: 108, length: 8 },
  gid: { offset: 116, length: 8 },
  size: { offset: 124, length: 12 },
  mtime: { offset: 136, length: 12 },
  checksum: { offset: 148, length: 8 },
  typeflag: { offset: 156, length: 1 },
  linkname: { offset: 157, length: 100 },
  /** `ustar\0` + version `00` (POSIX) or `ustar  \0` (GNU, magic and version together). */
  magic: { offset: 257, length: 6 },
  version: { offset: 263, length: 2 },
  uname: { offset: 265, length: 32 },
  gname: { offset: 297, length: 32 },
  devmajor: { offset: 329, length: 8 },
  devminor: { offset: 337, length: 8 },
  /** POSIX only: the directory part of a name longer than 100 bytes. GNU uses these bytes otherwise. */
  prefix: { offset: 345, length: 155 },
} as const satisfies Record<string, TarField>;

/** GNU's old sparse format (typeflag `S`): fields that overlay `prefix` in a GNU header. */
export const GNU_SPARSE = {
  /** Four `(offset, numbytes)` pairs of 12-byte numbers. */
  map: { offset: 386, length: 4 * 24 },
  /** Non-zero when extension blocks with more pairs follow the header. */
  isExtended: { offset: 482, length: 1 },
  /** The expanded size of the file. */
  realSize: { offset: 483, length: 12 },
  /** Pairs in one extension block, and where that block's own continuation flag sits. */
  extensionPairs: 21,
  extensionIsExtended: 504,
  /** Bytes of one pair: two 12-byte numbers. */
  pairLength: 24,
} as const;

/** Kind of a tar member, in the vocabulary of `@irb/cpio` (`link` is a tar hard link). */
export type TarEntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

/** Typeflags of records that describe the next member or the archive, not a member of their own. */
export const TYPEFLAG = {
  /** PAX extended header for the next member. */
  pax: 'x',
  /** PAX global header (applies to the archive; Go and so Docker/containerd ignore it). */
  paxGlobal: 'g',
  /** GNU long name of the next member. */
  gnuLongName: 'L',
  /** GNU long link target of the next member. */
  gnuLongLink: 'K',
  /** GNU volume label. */
  gnuVolume: 'V',
  /** GNU old-format sparse file. */
  gnuSparse: 'S',
  /** GNU dump directory: a directory whose data lists its entries. */
  gnuDumpDir: 'D',
} as const;

/** Header format, from the magic field. */
export type TarFormat = 'ustar' | 'gnu' | 'v7';

/** One header block decoded: numbers parsed, names as exact bytes (views into the block). */
export interface TarHeader {
  /** The typeflag character; `'\0'` (old tars) is kept as is. */
  typeflag: string;
  /** Name bytes; for POSIX ustar the prefix is joined with `/`. Before any PAX or GNU long name. */
  name: Uint8Array;
  linkname: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  /** The size field: bytes stored after the header (before PAX `size`). */
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  devmajor: number;
  devminor: number;
  format: TarFormat;
}

/** The bytes of a NUL-terminated field (the whole field when it has no NUL). */
export function cString(block: Uint8Array, field: TarField): Uint8Array {
  const bytes = block.subarray(field.offset, field.offset + field.length);
  const nul = bytes.indexOf(0);
  return nul === -1 ? bytes : bytes.subarray(0, nul);
}

/**
 * A numeric field: octal text (leading spaces/NULs skipped, ended by a space or NUL), or GNU's
 * base-256 (high bit of the first byte set; two's complement, big endian, 0xff lead means
 * negative). `undefined` when the field is not a number or does not fit a safe integer.
 */
export function parseNumber(block: Uint8Array, field: TarField): number | undefined {
  const bytes = block.subarray(field.offset, field.offset + field.length);
  const first = bytes[0] ?? 0;
  if (first & 0x80) {
    let value = first === 0xff ? -1n : BigInt(first & 0x7f);
    for (let i = 1; i < bytes.byteLength; i++) value = (value << 8n) | BigInt(bytes[i] ?? 0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) return undefined;
    return Number(value);
  }
  let i = 0;
  while (i < bytes.byteLength && (bytes[i] === 0x20 || bytes[i] === 0)) i++;
  let value = 0;
  for (; i < bytes.byteLength; i++) {
    const c = bytes[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    value = value * 8 + (c - 0x30);
  }
  // Bytes after the terminator are tolerated (old tars pad oddly); the digits must be octal.
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * True when the stored checksum matches the block: the sum of all bytes with the checksum field
 * counted as eight spaces, as unsigned bytes (POSIX) or signed ones (some old tars).
 */
export function checksumOk(block: Uint8Array): boolean {
  const { offset, length } = FIELDS.checksum;
  const stored = parseNumber(block, FIELDS.checksum);
  if (stored === undefined) return false;
  let unsigned = length * 0x20;
  let signed = unsigned;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i >= offset && i < offset + length) continue;
    const byte = block[i] as number;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** True for an all-zero block (the end-of-archive marker). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.byteLength; i++) if (block[i] !== 0) return false;
  return true;
}

/** The header format its magic names. */
export function formatOf(block: Uint8Array): TarFormat {
  const magic = bytesToBinary(
    block.subarray(FIELDS.magic.offset, FIELDS.version.offset + FIELDS.version.length),
  );
  if (magic === 'ustar  \0') return 'gnu';
  return magic.startsWith('ustar\0') ? 'ustar' : 'v7';
}

function joinPrefix(prefix: Uint8Array, name: Uint8Array): Uint8Array {
  const joined = new Uint8Array(prefix.byteLength + 1 + name.byteLength);
  joined.set(prefix, 0);
  joined[prefix.byteLength] = 0x2f;
  joined.set(name, prefix.byteLength + 1);
  return joined;
}

/**
 * Decodes a header block whose checksum the caller has checked (or not: see {@link
 * checksumOk}). Throws {@link TarFormatError} naming the field that is not a number.
 */
export function decodeHeader(block: Uint8Array): TarHeader {
  if (block.byteLength < BLOCK_SIZE) throw new TarFormatError('short header block');
  const format = formatOf(block);
  const number = (what: keyof typeof FIELDS): number => {
    const value = parseNumber(block, FIELDS[what]);
    if (value === undefined) throw new TarFormatError(`invalid ${what} field`);
    return value;
  };
  let name = cString(block, FIELDS.name);
  if (format === 'ustar') {
    const prefix = cString(block, FIELDS.prefix);
    if (prefix.byteLength > 0) name = joinPrefix(prefix, name);
  }
  const size = number('size');
  if (size < 0) throw new TarFormatError('invalid size field');
  return {
    typeflag: String.fromCharCode(block[FIELDS.typeflag.offset] as number),
    name,
    linkname: cString(block, FIELDS.linkname),
    mode: number('mode'),
    uid: number('uid'),
    gid: number('gid'),
    size,
    mtime: number('mtime'),
    // v7 headers have no device fields: those bytes may hold anything.
    devmajor: format === 'v7' ? 0 : number('devmajor'),
    devminor: format === 'v7' ? 0 : number('devminor'),
    format,
  };
}

/** True for typeflags whose record describes the next member or the archive (see {@link TYPEFLAG}). */
export function isExtensionTypeflag(typeflag: string): boolean {
  return (
    typeflag === TYPEFLAG.pax ||
    typeflag === TYPEFLAG.paxGlobal ||
    typeflag === TYPEFLAG.gnuLongName ||
    typeflag === TYPEFLAG.gnuLongLink ||
    typeflag === TYPEFLAG.gnuVolume
  );
}

/**
 * The entry type of a member's typeflag, `undefined` for one no container runtime unpacks.
 * Regular files (`0`, NUL, contiguous `7`, sparse `S`) whose name ends in `/` are directories
 * (old tars marked directories so); `D` (GNU dump directory) is a directory.
 */
export function entryTypeOf(typeflag: string, name: Uint8Array): TarEntryType | undefined {
  switch (typeflag) {
    case '0':
    case '\0':
    case '7':
      return name[name.byteLength - 1] === 0x2f ? 'directory' : 'file';
    case TYPEFLAG.gnuSparse:
      return 'file';
    case '1':
      return 'link';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
    case TYPEFLAG.gnuDumpDir:
      return 'directory';
    case '6':
      return 'fifo';
    default:
      return undefined;
  }
}

/** Bytes of padding after `size` bytes of data, up to the next block boundary. */
export function paddingOf(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}
