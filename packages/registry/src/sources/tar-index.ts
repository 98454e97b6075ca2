import { createReadStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { posix } from 'node:path';
import { IrbError } from '@irb/errors';
import {
  BLOCK_SIZE,
  checksumOk,
  cString,
  decodeHeader,
  entryTypeOf,
  FIELDS,
  isZeroBlock,
  type PaxRecord,
  paddingOf,
  parseNumber,
  parsePax,
  paxInteger,
  type TarEntryType,
  TarFormatError,
  TYPEFLAG,
  utf8OrUndefined,
} from '@irb/tar';
import type { OpenOptions } from '../types.ts';

/** Where one member's bytes sit inside a tar file. */
export interface TarMember {
  /** Normalized name (`./` and trailing `/` removed), the member's name bytes read as UTF-8. */
  name: string;
  /** `file`, `directory`, `symlink`, `link` (hard link), `char`, `block` or `fifo`: `@irb/cpio`'s words. */
  type: TarEntryType;
  /** Byte offset of the member's data in the tar file. */
  offset: number;
  size: number;
  /** Symlink or hard link target, as written. */
  linkname?: string;
}

/** An index of a tar file's members, for reading them later by byte range without re-reading the tar. */
export interface TarIndex {
  readonly file: string;
  readonly members: ReadonlyMap<string, TarMember>;
  /** The regular-file member `name` stands for, following symlinks and hard links inside the tar. */
  resolve(name: string): TarMember | undefined;
  /** A new stream of a member's bytes, read straight from its byte range. */
  stream(member: TarMember, options?: OpenOptions): AsyncIterable<Uint8Array>;
  /** A member's bytes in memory (for small JSON documents). */
  read(member: TarMember, options?: OpenOptions): Promise<Uint8Array>;
}

/** Normalizes a member name the way docker and skopeo write and look them up. */
export function normalizeMemberName(name: string): string {
  const normal = posix.normalize(name.replace(/^\.\/+/, '')).replace(/\/+$/, '');
  return normal === '.' ? '' : normal;
}

/** Long-header payloads are names and a few records; anything bigger is a damaged archive. */
const MAX_LONG_HEADER = 1 << 20;

/**
 * Indexes a tar file by walking its headers and seeking over member data, so indexing a
 * multi-gigabyte `docker save` archive reads a few kilobytes instead of the whole file. Headers
 * are decoded by `@irb/tar` (ustar, GNU `L`/`K` long names, base-256 numbers, PAX `path`,
 * `linkpath`, `size`), each header's checksum checked. Members can then be streamed by byte range.
 *
 * Member names are looked up by the text manifest.json and index.json hold, so they are read as
 * UTF-8. A name (or link target) whose bytes are not UTF-8 cannot be named by those documents:
 * such a member is left out of the index rather than decoded lossily, where two different names
 * could collapse into one U+FFFD-ridden key and one shadow the other.
 */
export async function indexTar(file: string, options: OpenOptions = {}): Promise<TarIndex> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      code === 'ENOENT' ? 'IRB_SOURCE_NOT_FOUND' : 'IRB_SOURCE_INVALID',
      code === 'ENOENT'
        ? `archive ${file} does not exist; check the path`
        : `cannot open archive ${file} (${code})`,
      { cause: error },
    );
  }
  const members = new Map<string, TarMember>();
  try {
    const { size: fileSize } = await handle.stat();
    const invalid = (why: string) =>
      new IrbError(
        'IRB_SOURCE_INVALID',
        `${file} is not a readable tar archive (${why}); produce it with docker save or skopeo copy ... docker-archive:FILE`,
      );
    const readAt = async (position: number, length: number): Promise<Uint8Array> => {
      const buffer = new Uint8Array(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      if (bytesRead !== length)
        throw invalid(`truncated at byte ${position + bytesRead} of ${position + length}`);
      return buffer;
    };
    const decoded = <T>(position: number, decode: () => T): T => {
      try {
        return decode();
      } catch (error) {
        if (error instanceof TarFormatError)
          throw invalid(`${error.problem} in the header at byte ${position}`);
        throw error;
      }
    };

    let position = 0;
    let pax: PaxRecord[] = [];
    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    while (position + BLOCK_SIZE <= fileSize) {
      options.signal?.throwIfAborted();
      const header = await readAt(position, BLOCK_SIZE);
      if (isZeroBlock(header)) break; // end-of-archive marker
      if (!checksumOk(header)) throw invalid(`bad header checksum at byte ${position}`);
      const typeflag = String.fromCharCode(header[FIELDS.typeflag.offset] as number);
      const dataOffset = position + BLOCK_SIZE;

      if (
        typeflag === TYPEFLAG.pax ||
        typeflag === TYPEFLAG.paxGlobal ||
        typeflag === TYPEFLAG.gnuLongName ||
        typeflag === TYPEFLAG.gnuLongLink ||
        typeflag === TYPEFLAG.gnuVolume
      ) {
        const size = parseNumber(header, FIELDS.size);
        if (size === undefined || size < 0) throw invalid(`bad size in header at byte ${position}`);
        if (size > MAX_LONG_HEADER) throw invalid(`oversized extended header at byte ${position}`);
        if (dataOffset + size > fileSize)
          throw invalid(`member data runs past the end of the file at byte ${position}`);
        const payload = await readAt(dataOffset, size);
        if (typeflag === TYPEFLAG.pax) pax = [...pax, ...decoded(position, () => parsePax(payload))];
        else if (typeflag === TYPEFLAG.gnuLongName) longName = cString(payload, { offset: 0, length: size });
        else if (typeflag === TYPEFLAG.gnuLongLink) longLink = cString(payload, { offset: 0, length: size });
        // Global PAX records (git archive's comment) and volume labels name no member.
        position = dataOffset + size + paddingOf(size);
        continue;
      }

      const fields = decoded(position, () => decodeHeader(header));
      let nameBytes = longName ?? fields.name;
      let linkBytes = longLink ?? fields.linkname;
      let size = fields.size;
      for (const { key, value } of pax) {
        if (key === 'path') nameBytes = value;
        else if (key === 'linkpath') linkBytes = value;
        else if (key === 'size') size = decoded(position, () => paxInteger(value, key));
      }
      if (!Number.isSafeInteger(size) || size < 0) throw invalid(`bad size in header at byte ${position}`);
      const type = entryTypeOf(typeflag, nameBytes);
      // Only regular files and GNU dump directories store data; other types store none whatever the size says.
      const stored = type === 'file' || typeflag === TYPEFLAG.gnuDumpDir ? size : 0;
      if (dataOffset + stored > fileSize)
        throw invalid(`member data runs past the end of the file at byte ${position}`);
      const name = utf8OrUndefined(nameBytes);
      const linkname = linkBytes.byteLength > 0 ? utf8OrUndefined(linkBytes) : undefined;
      // A GNU sparse member's data is not its content; `docker save` never writes one.
      if (type !== undefined && name !== undefined && typeflag !== TYPEFLAG.gnuSparse) {
        const member: TarMember = { name: normalizeMemberName(name), type, offset: dataOffset, size: stored };
        if (linkname !== undefined) member.linkname = linkname;
        members.set(member.name, member);
      }
      pax = [];
      longName = undefined;
      longLink = undefined;
      position = dataOffset + stored + paddingOf(stored);
    }
  } finally {
    await handle.close();
  }
  return createTarIndex(file, members);
}

