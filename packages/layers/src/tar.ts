import { IrbError } from '@irb/errors';
import {
  BLOCK_SIZE,
  bytesToBinary,
  checksumOk,
  decodeHeader,
  entryTypeOf,
  FIELDS,
  GNU_SPARSE,
  isZeroBlock,
  type PaxRecord,
  paddingOf,
  parseNumber,
  paxInteger as parsePaxInteger,
  parsePax as parsePaxRecords,
  type TarEntryType,
  TarFormatError,
  type TarHeader,
  TYPEFLAG,
} from '@irb/tar';

/*
 * A pull-based tar reader on @irb/tar's header decoder. tar-stream is not used here on purpose
 * (see the README's design section): it decodes names and PAX records as UTF-8 (names that are
 * not UTF-8 lose their bytes), drops PAX uid/gid/mtime, and does not understand GNU sparse
 * files — all of which a layer applier must get exactly right. This reader follows Go's
 * archive/tar (what Docker, containerd and umoci use) wherever the formats leave room.
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

/** Largest PAX or GNU long-name record accepted; real ones are a few KiB. */
const MAX_META_SIZE = 1024 * 1024;
const ZERO = new Uint8Array(64 * 1024);

function tarError(label: string, offset: number, what: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_LAYER_CORRUPT',
    `${label}: ${what} (tar offset ${offset}); the layer blob is damaged or not a tar — rebuild or re-pull the image`,
    cause === undefined ? undefined : { cause },
  );
}

