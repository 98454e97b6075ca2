import { cpioChecksum } from './checksum.ts';
import { CpioError } from './errors.ts';
import { CPIO_HEADER_SIZE, CPIO_TRAILER_NAME, type CpioHeaderFields, padded4, writeHeader } from './newc.ts';
import type { BodySource, CpioEntry, CpioFileEntry, CpioPath } from './types.ts';
import {
  checkFileSize,
  checkType,
  checkUint,
  describePath,
  encodeArchivePath,
  encodeLinkTarget,
  entryMode,
} from './validate.ts';

/** Options of {@link packCpio}. */
export interface PackCpioOptions {
  /**
   * `newc` (default) writes magic 070701 with a zero check field; `crc` writes 070702 with
   * the sum of each regular file's body bytes in the check field (as GNU cpio does; symlinks
   * and other kinds carry 0). In `crc` mode a streamed body must be read twice or held: see
   * {@link CpioFileEntry.checksum}.
   */
  format?: 'newc' | 'crc';
  /** Write the `TRAILER!!!` entry at the end. Default `true`; turn off only to splice archives yourself. */
  trailer?: boolean;
  /**
   * Inode number of the first entry; later entries count up by one (hard-link names share one).
   * Default 1, so no entry gets 0 (the trailer's number). Give the next free number when you
   * write several archives that one reader treats as one (the kernel resets its hard-link
   * table at each trailer, so separate initramfs members may reuse numbers).
   */
  firstInode?: number;
  /**
   * The archive's own device number (`devmajor`/`devminor` of every entry but the trailer).
   * Default 0:0. Readers tell hard links apart by (device, inode): the kernel until the next
   * `TRAILER!!!`, GNU cpio and bsdtar over the whole archive. Give each of several archives that
   * are read as one (initramfs members written back to back without trailers between them) its
   * own device number, and their inode numbers may overlap.
   */
  device?: { major: number; minor: number };
  /** Stops packing: the iterator throws `signal.reason` at the next entry or body chunk. */
  signal?: AbortSignal;
  /** Called once after the last byte (including the trailer) was handed out. */
  onEnd?: (summary: PackCpioSummary) => void;
}

/** What {@link packCpio} wrote, reported through {@link PackCpioOptions.onEnd}. */
export interface PackCpioSummary {
  /** Entries consumed from the input (a file with links counts once). */
  entries: number;
  /** Headers written, excluding the trailer (every hard-link name counts). */
  records: number;
  /** Total bytes written, a multiple of 4. */
  bytes: number;
  /** The inode number the next archive should start with to keep numbers unique. */
  nextInode: number;
}

/** Size of the output chunks headers and small bodies are gathered into. */
const CHUNK_SIZE = 64 * 1024;
/** Body chunks at least this long are passed through as they are, without a copy. */
const PASS_THROUGH = 16 * 1024;
/** A chunk this much filled is handed out as is; a less filled one is copied so the buffer stays ours. */
const HAND_OFF = CHUNK_SIZE / 4;

const TRAILER_NAME = new TextEncoder().encode(CPIO_TRAILER_NAME);
const EMPTY = new Uint8Array(0);

/**
 * Gathers small writes into CHUNK_SIZE chunks; large body chunks bypass it. Output chunks
 * are queued in `ready` for the generator to yield, and never written to again.
 */
class ChunkBuilder {
  buf = new Uint8Array(CHUNK_SIZE);
  pos = 0;
  ready: Uint8Array[] = [];
  bytes = 0;

  /** Makes room for `n` contiguous bytes (n <= CHUNK_SIZE). */
  reserve(n: number): void {
    if (CHUNK_SIZE - this.pos < n) this.flush();
  }

  flush(): void {
    const { pos } = this;
    if (pos === 0) return;
    if (pos < HAND_OFF) {
      this.ready.push(this.buf.slice(0, pos));
    } else {
      this.ready.push(this.buf.subarray(0, pos));
      this.buf = new Uint8Array(CHUNK_SIZE);
    }
    this.pos = 0;
  }

