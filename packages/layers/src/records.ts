import { createHash } from 'node:crypto';
import { bytesToBinary } from '@irb/tar';
import { type ReadRecord, readRecord, recordBound, writeRecord } from './record-codec.ts';
import type { TarEntry } from './tar.ts';

/**
 * What the applier needs of a tar member: its header, without the body, sparse map or position.
 * Names and link targets are keys (exact bytes as binary strings, see path.ts), decoded from a
 * {@link RecordLog} as the applier reaches them: no record outlives its application.
 */
export interface LayerRecord extends Omit<TarEntry, 'offset' | 'sparse' | 'name' | 'linkname'> {
  /** The member's name as a key. */
  name: string;
  /** The hard-link or symlink target as a key. */
  linkname: string;
  /**
   * The name's last component as a string of its own, when it is long: a component split out of
   * `name` would be a slice that keeps the whole path alive for as long as the node lives (a
   * 100-byte path cost 180 bytes per node instead of 70).
   */
  leaf?: string;
}

/** V8 copies substrings shorter than this instead of slicing them. */
const SLICED_FROM = 13;

/** The last component of a name's bytes (trailing `/` ignored) as its own string, if long. */
function leafOf(name: Uint8Array): string | undefined {
  let end = name.byteLength;
  while (end > 0 && name[end - 1] === 0x2f) end--;
  const start = name.lastIndexOf(0x2f, end - 1) + 1;
  return end - start >= SLICED_FROM ? bytesToBinary(name.subarray(start, end)) : undefined;
}

/*
 * One layer's records, as bytes: the layout of the index cache's entries (see IndexCache).
 *   magic "IRBLIDX\0", u32 format, u32 key length, key (UTF-8), u32 record count (LE),
 *   the records in tar order (see record-codec.ts: varints and the exact name bytes),
 *   then the SHA-256 of everything before it.
 * The key inside guards against a file that landed under the wrong name; the digest against
 * damage. Anything off: the layer is read again.
 *
 * The reader writes each member's record in this form into a RecordLog as it goes, the applier
 * decodes them from there, and the log's bytes are the cache entry: about 15 bytes plus the
 * names per member, where a record object with two copied Uint8Arrays held about 700 (a layer
 * of a million members held 600 MiB of records until its cache entry was written).
 */
const MAGIC = new TextEncoder().encode('IRBLIDX\0');
/** Bump when the reader's output or this layout changes: old entries are then ignored. */
export const RECORDS_FORMAT = 3;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const HASH_BYTES = 32;
const CHUNK = 256 * 1024;
/** ES2024's resizable ArrayBuffer (Node 20 and later), which the project's `lib` does not declare yet. */
interface ResizableBuffer extends ArrayBuffer {
  resize(byteLength: number): void;
}
type ResizableBufferConstructor = new (
  byteLength: number,
  options: { maxByteLength: number },
) => ResizableBuffer;
/** Largest cache entry a log keeps (its lengths are u32 anyway). */
const MAX_ENTRY = 2 ** 32 - 1;

/**
 * Records of one layer in tar order, appended by its reader and read by the applier (possibly
 * while the reader goes on). A record never straddles two chunks, so a chunk can be read up to
 * its filled length while the next one is written.
 *
 * A log kept for the index cache is one resizable ArrayBuffer with room for the entry's header
 * in front: it grows in place (the address space is reserved, pages are committed as they fill),
 * and the cache entry is that buffer itself, not a copy — a layer of a million members would
 * otherwise hold its 37 MiB of records twice while the entry is written.
 */
export class RecordLog {
  readonly #chunks: Uint8Array[] = [];
  /** Filled length of each chunk. */
  readonly #ends: number[] = [];
  /** Whether chunks must stay after they were read (for the index cache). */
  #keep: boolean;
  /** The cache entry being built: its buffer, the key's bytes and where the records start. */
  #entry: { buffer: ResizableBuffer; key: Uint8Array; head: number } | undefined;
  /** False once a record could not be stored losslessly in the cache's form. */
  #cacheable = true;
  count = 0;

