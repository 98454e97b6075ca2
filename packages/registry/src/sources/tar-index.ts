import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { IrbError } from '@irb/cpio';
import { extract } from 'tar-stream';
import type { OpenOptions } from '../types.ts';

/** Where one member's bytes sit inside a tar file. */
export interface TarMember {
  /** Normalized name (`./` and trailing `/` removed). */
  name: string;
  type: string;
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

/**
 * Reads a tar file's headers once with tar-stream and records where each member's data starts,
 * so members can be streamed later with a plain ranged file read. The data itself is skipped.
 */
export async function indexTar(file: string, options: OpenOptions = {}): Promise<TarIndex> {
  const members = new Map<string, TarMember>();
  const parser = extract();
  const source = createReadStream(file, {
    highWaterMark: 1 << 20,
    ...(options.signal && { signal: options.signal }),
  });
  const collect = (async () => {
    for await (const entry of parser) {
      const header = entry.header;
      // tar-stream reports where the entry's own 512-byte header starts; its data follows it.
      const member: TarMember = {
        name: normalizeMemberName(header.name),
        type: header.type ?? 'file',
        offset: entry.offset + 512,
        size: header.size ?? 0,
      };
      if (header.linkname) member.linkname = header.linkname;
      members.set(member.name, member);
      entry.resume();
    }
  })();
  try {
    await Promise.all([pipeline(source, parser), collect]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new IrbError('IRB_SOURCE_NOT_FOUND', `archive ${file} does not exist; check the path`, {
        cause: error,
      });
    }
    if (code === 'ABORT_ERR' || options.signal?.aborted) throw error;
    throw new IrbError(
      'IRB_INVALID_ARCHIVE',
      `${file} is not a readable tar archive (${(error as Error).message}); produce it with docker save or skopeo copy ... docker-archive:FILE`,
      { cause: error },
    );
  }
  return createTarIndex(file, members);
}

function createTarIndex(file: string, members: Map<string, TarMember>): TarIndex {
  const resolve = (name: string): TarMember | undefined => {
    let current = members.get(normalizeMemberName(name));
    for (let hops = 0; current && hops < 16; hops++) {
      if (current.type === 'file' || current.type === 'contiguous-file') return current;
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