  copy(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(CHUNK_SIZE - this.pos, data.length - off);
      this.buf.set(n === data.length ? data : data.subarray(off, off + n), this.pos);
      this.pos += n;
      off += n;
      if (this.pos === CHUNK_SIZE) this.flush();
    }
    this.bytes += data.length;
  }

  body(chunk: Uint8Array): void {
    if (chunk.length >= PASS_THROUGH) {
      this.flush();
      this.ready.push(chunk);
      this.bytes += chunk.length;
    } else {
      this.copy(chunk);
    }
  }

  zeros(n: number): void {
    if (n === 0) return;
    this.reserve(n);
    // A reused buffer holds old bytes, so padding is cleared explicitly.
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    this.bytes += n;
  }

  /** Header, name, NUL and padding to 4, in one contiguous piece. */
  record(format: 'newc' | 'crc', fields: CpioHeaderFields, name: Uint8Array): void {
    const end = padded4(CPIO_HEADER_SIZE + name.length + 1);
    this.reserve(end);
    const { buf, pos } = this;
    writeHeader(buf, pos, format, fields);
    buf.set(name, pos + CPIO_HEADER_SIZE);
    buf.fill(0, pos + CPIO_HEADER_SIZE + name.length, pos + end);
    this.pos += end;
    this.bytes += end;
  }

  take(): Uint8Array[] {
    const out = this.ready;
    this.ready = [];
    return out;
  }
}

function checkDevice(value: number, which: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new CpioError(
      'IRB_OPTION_INVALID',
      `device ${which} ${String(value)} must be an integer from 0 to ${0xffff_ffff}`,
    );
  }
  return value;
}

function isBodyChunk(chunk: unknown): chunk is Uint8Array {
  return chunk instanceof Uint8Array;
}

function sizeMismatch(path: CpioPath, declared: number, actual: string): CpioError {
  return new CpioError(
    'IRB_CPIO_SIZE_MISMATCH',
    `body of ${describePath(path)} has ${actual} bytes but size says ${declared}; the source changed or the size is wrong — fix the size or the source`,
  );
}