function createTarIndex(file: string, members: Map<string, TarMember>): TarIndex {
  const resolve = (name: string): TarMember | undefined => {
    let current = members.get(normalizeMemberName(name));
    for (let hops = 0; current && hops < 16; hops++) {
      if (current.type === 'file') return current;
      if (current.type === 'symlink' && current.linkname !== undefined) {
        const target = current.linkname.startsWith('/')
          ? current.linkname
          : posix.join(posix.dirname(current.name), current.linkname);
        current = members.get(normalizeMemberName(target));
      } else if (current.type === 'link' && current.linkname !== undefined) {
        current = members.get(normalizeMemberName(current.linkname));
      } else {
        return undefined;
      }
    }
    return undefined;
  };

  async function* stream(
    member: TarMember,
    options: OpenOptions = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    options.signal?.throwIfAborted();
    if (member.size === 0) return;
    const input = createReadStream(file, {
      start: member.offset,
      end: member.offset + member.size - 1,
      highWaterMark: 1 << 20,
      ...(options.signal && { signal: options.signal }),
    });
    try {
      for await (const chunk of input) yield chunk as Uint8Array;
    } finally {
      input.destroy();
    }
  }

  const read = async (member: TarMember, options?: OpenOptions): Promise<Uint8Array> => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream(member, options)) chunks.push(chunk);
    return Buffer.concat(chunks);
  };

  return { file, members, resolve, stream, read };
}