  /**
   * An empty log; with `cacheKey`, kept whole for {@link RecordLog.encode}. `records` starts it
   * with the record bytes of a validated cache entry (see {@link RecordLog.fromCache}).
   */
  constructor(cacheKey?: string, records?: { bytes: Uint8Array; count: number }) {
    this.#keep = cacheKey !== undefined;
    if (records) {
      this.#chunks.push(records.bytes);
      this.#ends.push(records.bytes.byteLength);
      this.count = records.count;
    } else if (cacheKey !== undefined) {
      const key = utf8.encode(cacheKey);
      const head = MAGIC.byteLength + 4 + 4 + key.byteLength + 4;
      try {
        const buffer = new (ArrayBuffer as unknown as ResizableBufferConstructor)(head + CHUNK, {
          maxByteLength: MAX_ENTRY,
        });
        this.#entry = { buffer, key, head };
        // Length-tracking: the view grows with the buffer.
        this.#chunks.push(new Uint8Array(buffer, head));
        this.#ends.push(0);
      } catch {
        // No address space for it: the layer is not cached, its records are still read.
        this.#uncacheable();
      }
    }
  }

  #uncacheable(): void {
    this.#cacheable = false;
    this.#keep = false;
    this.#entry = undefined;
  }

  /** Makes room for `size` more bytes at the end, growing the cache entry in place when there is one. */
  #room(size: number): [Uint8Array, number] {
    const last = this.#chunks.length - 1;
    const chunk = this.#chunks[last];
    const at = this.#ends[last] ?? 0;
    if (chunk && at + size <= chunk.byteLength) return [chunk, at];
    const entry = this.#entry;
    if (chunk && entry) {
      try {
        const want = entry.head + at + size + HASH_BYTES;
        entry.buffer.resize(Math.min(MAX_ENTRY, Math.max(want, Math.ceil(entry.buffer.byteLength * 1.5))));
        return [chunk, at];
      } catch {
        this.#uncacheable();
      }
    }
    const next = new Uint8Array(Math.max(CHUNK, size));
    this.#chunks.push(next);
    this.#ends.push(0);
    return [next, 0];
  }

  /** Appends the record of a tar member (members come in tar order: the ordinal is the position). */
  append(entry: TarEntry): void {
    if (entry.ordinal !== this.count) throw new Error(`record ${entry.ordinal} appended as ${this.count}`);
    const xattrs = entry.xattrs.map((x) => utf8.encode(x));
    if (xattrs.some((bytes, i) => utf8Strict.decode(bytes) !== entry.xattrs[i])) this.#uncacheable();
    const [chunk, start] = this.#room(recordBound(entry, xattrs));
    this.#ends[this.#ends.length - 1] = writeRecord(chunk, start, entry, xattrs);
    this.count++;
  }

  /** Reads the records in order, as far as they were appended; a chunk read through is dropped unless kept. */
  cursor(): RecordCursor {
    let index = 0;
    let at = 0;
    let ordinal = 0;
    return {
      next: () => {
        for (;;) {
          const chunk = this.#chunks[index];
          const end = this.#ends[index] ?? 0;
          if (!chunk) return undefined;
          if (at < end) {
            const read = readRecord(chunk, at, end);
            at = read.next;
            return recordOf(chunk, read, ordinal++);
          }
          // The last chunk may still grow; an earlier one is complete.
          if (index === this.#chunks.length - 1) return undefined;
          if (!this.#keep) this.#chunks[index] = EMPTY;
          index++;
          at = 0;
        }
      },
    };
  }

  /**
   * The index-cache entry of these records (all of them: only call after the layer was read to
   * its end), under the key the log was made with; `undefined` when the log is not kept for the
   * cache or a record could not be stored in its form (an xattr key that is not well-formed text).
   */
  encode(): Uint8Array | undefined {
    const entry = this.#entry;
    if (!this.#cacheable || !entry) return undefined;
    const { buffer, key, head } = entry;
    const end = head + (this.#ends[0] ?? 0);
    if (buffer.byteLength < end + HASH_BYTES) buffer.resize(end + HASH_BYTES);
    const out = new Uint8Array(buffer, 0, end + HASH_BYTES);
    const view = new DataView(buffer);
    out.set(MAGIC, 0);
    let at = MAGIC.byteLength;
    view.setUint32(at, RECORDS_FORMAT, true);
    view.setUint32(at + 4, key.byteLength, true);
    out.set(key, at + 8);
    at += 8 + key.byteLength;
    view.setUint32(at, this.count, true);
    out.set(createHash('sha256').update(out.subarray(0, end)).digest(), end);
    return out;
  }

  /**
   * The records of a cache entry written by {@link RecordLog.encode} for `key`, or `undefined`
   * when the bytes are not exactly that: other format or key, damaged, truncated, or
   * implausible. Validated whole before use, without building a record.
   */
  static fromCache(key: string, data: Uint8Array): RecordLog | undefined {
    try {
      return validated(key, data);
    } catch {
      return undefined;
    }
  }
}

/** Sequential reader of a {@link RecordLog}. */
export interface RecordCursor {
  /** The next record appended so far, or `undefined`. */
  next(): LayerRecord | undefined;
}

const EMPTY = new Uint8Array(0);

/** The record the applier gets from what {@link readRecord} found (trusted bytes). */
function recordOf(chunk: Uint8Array, read: ReadRecord, ordinal: number): LayerRecord {
  const nameBytes = chunk.subarray(read.name[0], read.name[1]);
  const record: LayerRecord = {
    ordinal,
    type: read.type,
    name: bytesToBinary(nameBytes),
    linkname: bytesToBinary(chunk.subarray(read.linkname[0], read.linkname[1])),
    mode: read.mode,
    uid: read.uid,
    gid: read.gid,
    mtime: read.mtime,
    size: read.size,
    devmajor: read.devmajor,
    devminor: read.devminor,
    xattrs:
      read.xattrs.length === 0
        ? []
        : read.xattrs.map(([from, to]) => utf8Strict.decode(chunk.subarray(from, to))),
  };
  const leaf = leafOf(nameBytes);
  if (leaf !== undefined) record.leaf = leaf;
  return record;
}

function validated(key: string, data: Uint8Array): RecordLog | undefined {
  if (data.byteLength < MAGIC.byteLength + 12 + HASH_BYTES) return undefined;
  const end = data.byteLength - HASH_BYTES;
  const hash = createHash('sha256').update(data.subarray(0, end)).digest();
  if (!hash.equals(data.subarray(end))) return undefined;
  for (let i = 0; i < MAGIC.byteLength; i++) if (data[i] !== MAGIC[i]) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = MAGIC.byteLength;
  const u32 = () => {
    if (at + 4 > end) throw new RangeError('truncated');
    at += 4;
    return view.getUint32(at - 4, true);
  };
  if (u32() !== RECORDS_FORMAT) return undefined;
  const keyLength = u32();
  if (at + keyLength > end || utf8Strict.decode(data.subarray(at, at + keyLength)) !== key) return undefined;
  at += keyLength;
  const count = u32();
  const first = at;
  for (let ordinal = 0; ordinal < count; ordinal++) {
    const read = readRecord(data, at, end);
    for (const [from, to] of read.xattrs) utf8Strict.decode(data.subarray(from, to));
    const { type, mode, size } = read;
    const numbers = [read.uid, read.gid, read.mtime, size, read.devmajor, read.devminor];
    if (
      mode > 0o7777 ||
      !numbers.every(Number.isSafeInteger) ||
      read.uid < 0 ||
      read.gid < 0 ||
      size < 0 ||
      (type !== 'file' && size !== 0)
    ) {
      return undefined;
    }
    at = read.next;
  }
  if (at !== end) return undefined;
  return new RecordLog(undefined, { bytes: data.subarray(first, end), count });
}
