import type { FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { IrbError } from '@irb/errors';
import {
  type TarEntryType,
  TarFormatError,
  type TarInput,
  type TarMemberHeader,
  TarMembers,
  TYPEFLAG,
  utf8OrUndefined,
} from '@irb/tar';
import type { OpenOptions } from '../types.ts';
import { openRegularFile, type RegularFile, readRange } from './files.ts';

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

/** A tar file read by position: member data is passed over without reading it. */
function fileInput(handle: FileHandle, fileSize: number): TarInput {
  let offset = 0;
  return {
    get offset() {
      return offset;
    },
    async read(length) {
      const buffer = new Uint8Array(Math.max(0, Math.min(length, fileSize - offset)));
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, offset);
      offset += bytesRead;
      return buffer.subarray(0, bytesRead);
    },
    async skip(length) {
      const skipped = Math.max(0, Math.min(length, fileSize - offset));
      offset += skipped;
      return skipped;
    },
  };
}

/**
 * Indexes a tar file by walking its headers and seeking over member data, so indexing a
 * multi-gigabyte `docker save` archive reads a few kilobytes instead of the whole file. Members
 * come from `@irb/tar`'s iterator (ustar, GNU `L`/`K` long names, base-256 numbers, PAX `path`,
 * `linkpath`, `size`), each header's checksum checked. Members can then be streamed by byte range.
 *
 * Member names are looked up by the text manifest.json and index.json hold, so they are read as
 * UTF-8. A name (or link target) whose bytes are not UTF-8 cannot be named by those documents:
 * such a member is left out of the index rather than decoded lossily, where two different names
 * could collapse into one U+FFFD-ridden key and one shadow the other.
 */
export async function indexTar(file: string, options: OpenOptions = {}): Promise<TarIndex> {
  let opened: RegularFile;
  try {
    opened = await openRegularFile(file, 'tar archive');
  } catch (error) {
    if (error instanceof IrbError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      code === 'ENOENT' ? 'IRB_SOURCE_NOT_FOUND' : 'IRB_SOURCE_INVALID',
      code === 'ENOENT'
        ? `archive ${file} does not exist; check the path`
        : `cannot open archive ${file} (${code})`,
      { cause: error },
    );
  }
  const { handle } = opened;
  const members = new Map<string, TarMember>();
  try {
    const fileSize = opened.size;
    const invalid = (why: string) =>
      new IrbError(
        'IRB_SOURCE_INVALID',
        `${file} is not a readable tar archive (${why}); produce it with docker save or skopeo copy ... docker-archive:FILE`,
      );
    const tar = new TarMembers(fileInput(handle, fileSize));
    for (;;) {
      options.signal?.throwIfAborted();
      let header: TarMemberHeader | undefined;
      try {
        header = await tar.next();
      } catch (error) {
        if (!(error instanceof TarFormatError)) throw error;
        throw invalid(
          error.truncated
            ? `it ends inside a member, at byte ${error.offset}`
            : `${error.problem} at byte ${error.offset}`,
        );
      }
      if (!header) break;
      const { type, stored } = header;
      const name = utf8OrUndefined(header.name);
      const linkname = header.linkname.byteLength > 0 ? utf8OrUndefined(header.linkname) : undefined;
      // A GNU sparse member's data is not its content; `docker save` never writes one.
      if (type !== undefined && name !== undefined && header.header.typeflag !== TYPEFLAG.gnuSparse) {
        const member: TarMember = {
          name: normalizeMemberName(name),
          type,
          offset: header.dataOffset,
          size: stored,
        };
        if (linkname !== undefined) member.linkname = linkname;
        members.set(member.name, member);
      }
    }
  } finally {
    await handle.close();
  }
  return createTarIndex(file, opened, members);
}

function createTarIndex(file: string, indexed: RegularFile, members: Map<string, TarMember>): TarIndex {
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
    // Opened again by name: it must still be the regular file that was indexed, long enough.
    const opened = await openRegularFile(file, 'tar archive');
    try {
      if (
        opened.dev !== indexed.dev ||
        opened.ino !== indexed.ino ||
        opened.size < member.offset + member.size
      ) {
        throw new IrbError(
          'IRB_SOURCE_INVALID',
          `archive ${file} was replaced or truncated after it was opened; run again on an archive nothing writes to`,
        );
      }
      yield* readRange(opened.handle, member.offset, member.size, options.signal);
    } finally {
      await opened.handle.close();
    }
  }

  const read = async (member: TarMember, options?: OpenOptions): Promise<Uint8Array> => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream(member, options)) chunks.push(chunk);
    return Buffer.concat(chunks);
  };

  return { file, members, resolve, stream, read };
}