function openBody(body: BodySource | undefined, path: CpioPath): AsyncIterable<Uint8Array> | Uint8Array {
  if (body === undefined) return EMPTY;
  if (body instanceof Uint8Array) return body;
  if (typeof body === 'function') {
    const opened = body();
    if (opened instanceof Uint8Array) return opened;
    if (opened && typeof (opened as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function')
      return opened;
    throw new CpioError(
      'IRB_CPIO_BODY_INVALID',
      `body of ${describePath(path)}: the body function must return an AsyncIterable<Uint8Array>`,
    );
  }
  if (typeof (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') return body;
  throw new CpioError(
    'IRB_CPIO_BODY_INVALID',
    `body of ${describePath(path)} must be a Uint8Array, an AsyncIterable<Uint8Array> or a function returning one`,
  );
}

/** Reads a whole streamed body; only used where the format needs the checksum before the data. */
async function collect(
  source: AsyncIterable<Uint8Array>,
  size: number,
  path: CpioPath,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let n = 0;
  for await (const chunk of source) {
    signal?.throwIfAborted();
    if (!isBodyChunk(chunk)) throw badChunk(path, chunk);
    if (n + chunk.length > size) throw sizeMismatch(path, size, `more than ${size}`);
    out.set(chunk, n);
    n += chunk.length;
  }
  if (n !== size) throw sizeMismatch(path, size, String(n));
  return out;
}

async function streamChecksum(
  source: AsyncIterable<Uint8Array>,
  size: number,
  path: CpioPath,
  signal: AbortSignal | undefined,
): Promise<number> {
  let sum = 0;
  let n = 0;
  for await (const chunk of source) {
    signal?.throwIfAborted();
    if (!isBodyChunk(chunk)) throw badChunk(path, chunk);
    n += chunk.length;
    if (n > size) throw sizeMismatch(path, size, `more than ${size}`);
    sum = cpioChecksum(chunk, sum);
  }
  if (n !== size) throw sizeMismatch(path, size, String(n));
  return sum;
}

function badChunk(path: CpioPath, chunk: unknown): CpioError {
  return new CpioError(
    'IRB_CPIO_BODY_INVALID',
    `body of ${describePath(path)} yielded a ${typeof chunk === 'string' ? 'string' : typeof chunk}; bodies must yield Uint8Array chunks (do not set an encoding on the stream)`,
  );
}

/**
 * Streams a CPIO newc archive of `entries`, pull-based: nothing is read from an entry or
 * body before the consumer asks for more output, and bodies are never held whole.
 *
 * Each entry is fully validated before any of its bytes are produced; a body whose length
 * differs from its declared size fails with `IRB_CPIO_SIZE_MISMATCH` while streaming.
 * Inode numbers count up from {@link PackCpioOptions.firstInode}; the device number of the
 * archive itself is {@link PackCpioOptions.device} (0:0), so the same entries always give the
 * same bytes.
 * Hard links (`links` of a file) are written GNU-style: every name with the same inode and
 * nlink, size 0, and the body on the last name.
 *
 * Output chunks are at most 64 KiB of gathered headers and small bodies, except that body
 * chunks of 16 KiB or more are handed on as the very same objects (no copy), before the next
 * body chunk is pulled: a body may read into a chunk's buffer again once the next chunk is
 * pulled only when the consumer of this stream copies what it keeps (as `compress` does).
 * Smaller body chunks are copied at once.
 */
export async function* packCpio(
  entries: AsyncIterable<CpioEntry> | Iterable<CpioEntry>,
  options: PackCpioOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const format = options.format ?? 'newc';
  if (format !== 'newc' && format !== 'crc') {
    throw new CpioError(
      'IRB_OPTION_INVALID',
      `format ${JSON.stringify(format)} is unknown; use "newc" or "crc"`,
    );
  }
  const { signal } = options;
  const firstInode = options.firstInode ?? 1;
  if (!Number.isInteger(firstInode) || firstInode < 0 || firstInode > 0xffff_ffff) {
    throw new CpioError(
      'IRB_OPTION_INVALID',
      `firstInode ${String(firstInode)} must be an integer from 0 to ${0xffff_ffff}`,
    );
  }
  const devMajor = checkDevice(options.device?.major ?? 0, 'major');
  const devMinor = checkDevice(options.device?.minor ?? 0, 'minor');
  signal?.throwIfAborted();
  const out = new ChunkBuilder();
  let ino = firstInode;
  let count = 0;
  let records = 0;

  const nextIno = (path: CpioPath): number => {
    if (ino > 0xffff_ffff) {
      throw new CpioError(
        'IRB_CPIO_TOO_MANY_INODES',
        `no inode number left for ${describePath(path)}: numbers from ${firstInode} passed 2^32-1; start lower with firstInode`,
      );
    }
    return ino++;
  };

  for await (const entry of entries as AsyncIterable<CpioEntry>) {
    signal?.throwIfAborted();
    checkType(entry);
    const { path } = entry;
    const name = encodeArchivePath(path);
    const mode = entryMode(entry);
    const uid = checkUint(entry.uid ?? 0, 'uid', path);
    const gid = checkUint(entry.gid ?? 0, 'gid', path);
    const mtime = checkUint(entry.mtime ?? 0, 'mtime', path);
    const base = {
      ino: 0,
      mode,
      uid,
      gid,
      nlink: 1,
      mtime,
      fileSize: 0,
      devMajor,
      devMinor,
      rdevMajor: 0,
      rdevMinor: 0,
      nameSize: name.length + 1,
      check: 0,
    } satisfies CpioHeaderFields;

    switch (entry.type) {
      case 'file': {
        const source = await prepareFile(entry, name, base);
        if (source === undefined) break;
        // Streamed body: inline (not a nested generator) because this is the per-chunk hot path.
        const size = base.fileSize;
        let n = 0;
        let sum = 0;
        const verify = format === 'crc';
        for await (const chunk of source) {
          if (signal?.aborted) signal.throwIfAborted();
          if (!isBodyChunk(chunk)) throw badChunk(path, chunk);
          n += chunk.length;
          if (n > size) throw sizeMismatch(path, size, `more than ${size}`);
          if (verify) sum = cpioChecksum(chunk, sum);
          out.body(chunk);
          if (out.ready.length > 0) yield* out.take();
        }
        if (n !== size) throw sizeMismatch(path, size, String(n));
        if (verify && sum !== base.check) {
          throw new CpioError(
            'IRB_CPIO_CHECKSUM_MISMATCH',
            `body of ${describePath(path)} sums to ${sum} but ${entry.checksum !== undefined ? 'the given checksum' : 'the first read'} was ${base.check}; the source changed while packing`,
          );
        }
        out.zeros(padded4(size) - size);
        break;
      }
      case 'symlink': {
        const target = encodeLinkTarget(entry.target, path);
        base.ino = nextIno(path);
        base.fileSize = target.length;
        out.record(format, base, name);
        out.copy(target);
        out.zeros(padded4(target.length) - target.length);
        records++;
        break;
      }
      case 'char':
      case 'block': {
        // Linux dev_t holds a 12-bit major and a 20-bit minor; larger numbers would be silently mangled.
        base.rdevMajor = checkUint(entry.rdevMajor, 'rdevMajor', path, 0xfff);
        base.rdevMinor = checkUint(entry.rdevMinor, 'rdevMinor', path, 0xfffff);
        base.ino = nextIno(path);
        out.record(format, base, name);
        records++;
        break;
      }
      case 'directory': {
        base.ino = nextIno(path);
        base.nlink = 2;
        out.record(format, base, name);
        records++;
        break;
      }
      default: {
        base.ino = nextIno(path);
        out.record(format, base, name);
        records++;
      }
    }
    count++;
    if (out.ready.length > 0) yield* out.take();
  }

  if (options.trailer ?? true) {
    out.record(
      format,
      {
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 0,
        fileSize: 0,
        devMajor: 0,
        devMinor: 0,
        rdevMajor: 0,
        rdevMinor: 0,
        nameSize: TRAILER_NAME.length + 1,
        check: 0,
      },
      TRAILER_NAME,
    );
  }
  out.flush();
  yield* out.take();
  options.onEnd?.({ entries: count, records, bytes: out.bytes, nextInode: ino });

  /**
   * Validates a file entry and writes its header records. Returns the body stream still to
   * be copied, or undefined when the body (if any) was already written.
   */
  async function prepareFile(
    entry: CpioFileEntry,
    name: Uint8Array,
    base: CpioHeaderFields,
  ): Promise<AsyncIterable<Uint8Array> | undefined> {
    const { path } = entry;
    const size = checkFileSize(entry.size, path);
    const extra = entry.links ?? [];
    if (!Array.isArray(extra)) {
      throw new CpioError(
        'IRB_CPIO_FIELD_INVALID',
        `links of ${describePath(path)} must be an array of paths`,
      );
    }
    const names: Uint8Array[] = [name];
    for (const link of extra) names.push(encodeArchivePath(link, `hard link of ${describePath(path)}`));
    if (entry.body === undefined && size > 0) {
      throw new CpioError(
        'IRB_CPIO_BODY_INVALID',
        `${describePath(path)} has size ${size} but no body; give a body or size 0`,
      );
    }
    if (entry.body instanceof Uint8Array && entry.body.length !== size) {
      throw sizeMismatch(path, size, String(entry.body.length));
    }
    if (entry.checksum !== undefined) checkUint(entry.checksum, 'checksum', path);

    let source: AsyncIterable<Uint8Array> | Uint8Array = EMPTY;
    let check = 0;
    if (size > 0) {
      source = openBody(entry.body, path);
      if (format === 'crc') {
        if (entry.checksum !== undefined) {
          check = entry.checksum;
        } else if (source instanceof Uint8Array) {
          check = cpioChecksum(source);
        } else if (typeof entry.body === 'function') {
          // The check field precedes the data: read the body once for the sum, then again for the bytes.
          check = await streamChecksum(source, size, path, signal);
          source = openBody(entry.body, path);
        } else {
          source = await collect(source, size, path, signal);
          check = cpioChecksum(source);
        }
        if (source instanceof Uint8Array && check !== cpioChecksum(source)) {
          throw new CpioError(
            'IRB_CPIO_CHECKSUM_MISMATCH',
            `body of ${describePath(path)} sums to ${cpioChecksum(source)} but the given checksum is ${check}; fix the checksum or leave it out`,
          );
        }
      }
      if (source instanceof Uint8Array && source.length !== size)
        throw sizeMismatch(path, size, String(source.length));
    }

    base.ino = nextIno(path);
    base.nlink = names.length;
    for (let i = 0; i < names.length - 1; i++) {
      const linkName = names[i]!;
      out.record(format, { ...base, nameSize: linkName.length + 1 }, linkName);
      records++;
    }
    const last = names[names.length - 1]!;
    base.fileSize = size;
    base.check = check;
    base.nameSize = last.length + 1;
    out.record(format, base, last);
    records++;
    if (source instanceof Uint8Array) {
      out.body(source);
      out.zeros(padded4(size) - size);
      return undefined;
    }
    return source;
  }
}
