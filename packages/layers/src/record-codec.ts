import type { TarEntry, TarEntryType } from './tar.ts';

/*
 * One header record as bytes, the unit of the record log and of the index cache's entries:
 *   u8 type (bit 7: "wide"),
 *   mode, uid, gid, mtime, size, devmajor, devminor — unsigned LEB128 varints (mtime and the
 *     device numbers zigzag-encoded, they may be negative), or with "wide" seven f64 (LE) for a
 *     record whose numbers do not fit (not integers within ±2^52: never seen in a real tar),
 *   varint + name bytes, varint + linkname bytes, varint xattr count, per xattr varint + UTF-8.
 * The ordinal is the record's position. A typical record is 15 bytes plus its names, where the
 * fixed layout of format 2 took 61.
 */

const TYPES: readonly TarEntryType[] = ['file', 'link', 'symlink', 'char', 'block', 'directory', 'fifo'];
const TYPE_CODES = new Map(TYPES.map((type, code) => [type, code]));
const WIDE = 0x80;
const LIMIT = 2 ** 52;
/** Most bytes a varint of up to 2^53 takes. */
const VARINT_MAX = 8;

/** The fields of a record read back, names as offsets into the bytes it was read from. */
export interface ReadRecord
  extends Pick<TarEntry, 'type' | 'mode' | 'uid' | 'gid' | 'mtime' | 'size' | 'devmajor' | 'devminor'> {
  name: [number, number];
  linkname: [number, number];
  /** Xattr keys as byte ranges (UTF-8). */
  xattrs: Array<[number, number]>;
  /** Where the next record starts. */
  next: number;
}

const fits = (value: number) => Number.isInteger(value) && Math.abs(value) <= LIMIT;
const fitsUnsigned = (value: number) => fits(value) && value >= 0;
const zigzag = (value: number) => (value >= 0 ? value * 2 : -value * 2 - 1);

/** An upper bound of the bytes {@link writeRecord} takes for `entry`. */
export function recordBound(entry: TarEntry, xattrs: readonly Uint8Array[]): number {
  let size = 1 + 7 * VARINT_MAX + 3 * VARINT_MAX + entry.name.byteLength + entry.linkname.byteLength;
  for (const x of xattrs) size += VARINT_MAX + x.byteLength;
  return size;
}

/** Writes `entry`'s record at `start` (room for {@link recordBound} bytes); returns where it ends. */
export function writeRecord(
  out: Uint8Array,
  start: number,
  entry: TarEntry,
  xattrs: readonly Uint8Array[],
): number {
  let at = start;
  const uint = (value: number) => {
    let v = value;
    while (v >= 128) {
      out[at++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    out[at++] = v;
  };
  const wide = !(
    fitsUnsigned(entry.mode) &&
    fitsUnsigned(entry.uid) &&
    fitsUnsigned(entry.gid) &&
    fitsUnsigned(entry.size) &&
    fits(entry.mtime) &&
    fits(entry.devmajor) &&
    fits(entry.devminor)
  );
  out[at++] = (TYPE_CODES.get(entry.type) ?? 0) | (wide ? WIDE : 0);
  if (wide) {
    const view = new DataView(out.buffer, out.byteOffset + at, 56);
    const all = [entry.mode, entry.uid, entry.gid, entry.mtime, entry.size, entry.devmajor, entry.devminor];
    for (const [i, value] of all.entries()) view.setFloat64(i * 8, value, true);
    at += 56;
  } else {
    uint(entry.mode);
    uint(entry.uid);
    uint(entry.gid);
    uint(zigzag(entry.mtime));
    uint(entry.size);
    uint(zigzag(entry.devmajor));
    uint(zigzag(entry.devminor));
  }
  const bytes = (b: Uint8Array) => {
    uint(b.byteLength);
    out.set(b, at);
    at += b.byteLength;
  };
  bytes(entry.name);
  bytes(entry.linkname);
  uint(xattrs.length);
  for (const x of xattrs) bytes(x);
  return at;
}

/**
 * Reads the record at `start`, not past `end`. Throws a RangeError on bytes that are not a
 * record (truncated, an unknown type, an overlong varint); whether the values make sense is the
 * caller's to judge.
 */
export function readRecord(data: Uint8Array, start: number, end: number): ReadRecord {
  let at = start;
  const need = (n: number) => {
    if (at + n > end) throw new RangeError('truncated record');
  };
  const uint = () => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_MAX; i++) {
      need(1);
      const byte = data[at++] as number;
      value += (byte & 127) * scale;
      if (byte < 128) return value;
      scale *= 128;
    }
    throw new RangeError('overlong varint');
  };
  const int = () => {
    const z = uint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const range = (): [number, number] => {
    const n = uint();
    need(n);
    at += n;
    return [at - n, at];
  };
  need(1);
  const head = data[at++] as number;
  const type = TYPES[head & ~WIDE];
  if (!type) throw new RangeError('unknown record type');
  let mode: number;
  let uid: number;
  let gid: number;
  let mtime: number;
  let size: number;
  let devmajor: number;
  let devminor: number;
  if (head & WIDE) {
    need(56);
    const view = new DataView(data.buffer, data.byteOffset + at, 56);
    const f64 = (i: number) => view.getFloat64(i * 8, true);
    [mode, uid, gid, mtime, size, devmajor, devminor] = [
      f64(0),
      f64(1),
      f64(2),
      f64(3),
      f64(4),
      f64(5),
      f64(6),
    ];
    at += 56;
  } else {
    mode = uint();
    uid = uint();
    gid = uint();
    mtime = int();
    size = uint();
    devmajor = int();
    devminor = int();
  }
  const name = range();
  const linkname = range();
  const count = uint();
  const xattrs: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) xattrs.push(range());
  return { type, mode, uid, gid, mtime, size, devmajor, devminor, name, linkname, xattrs, next: at };
}
