import { IrbError } from '@irb/errors';
import {
  BLOCK_SIZE,
  bytesToBinary,
  GNU_SPARSE,
  MAX_EXTENSION_SIZE,
  parseNumber,
  paxInteger as parsePaxInteger,
  type TarEntryType,
  TarFormatError,
  type TarInput,
  type TarMemberHeader,
  TarMembers,
  TYPEFLAG,
} from '@irb/tar';

/*
 * A pull-based tar reader on @irb/tar's member iterator, which folds PAX and GNU long-name
 * records. tar-stream is not used here on purpose (see the README's design section): it decodes
 * names and PAX records as UTF-8 (names that are not UTF-8 lose their bytes), drops PAX
 * uid/gid/mtime, and does not understand GNU sparse files — all of which a layer applier must
 * get exactly right. This reader follows Go's archive/tar (what Docker, containerd and umoci
 * use) wherever the formats leave room.
 */

/** Kind of a tar member after long-name, PAX and sparse records were folded in. */
export type { TarEntryType };

/** One data region of a sparse file. */
export interface SparseChunk {
  offset: number;
  size: number;
}

/** A tar member's header with every extension applied. */
export interface TarEntry {
  /** Counts real members (not PAX/long-name records) from 0: a stable address inside the tar. */
  ordinal: number;
  /** Byte offset of the member's (first) header block in the uncompressed tar. */
  offset: number;
  type: TarEntryType;
  /** The exact name bytes (PAX `path`, GNU long name, or ustar prefix + name). */
  name: Uint8Array;
  /** Hard-link or symlink target, exact bytes. */
  linkname: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (PAX fractions dropped). */
  mtime: number;
  /** Logical size of the file (for sparse files the expanded size). */
  size: number;
  devmajor: number;
  devminor: number;
  /** Keys of extended attributes carried as PAX `SCHILY.xattr.*` / `LIBARCHIVE.xattr.*` records. */
  xattrs: string[];
  /** Present for sparse files: the data regions, in order. */
  sparse?: SparseChunk[];
}

const ZERO = new Uint8Array(64 * 1024);

function tarError(label: string, offset: number, what: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_LAYER_CORRUPT',
    `${label}: ${what} (tar offset ${offset}); the layer blob is damaged or not a tar — rebuild or re-pull the image`,
    cause === undefined ? undefined : { cause },
  );
}

/** Reads exact byte counts out of an async chunk stream without copying more than needed. */
class ByteSource implements TarInput {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private chunk: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private done = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.byteLength) {
      if (this.done) return false;
      const next = await this.iterator.next();
      if (next.done) {
        this.done = true;
        return false;
      }
      this.chunk = next.value;
      this.pos = 0;
    }
    return true;
  }

  /** Exactly `n` bytes, or fewer only when the stream ended (the caller decides what that means). */
  async read(n: number): Promise<Uint8Array> {
    if (!(await this.fill())) return new Uint8Array(0);
    if (this.chunk.byteLength - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n && (await this.fill())) {
      const take = Math.min(n - got, this.chunk.byteLength - this.pos);
      out.set(this.chunk.subarray(this.pos, this.pos + take), got);
      this.pos += take;
      got += take;
      this.offset += take;
    }
    return got === n ? out : out.subarray(0, got);
  }

  /** Up to `max` bytes that are already buffered or come with the next chunk (no copy). */
  async some(max: number): Promise<Uint8Array> {
    if (!(await this.fill())) return new Uint8Array(0);
    const take = Math.min(max, this.chunk.byteLength - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.offset += take;
    return out;
  }

  /** Skips `n` bytes; returns how many could be skipped. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0 && (await this.fill())) {
      const take = Math.min(left, this.chunk.byteLength - this.pos);
      this.pos += take;
      this.offset += take;
      left -= take;
    }
    return n - left;
  }

  /** Reads to the end (so a verifying source gets to check its digest), discarding bytes. */
  async drain(): Promise<void> {
    while (await this.fill()) {
      this.offset += this.chunk.byteLength - this.pos;
      this.pos = this.chunk.byteLength;
    }
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.iterator.return?.();
    }
  }
}

