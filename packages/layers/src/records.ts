import { createHash } from 'node:crypto';
import type { TarEntry, TarEntryType } from './tar.ts';

/**
 * What the index pass needs of a tar member: its header, without the body, sparse map or
 * position. Names are copies, so a record never pins a decompressed chunk (records of layers
 * read ahead wait in memory until their layer is applied).
 */
export type LayerRecord = Omit<TarEntry, 'offset' | 'sparse'>;

/** A detached record of a tar member: names copied out of the reader's chunk, body skipped. */
export function recordOf(entry: TarEntry): LayerRecord {
  return {
    ordinal: entry.ordinal,
    type: entry.type,
    name: entry.name.slice(),
    linkname: entry.linkname.slice(),
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtime: entry.mtime,
    size: entry.size,
    devmajor: entry.devmajor,
    devminor: entry.devminor,
    xattrs: entry.xattrs,
  };
}

/*
 * Cached form of one layer's records (see IndexCache). Little-endian:
 *   magic "IRBLIDX\0", u32 format, u32 key length, key (UTF-8), u32 record count,
 *   per record: u32 ordinal, u8 type, u32 mode, u32 uid, u32 gid, f64 mtime, f64 size,
 *     f64 devmajor, f64 devminor, u32 + name bytes, u32 + linkname bytes,
 *     u32 xattr count, per xattr u32 + UTF-8 key,
 *   then the SHA-256 of everything before it.
 * Names are stored as the exact tar bytes. The key inside guards against a file that landed
 * under the wrong name; the digest against damage. Anything off: the layer is read again.
 */
const MAGIC = new TextEncoder().encode('IRBLIDX\0');
/** Bump when the reader's output or this layout changes: old entries are then ignored. */
export const RECORDS_FORMAT = 2;
const TYPES: readonly TarEntryType[] = ['file', 'link', 'symlink', 'char', 'block', 'directory', 'fifo'];
const TYPE_CODES = new Map(TYPES.map((type, code) => [type, code]));
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const HASH_BYTES = 32;

/**
 * Encodes a layer's records (all of them, in tar order) for an index cache under `key`;
 * `undefined` when they cannot round-trip exactly (an xattr key that is not well-formed text).
 */
export function encodeRecords(key: string, records: readonly LayerRecord[]): Uint8Array | undefined {
  if (!records.every((r) => r.xattrs.every((x) => utf8Strict.decode(utf8.encode(x)) === x))) return undefined;
  const keyBytes = utf8.encode(key);
  const xattrBytes = records.map((r) => r.xattrs.map((x) => utf8.encode(x)));
  let size = MAGIC.byteLength + 4 + 4 + keyBytes.byteLength + 4;
  records.forEach((r, i) => {
    size += 4 + 1 + 12 + 32 + 4 + r.name.byteLength + 4 + r.linkname.byteLength + 4;
    for (const x of xattrBytes[i] as Uint8Array[]) size += 4 + x.byteLength;
  });
  const out = new Uint8Array(size + HASH_BYTES);
  const view = new DataView(out.buffer);
  let at = 0;
  const u32 = (n: number) => {
    view.setUint32(at, n, true);
    at += 4;
  };
  const f64 = (n: number) => {
    view.setFloat64(at, n, true);
    at += 8;
  };
  const bytes = (b: Uint8Array) => {
    u32(b.byteLength);
    out.set(b, at);
    at += b.byteLength;
  };
  out.set(MAGIC, 0);
  at = MAGIC.byteLength;
  u32(RECORDS_FORMAT);
  bytes(keyBytes);
  u32(records.length);
  records.forEach((r, i) => {
    u32(r.ordinal);
    out[at++] = TYPE_CODES.get(r.type) ?? 0;
    u32(r.mode);
    u32(r.uid);
    u32(r.gid);
    f64(r.mtime);
    f64(r.size);
    f64(r.devmajor);
    f64(r.devminor);
    bytes(r.name);
    bytes(r.linkname);
    const xattrs = xattrBytes[i] as Uint8Array[];
    u32(xattrs.length);
    for (const x of xattrs) bytes(x);
  });
  out.set(createHash('sha256').update(out.subarray(0, at)).digest(), at);
  return out;
}

/**
 * The records of a cache entry written by {@link encodeRecords} for `key`, or `undefined` when
 * the bytes are not exactly that: other format or key, damaged, truncated, or implausible.
 */
export function decodeRecords(key: string, data: Uint8Array): LayerRecord[] | undefined {
  try {
    return decodeChecked(key, data);
  } catch {
    return undefined;
  }
}

function decodeChecked(key: string, data: Uint8Array): LayerRecord[] | undefined {
  if (data.byteLength < MAGIC.byteLength + 12 + HASH_BYTES) return undefined;
  const end = data.byteLength - HASH_BYTES;
  const hash = createHash('sha256').update(data.subarray(0, end)).digest();
  if (!hash.equals(data.subarray(end))) return undefined;
  for (let i = 0; i < MAGIC.byteLength; i++) if (data[i] !== MAGIC[i]) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = MAGIC.byteLength;
  const need = (n: number) => {
    if (at + n > end) throw new RangeError('truncated');
  };
  const u32 = () => {
    need(4);
    const n = view.getUint32(at, true);
    at += 4;
    return n;
  };
  const f64 = () => {
    need(8);
    const n = view.getFloat64(at, true);
    at += 8;
    return n;
  };
  const bytes = () => {
    const n = u32();
    need(n);
    const b = data.slice(at, at + n);
    at += n;
    return b;
  };
  if (u32() !== RECORDS_FORMAT) return undefined;
  if (utf8Strict.decode(bytes()) !== key) return undefined;
  const count = u32();
  const records: LayerRecord[] = [];
  for (let ordinal = 0; ordinal < count; ordinal++) {
    if (u32() !== ordinal) return undefined;
    need(1);
    const type = TYPES[data[at++] as number];
    const mode = u32();
    const uid = u32();
    const gid = u32();
    const mtime = f64();
    const size = f64();
    const devmajor = f64();
    const devminor = f64();
    const name = bytes();
    const linkname = bytes();
    const xattrCount = u32();
    const xattrs: string[] = [];
    for (let i = 0; i < xattrCount; i++) xattrs.push(utf8Strict.decode(bytes()));
    if (
      !type ||
      mode > 0o7777 ||
      ![mtime, size, devmajor, devminor].every(Number.isSafeInteger) ||
      size < 0 ||
      (type !== 'file' && size !== 0)
    ) {
      return undefined;
    }
    records.push({ ordinal, type, name, linkname, mode, uid, gid, mtime, size, devmajor, devminor, xattrs });
  }
  return at === end ? records : undefined;
}
