import { TarFormatError } from './errors.ts';
import {
  BLOCK_SIZE,
  checksumOk,
  decodeHeader,
  entryTypeOf,
  FIELDS,
  formatOf,
  GNU_SPARSE,
  isExtensionTypeflag,
  isZeroBlock,
  paddingOf,
  parseNumber,
  type TarEntryType,
  type TarHeader,
  TYPEFLAG,
} from './header.ts';
import { type PaxRecord, parsePax, paxInteger } from './pax.ts';

/**
 * Where {@link TarMembers} reads a tar from: a stream consumed in order (a layer being
 * decompressed) or a file read by position (a `docker save` archive, whose member data is
 * passed over without reading it). The caller brings the I/O; this package stays free of it.
 */
export interface TarInput {
  /** Bytes consumed so far: the position in the tar. */
  readonly offset: number;
  /**
   * The next `length` bytes, fewer only where the input ends. The result may be a view that is
   * valid until the next call (what the iterator keeps, it copies).
   */
  read(length: number): Promise<Uint8Array>;
  /** Passes over `length` bytes; returns how many there were (fewer where the input ends). */
  skip(length: number): Promise<number>;
}

/** One tar member with the records before it folded in: what both of irb's tar readers need. */
export interface TarMemberHeader {
  /** Offset of the member's first block: its first extension record, else its header. */
  offset: number;
  /** Offset of the member's own header block. */
  headerOffset: number;
  /** The member's own header block, decoded; its fields are before any PAX or GNU record. */
  header: TarHeader;
  /** The raw header block (GNU's old sparse map sits in it). */
  block: Uint8Array;
  /** The name: PAX `path`, else GNU long name, else the header's (ustar prefix joined). Exact bytes, never a NUL. */
  name: Uint8Array;
  /** The link target: PAX `linkpath`, else GNU long link, else the header's. Exact bytes, never a NUL. */
  linkname: Uint8Array;
  /** PAX `size`, else the header's size field: what the member's data holds. */
  size: number;
  /** The entry type ({@link entryTypeOf}); `undefined` for a typeflag no container runtime unpacks. */
  type: TarEntryType | undefined;
  /** Every PAX record of the member's extended headers (global ones excluded), in order. */
  pax: readonly PaxRecord[];
  /** The extension blocks of a GNU old-format sparse member (typeflag `S`), which sit before its data. */
  sparseExtensions: readonly Uint8Array[];
  /** Offset of the member's data. */
  dataOffset: number;
  /**
   * Bytes of data stored after the header (before padding): `size`, except 0 for the types Go's
   * archive/tar treats as header-only (hard links, symlinks, devices, directories, FIFOs).
   */
  stored: number;
}

/** Largest PAX or GNU long-name record, or GNU sparse extension, accepted; real ones are a few KiB. */
export const MAX_EXTENSION_SIZE = 1024 * 1024;

/** Typeflags whose size field says nothing of the data: there is none (Go's `isHeaderOnlyType`). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
const SPARSE_TYPEFLAG = TYPEFLAG.gnuSparse.charCodeAt(0);

/**
 * Walks a tar's members one after the other, folding PAX extended headers (`path`, `linkpath`,
 * `size`) and GNU long names and link targets into the member they precede, and reading the
 * extension blocks of GNU old-format sparse members. Global PAX headers and volume labels are
 * passed over, as Go's archive/tar (and so Docker, containerd and umoci) does. Between two calls
 * of {@link next} the caller may read the member's data from the same input, up to `stored`
 * bytes; whatever it leaves, and the padding, is skipped. Names are never decoded.
 *
 * Throws {@link TarFormatError} with the offset of what is wrong: a bad checksum, a field that is
 * not a number, a malformed PAX record, a NUL byte in a PAX name, an extension record without a
 * member or over {@link MAX_EXTENSION_SIZE}; `truncated` is set when the tar stops inside a
 * member. A tar that simply stops at a member boundary ends like one with its zero blocks.
 */
export class TarMembers {
  readonly #input: TarInput;
  /** Where the current member's data and padding end: the next header starts there. */
  #end = 0;
  #ended = false;

  constructor(input: TarInput) {
    this.#input = input;
  }