/** Reads exact byte counts out of an async chunk stream without copying more than needed. */
class ByteSource {
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

/** Parses PAX records; a malformed one is a corrupt layer. */
function parsePax(data: Uint8Array, label: string, offset: number): PaxRecord[] {
  try {
    return parsePaxRecords(data);
  } catch (error) {
    if (error instanceof TarFormatError) throw tarError(label, offset, error.problem);
    throw error;
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
  private readonly label: string;
  /** Bytes of the current member not yet consumed (stored size incl. nothing of the padding). */
  private remaining = 0;
  private padding = 0;
  private current: TarEntry | undefined;
  private bodyTaken = false;
  private ordinal = 0;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array>, label: string) {
    this.source = new ByteSource(source);
    this.label = label;
  }

  private async skipCurrent(): Promise<void> {
    const want = this.remaining + this.padding;
    const skipped = await this.source.skip(want);
    this.remaining = 0;
    this.padding = 0;
    if (skipped < want) throw this.truncated();
  }

  private truncated(): IrbError {
    return new IrbError(
      'IRB_LAYER_TRUNCATED',
      `${this.label}: the tar stream ends in the middle of a member (offset ${this.source.offset}); the layer blob is truncated — re-pull the image`,
    );
  }

  private async readBlock(): Promise<Uint8Array | undefined> {
    const block = await this.source.read(BLOCK_SIZE);
    if (block.byteLength === 0) return undefined;
    if (block.byteLength < BLOCK_SIZE) throw this.truncated();
    return block;
  }

  private async readMeta(size: number, offset: number): Promise<Uint8Array> {
    if (size > MAX_META_SIZE)
      throw tarError(this.label, offset, `extended header of ${size} bytes is absurdly large`);
    const data = await this.source.read(size);
    if (data.byteLength < size) throw this.truncated();
    const pad = paddingOf(size);
    if ((await this.source.skip(pad)) < pad) throw this.truncated();
    // Copy: the reader's chunk may be reused by the producer.
    return data.slice();
  }

  /** The next member, or `undefined` at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    if (this.ended) return undefined;
    if (this.current) await this.skipCurrent();
    this.current = undefined;
    this.bodyTaken = false;

    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    let pax: PaxRecord[] | undefined;
    let firstOffset: number | undefined;

    for (;;) {
      const offset = this.source.offset;
      const block = await this.readBlock();
      if (!block) {
        // A tar that simply stops at a member boundary is accepted (as Go does).
        if (longName || longLink || pax) throw this.truncated();
        this.ended = true;
        return undefined;
      }
      if (isZeroBlock(block)) {
        if (longName || longLink || pax)
          throw tarError(this.label, offset, 'extended header without a member');
        // End of archive: read to the end so a digest-verifying source sees every byte.
        this.ended = true;
        await this.source.drain();
        return undefined;
      }
      if (!checksumOk(block)) throw tarError(this.label, offset, 'bad header checksum');
      firstOffset ??= offset;
      const typeflag = String.fromCharCode(block[FIELDS.typeflag.offset] ?? 0);
      // Extension records are judged by their size alone, as Go does: their other fields are noise.
      const size = parseNumber(block, FIELDS.size);
      if (size === undefined || size < 0) throw tarError(this.label, offset, 'invalid size field');

      if (typeflag === TYPEFLAG.gnuLongName || typeflag === TYPEFLAG.gnuLongLink) {
        const data = await this.readMeta(size, offset);
        const nul = data.indexOf(0);
        const value = nul === -1 ? data : data.subarray(0, nul);
        if (typeflag === TYPEFLAG.gnuLongName) longName = value;
        else longLink = value;
        continue;
      }
      if (typeflag === TYPEFLAG.pax) {
        const data = await this.readMeta(size, offset);
        pax = [...(pax ?? []), ...parsePax(data, this.label, offset)];
        continue;
      }
      if (typeflag === TYPEFLAG.paxGlobal || typeflag === TYPEFLAG.gnuVolume) {
        // Global PAX headers and volume labels describe the archive, not a member. Go's
        // reader (and so Docker, containerd, umoci) does not apply global records either.
        await this.readMeta(size, offset);
        continue;
      }
      return this.member(block, firstOffset, longName, longLink, pax);
    }
  }

  private async member(
    block: Uint8Array,
    offset: number,
    longName: Uint8Array | undefined,
    longLink: Uint8Array | undefined,
    pax: PaxRecord[] | undefined,
  ): Promise<TarEntry> {
    let header: TarHeader;
    try {
      header = decodeHeader(block);
    } catch (error) {
      if (error instanceof TarFormatError) throw tarError(this.label, offset, error.problem);
      throw error;
    }
    const { typeflag, mode, devmajor, devminor } = header;
    const gnu = header.format === 'gnu';
    let { name, linkname, uid, gid, mtime } = header;
    if (longName) name = longName;
    if (longLink) linkname = longLink;
    let size = header.size;
    const xattrs: string[] = [];
    const sparseKeys = new Map<string, Uint8Array>();
    const sparse00: number[] = [];
    for (const { key, value } of pax ?? []) {
      switch (key) {
        case 'path':
          name = value;
          break;
        case 'linkpath':
          linkname = value;
          break;
        case 'size':
          size = paxInteger(value, this.label, offset, key);
          break;
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
    if (size < 0) throw tarError(this.label, offset, 'negative size');
    if (uid < 0 || uid > 0xffff_ffff || gid < 0 || gid > 0xffff_ffff) {
      throw tarError(this.label, offset, `owner ${uid}:${gid} is outside 0 … 4294967295`);
    }
    // PAX and GNU strings may end in NULs; a NUL inside a name cannot reach the kernel.
    const nameNul = name.indexOf(0);
    if (nameNul !== -1) name = name.subarray(0, nameNul);
    const linkNul = linkname.indexOf(0);
    if (linkNul !== -1) linkname = linkname.subarray(0, linkNul);

    const type = entryTypeOf(typeflag, name);
    if (type === undefined) {
      throw new IrbError(
        'IRB_LAYER_UNSUPPORTED_ENTRY',
        `${this.label}: tar member "${printableName(name)}" has type '${typeflag === '\0' ? '\\0' : typeflag}' (tar offset ${offset}), which no container runtime unpacks; rebuild the layer with a standard tar`,
      );
    }

    // Header-only types carry no data whatever the size field says (as in Go's archive/tar).
    let stored = type === 'file' || typeflag === TYPEFLAG.gnuDumpDir ? size : 0;
    let sparse: SparseChunk[] | undefined;
    let logical = type === 'file' ? size : 0;

    if (typeflag === TYPEFLAG.gnuSparse) {
      if (!gnu) throw tarError(this.label, offset, 'GNU sparse member without GNU magic');
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
      readMap(block, GNU_SPARSE.map.offset, GNU_SPARSE.map.length / GNU_SPARSE.pairLength);
      let extended = block[GNU_SPARSE.isExtended.offset] !== 0;
      while (extended) {
        const ext = await this.source.read(BLOCK_SIZE);
        if (ext.byteLength < BLOCK_SIZE) throw this.truncated();
        readMap(ext, 0, GNU_SPARSE.extensionPairs);
        extended = ext[GNU_SPARSE.extensionIsExtended] !== 0;
      }
      const realSize = parseNumber(block, GNU_SPARSE.realSize);
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
        const map = await this.readSparse10Map(offset);
        values = map.values;
        stored = size - map.mapBytes;
        if (stored < 0) throw tarError(this.label, offset, 'sparse map larger than the member');
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
    this.padding = paddingOf(stored);
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
  private async readSparse10Map(offset: number): Promise<{ values: number[]; mapBytes: number }> {
    let text = '';
    let mapBytes = 0;
    const numbers: number[] = [];
    let expected: number | undefined;
    for (;;) {
      const block = await this.source.read(BLOCK_SIZE);
      if (block.byteLength < BLOCK_SIZE) throw this.truncated();
      mapBytes += BLOCK_SIZE;
      if (mapBytes > MAX_META_SIZE) throw tarError(this.label, offset, 'sparse map is absurdly large');
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