function paxInteger(value: Uint8Array, label: string, offset: number, key: string): number {
  try {
    return parsePaxInteger(value, key);
  } catch (error) {
    if (error instanceof TarFormatError) throw tarError(label, offset, error.problem);
    throw error;
  }
}

const display = new TextDecoder('utf-8');

/** A name for messages only (never a key): UTF-8, other bytes shown as U+FFFD, cut after 200 characters. */
function printableName(name: Uint8Array): string {
  return display.decode(name).slice(0, 200);
}

/** libarchive percent-encodes xattr names; a malformed escape is kept as written. */
function uriDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function validateSparse(
  chunks: SparseChunk[],
  realSize: number,
  stored: number,
  label: string,
  offset: number,
): SparseChunk[] {
  let end = 0;
  let total = 0;
  const kept: SparseChunk[] = [];
  for (const chunk of chunks) {
    if (
      !Number.isSafeInteger(chunk.offset) ||
      !Number.isSafeInteger(chunk.size) ||
      chunk.offset < end ||
      chunk.size < 0 ||
      chunk.offset + chunk.size > realSize
    ) {
      throw new IrbError(
        'IRB_LAYER_SPARSE_INVALID',
        `${label}: sparse map of the file at tar offset ${offset} is inconsistent; rebuild the layer without --sparse`,
      );
    }
    end = chunk.offset + chunk.size;
    total += chunk.size;
    if (chunk.size > 0) kept.push(chunk);
  }
  if (total !== stored) {
    throw new IrbError(
      'IRB_LAYER_SPARSE_INVALID',
      `${label}: sparse map of the file at tar offset ${offset} covers ${total} bytes but ${stored} are stored; rebuild the layer without --sparse`,
    );
  }
  return kept;
}

function numberPairs(values: number[]): SparseChunk[] {
  const chunks: SparseChunk[] = [];
  for (let i = 0; i + 1 < values.length; i += 2)
    chunks.push({ offset: values[i] ?? 0, size: values[i + 1] ?? 0 });
  return chunks;
}

/**
 * Reads tar members one after the other. Call `next()` for each header; the member's data can
 * be streamed with `body()` before the next call, unread data is skipped.
 */