  /** The next member, or `undefined` at the end of the archive (its zero block, or the end of the input). */
  async next(): Promise<TarMemberHeader | undefined> {
    if (this.#ended) return undefined;
    const input = this.#input;
    if (input.offset > this.#end) throw new Error('the caller read past the member data');
    const left = this.#end - input.offset;
    if (left > 0 && (await input.skip(left)) < left) throw truncated(input.offset);

    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    let pax: PaxRecord[] = [];
    let pending = false;
    let first: number | undefined;
    for (;;) {
      const offset = input.offset;
      const block = await input.read(BLOCK_SIZE);
      if (block.byteLength === 0) {
        if (pending) throw truncated(offset);
        this.#ended = true;
        return undefined;
      }
      if (block.byteLength < BLOCK_SIZE) throw truncated(input.offset);
      if (isZeroBlock(block)) {
        if (pending) throw new TarFormatError('extended header without a member', { offset });
        this.#ended = true;
        return undefined;
      }
      if (!checksumOk(block)) throw new TarFormatError('bad header checksum', { offset });
      first ??= offset;
      const typeflag = String.fromCharCode(block[FIELDS.typeflag.offset] as number);
      if (!isExtensionTypeflag(typeflag)) {
        return this.#member(block, offset, first, { longName, longLink, pax });
      }
      // Extension records are judged by their size alone, as Go does: their other fields are noise.
      const size = parseNumber(block, FIELDS.size);
      if (size === undefined || size < 0) throw new TarFormatError('invalid size field', { offset });
      if (size > MAX_EXTENSION_SIZE) {
        throw new TarFormatError(`extended header of ${size} bytes is absurdly large`, { offset });
      }
      const data = await this.#payload(size);
      if (typeflag === TYPEFLAG.gnuLongName || typeflag === TYPEFLAG.gnuLongLink) {
        const nul = data.indexOf(0);
        const value = nul === -1 ? data : data.subarray(0, nul);
        if (typeflag === TYPEFLAG.gnuLongName) longName = value;
        else longLink = value;
        pending = true;
      } else if (typeflag === TYPEFLAG.pax) {
        pax = [...pax, ...located(offset, () => parsePax(data))];
        pending = true;
      }
      // Global PAX headers (git archive's comment) and volume labels describe no member.
    }
  }

  /** An extension record's data (a copy: the input's bytes may be reused) and its padding. */
  async #payload(size: number): Promise<Uint8Array> {
    const input = this.#input;
    const data = await input.read(size);
    if (data.byteLength < size) throw truncated(input.offset);
    const pad = paddingOf(size);
    if ((await input.skip(pad)) < pad) throw truncated(input.offset);
    return data.slice();
  }

  async #member(
    block: Uint8Array,
    headerOffset: number,
    offset: number,
    folded: { longName: Uint8Array | undefined; longLink: Uint8Array | undefined; pax: PaxRecord[] },
  ): Promise<TarMemberHeader> {
    const input = this.#input;
    const sparse = block[FIELDS.typeflag.offset] === SPARSE_TYPEFLAG && formatOf(block) === 'gnu';
    // Its extension blocks are read next, over input bytes the header's views may point into.
    if (sparse && block[GNU_SPARSE.isExtended.offset] !== 0) block = block.slice();
    const header = located(offset, () => decodeHeader(block));
    let name = folded.longName ?? header.name;
    let linkname = folded.longLink ?? header.linkname;
    let size = header.size;
    for (const { key, value } of folded.pax) {
      if (key === 'path') name = value;
      else if (key === 'linkpath') linkname = value;
      else if (key === 'size') size = located(offset, () => paxInteger(value, key));
    }
    if (size < 0) throw new TarFormatError('negative size', { offset });

    const sparseExtensions: Uint8Array[] = [];
    for (let more = sparse && block[GNU_SPARSE.isExtended.offset] !== 0; more; ) {
      const extension = await input.read(BLOCK_SIZE);
      if (extension.byteLength < BLOCK_SIZE) throw truncated(input.offset);
      if ((sparseExtensions.length + 1) * BLOCK_SIZE > MAX_EXTENSION_SIZE) {
        throw new TarFormatError('sparse map is absurdly large', { offset });
      }
      sparseExtensions.push(extension.slice());
      more = extension[GNU_SPARSE.extensionIsExtended] !== 0;
    }

    const stored = HEADER_ONLY.has(header.typeflag) ? 0 : size;
    const dataOffset = input.offset;
    this.#end = dataOffset + stored + paddingOf(stored);
    return {
      offset,
      headerOffset,
      header,
      block,
      name,
      linkname,
      size,
      type: entryTypeOf(header.typeflag, name),
      pax: folded.pax,
      sparseExtensions,
      dataOffset,
      stored,
    };
  }
}

function truncated(offset: number): TarFormatError {
  return new TarFormatError('the tar ends inside a member', { offset, truncated: true });
}

/** Runs a decoder, giving the {@link TarFormatError} it throws the offset it is about. */
function located<T>(offset: number, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof TarFormatError && error.offset === undefined) {
      throw new TarFormatError(error.problem, { offset, truncated: error.truncated });
    }
    throw error;
  }
}