export class TarReader {
  private readonly source: ByteSource;
  private readonly members: TarMembers;
  private readonly label: string;
  /** Bytes of the current member's data not yet consumed (its padding is the iterator's). */
  private remaining = 0;
  private current: TarEntry | undefined;
  private bodyTaken = false;
  private ordinal = 0;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>, label: string) {
    this.source = new ByteSource(source);
    this.members = new TarMembers(this.source);
    this.label = label;
  }

  private truncated(): IrbError {
    return new IrbError(
      'IRB_LAYER_TRUNCATED',
      `${this.label}: the tar stream ends in the middle of a member (offset ${this.source.offset}); the layer blob is truncated — re-pull the image`,
    );
  }

  /** The next member, or `undefined` at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    if (this.ended) return undefined;
    this.current = undefined;
    this.bodyTaken = false;
    this.remaining = 0;
    let member: TarMemberHeader | undefined;
    try {
      member = await this.members.next();
    } catch (error) {
      if (!(error instanceof TarFormatError)) throw error;
      if (error.truncated) throw this.truncated();
      throw tarError(this.label, error.offset ?? this.source.offset, error.problem);
    }
    if (!member) {
      this.ended = true;
      // Read to the end so a digest-verifying source sees every byte.
      await this.source.drain();
      return undefined;
    }
    return this.member(member);
  }

  private async member(member: TarMemberHeader): Promise<TarEntry> {
    const { offset, header, name: folded, linkname, type, pax } = member;
    const { typeflag, mode, devmajor, devminor } = header;
    let name = folded;
    let { uid, gid, mtime } = header;
    const size = member.size;
    const xattrs: string[] = [];
    const sparseKeys = new Map<string, Uint8Array>();
    const sparse00: number[] = [];
    for (const { key, value } of pax) {
      switch (key) {
        case 'uid':
          uid = paxInteger(value, this.label, offset, key);
          break;
        case 'gid':
          gid = paxInteger(value, this.label, offset, key);
          break;
        case 'mtime':
          mtime = paxInteger(value, this.label, offset, key);
          break;
        case 'GNU.sparse.offset':
        case 'GNU.sparse.numbytes':
          sparse00.push(paxInteger(value, this.label, offset, key));
          break;
        default:
          if (key.startsWith('SCHILY.xattr.')) xattrs.push(key.slice('SCHILY.xattr.'.length));
          else if (key.startsWith('LIBARCHIVE.xattr.')) {
            xattrs.push(uriDecoded(key.slice('LIBARCHIVE.xattr.'.length)));
          } else if (key.startsWith('GNU.sparse.')) sparseKeys.set(key, value);
      }
    }
    if (uid < 0 || uid > 0xffff_ffff || gid < 0 || gid > 0xffff_ffff) {
      throw tarError(this.label, offset, `owner ${uid}:${gid} is outside 0 … 4294967295`);
    }

    if (type === undefined) {
      throw new IrbError(
        'IRB_LAYER_UNSUPPORTED_ENTRY',
        `${this.label}: tar member "${printableName(name)}" has type '${typeflag === '\0' ? '\\0' : typeflag}' (tar offset ${offset}), which no container runtime unpacks; rebuild the layer with a standard tar`,
      );
    }

    // What the member stores after its header; header-only types store nothing (as in Go).
    let stored = member.stored;
    let sparse: SparseChunk[] | undefined;
    let logical = type === 'file' ? size : 0;

    if (typeflag === TYPEFLAG.gnuSparse) {
      if (header.format !== 'gnu') throw tarError(this.label, offset, 'GNU sparse member without GNU magic');
      const values: number[] = [];
      const readMap = (from: Uint8Array, start: number, count: number): void => {
        for (let i = 0; i < count; i++) {
          const at = start + i * GNU_SPARSE.pairLength;
          if (from[at] === 0) return;
          const o = parseNumber(from, { offset: at, length: 12 });
          const n = parseNumber(from, { offset: at + 12, length: 12 });
          if (o === undefined || n === undefined) throw tarError(this.label, offset, 'invalid sparse map');
          values.push(o, n);
        }
      };
      readMap(member.block, GNU_SPARSE.map.offset, GNU_SPARSE.map.length / GNU_SPARSE.pairLength);
      for (const extension of member.sparseExtensions) readMap(extension, 0, GNU_SPARSE.extensionPairs);
      const realSize = parseNumber(member.block, GNU_SPARSE.realSize);
      if (realSize === undefined || realSize < 0)
        throw tarError(this.label, offset, 'invalid sparse real size');
      logical = realSize;
      sparse = validateSparse(numberPairs(values), realSize, stored, this.label, offset);
    } else if (type === 'file' && (sparseKeys.size > 0 || sparse00.length > 0)) {
      const major = sparseKeys.get('GNU.sparse.major');
      const minor = sparseKeys.get('GNU.sparse.minor');
      const sparseName = sparseKeys.get('GNU.sparse.name');
      if (sparseName) name = sparseName;
      const realRaw = sparseKeys.get('GNU.sparse.realsize') ?? sparseKeys.get('GNU.sparse.size');
      if (!realRaw) throw tarError(this.label, offset, 'PAX sparse file without GNU.sparse.realsize');
      const realSize = paxInteger(realRaw, this.label, offset, 'GNU.sparse.realsize');
      let values: number[];
      if (major && bytesToBinary(major) === '1' && minor && bytesToBinary(minor) === '0') {
        // Sparse 1.0: the map sits at the start of the data, as decimal lines, padded to a block.
        const map = await this.readSparse10Map(offset, stored);
        values = map.values;
        stored -= map.mapBytes;
      } else if (sparseKeys.has('GNU.sparse.map')) {
        const text = bytesToBinary(sparseKeys.get('GNU.sparse.map') as Uint8Array);
        values =
          text === ''
            ? []
            : text
                .split(',')
                .map((part) =>
                  paxInteger(new TextEncoder().encode(part), this.label, offset, 'GNU.sparse.map'),
                );
      } else {
        values = sparse00;
      }
      if (values.length % 2 !== 0) throw tarError(this.label, offset, 'odd number of sparse map values');
      logical = realSize;
      sparse = validateSparse(numberPairs(values), realSize, stored, this.label, offset);
    }

    if (!Number.isSafeInteger(logical) || !Number.isSafeInteger(stored)) {
      throw tarError(this.label, offset, 'size out of range');
    }
    this.remaining = stored;
    const entry: TarEntry = {
      ordinal: this.ordinal++,
      offset,
      type,
      name,
      linkname,
      mode: mode & 0o7777,
      uid,
      gid,
      mtime,
      size: logical,
      devmajor,
      devminor,
      xattrs,
      ...(sparse ? { sparse } : {}),
    };
    this.current = entry;
    return entry;
  }

  /** Reads the sparse 1.0 map at the start of the data; returns the numbers and the bytes it took. */
  private async readSparse10Map(
    offset: number,
    stored: number,
  ): Promise<{ values: number[]; mapBytes: number }> {
    let text = '';
    let mapBytes = 0;
    const numbers: number[] = [];
    let expected: number | undefined;
    for (;;) {
      // The map is part of the member's data: it never reads into the next header.
      if (mapBytes + BLOCK_SIZE > stored)
        throw tarError(this.label, offset, 'sparse map larger than the member');
      const block = await this.source.read(BLOCK_SIZE);
      if (block.byteLength < BLOCK_SIZE) throw this.truncated();
      mapBytes += BLOCK_SIZE;
      if (mapBytes > MAX_EXTENSION_SIZE) throw tarError(this.label, offset, 'sparse map is absurdly large');
      text += bytesToBinary(block);
      const lines = text.split('\n');
      text = lines.pop() ?? '';
      for (const line of lines) {
        const value = Number(line);
        if (!/^\d+$/.test(line) || !Number.isSafeInteger(value)) {
          throw tarError(this.label, offset, 'invalid sparse 1.0 map');
        }
        if (expected === undefined) expected = value * 2;
        else numbers.push(value);
        if (expected !== undefined && numbers.length === expected) return { values: numbers, mapBytes };
      }
    }
  }

  /**
   * The current member's content: its stored bytes, with sparse holes expanded to zeros.
   * Chunks are only valid until the next chunk is requested.
   */
  async *body(): AsyncGenerator<Uint8Array> {
    const entry = this.current;
    if (!entry || this.bodyTaken) throw new Error('body() called twice or without a current member');
    this.bodyTaken = true;
    if (!entry.sparse) {
      yield* this.stored(this.remaining);
    } else {
      let position = 0;
      for (const chunk of entry.sparse) {
        yield* zeros(chunk.offset - position);
        yield* this.stored(chunk.size);
        position = chunk.offset + chunk.size;
      }
      yield* zeros(entry.size - position);
    }
  }

  private async *stored(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      const part = await this.source.some(left);
      if (part.byteLength === 0) throw this.truncated();
      left -= part.byteLength;
      this.remaining -= part.byteLength;
      yield part;
    }
  }

  /** Stops reading early (releases the underlying stream). */
  async close(): Promise<void> {
    await this.source.close();
  }
}

function* zeros(n: number): Generator<Uint8Array> {
  let left = n;
  while (left > 0) {
    const take = Math.min(left, ZERO.byteLength);
    yield ZERO.subarray(0, take);
    left -= take;
  }
}
