import { createReadStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { posix } from 'node:path';
import { IrbError } from '@irb/errors';
import type { OpenOptions } from '../types.ts';

/** Where one member's bytes sit inside a tar file. */
export interface TarMember {
  /** Normalized name (`./` and trailing `/` removed). */
  name: string;
  /** As tar-stream names them: `file`, `directory`, `symlink`, `link`, `character-device`, … */
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

const BLOCK = 512;
const TYPES: Record<string, string> = {
  '': 'file',
  '0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous-file',
  x: 'pax-header',
  g: 'pax-global-header',
  L: 'gnu-long-path',
  K: 'gnu-long-link-path',
};
/** Long-header payloads are names and a few records; anything bigger is a damaged archive. */
const MAX_LONG_HEADER = 1 << 20;

/**
 * Indexes a tar file by walking its headers and seeking over member data, so indexing a
 * multi-gigabyte `docker save` archive reads a few kilobytes instead of the whole file. Reads
 * ustar, GNU (`L`/`K` long names, base-256 sizes) and PAX (`path`, `linkpath`, `size`) headers,
 * checking each header's checksum. Members can then be streamed by byte range.
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

    let position = 0;
    let pax: Record<string, string> = {};
    let longName: string | undefined;
    let longLink: string | undefined;
    while (position + BLOCK <= fileSize) {
      options.signal?.throwIfAborted();
      const header = await readAt(position, BLOCK);
      if (header.every((b) => b === 0)) break; // end-of-archive marker
      if (!checksumOk(header)) throw invalid(`bad header checksum at byte ${position}`);
      const flag = String.fromCharCode(header[156] as number).replace('\0', '');
      const type = TYPES[flag] ?? 'file';
      let size = parseNumber(header.subarray(124, 136));
      if (pax.size !== undefined && type !== 'pax-header' && type !== 'pax-global-header')
        size = Number(pax.size);
      if (!Number.isSafeInteger(size) || size < 0) throw invalid(`bad size in header at byte ${position}`);
      const dataOffset = position + BLOCK;
      const dataBlocks = type === 'directory' ? 0 : Math.ceil(size / BLOCK) * BLOCK;
      if (dataOffset + size > fileSize)
        throw invalid(`member data runs past the end of the file at byte ${position}`);

      if (
        type === 'pax-header' ||
        type === 'pax-global-header' ||
        type === 'gnu-long-path' ||
        type === 'gnu-long-link-path'
      ) {
        if (size > MAX_LONG_HEADER) throw invalid(`oversized extended header at byte ${position}`);
        const payload = await readAt(dataOffset, size);
        if (type === 'pax-header') pax = { ...pax, ...parsePax(payload) };
        else if (type === 'gnu-long-path') longName = cString(payload);
        else if (type === 'gnu-long-link-path') longLink = cString(payload);
        // Global PAX records (git archive's comment) name no member and change nothing we read.
      } else {
        const magic = new TextDecoder().decode(header.subarray(257, 263));
        const prefix = magic === 'ustar\0' ? cString(header.subarray(345, 500)) : '';
        const rawName = cString(header.subarray(0, 100));
        const name = pax.path ?? longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
        const linkname = pax.linkpath ?? longLink ?? cString(header.subarray(157, 257));
        const member: TarMember = { name: normalizeMemberName(name), type, offset: dataOffset, size };
        if (linkname) member.linkname = linkname;
        members.set(member.name, member);
        pax = {};
        longName = undefined;
        longLink = undefined;
      }
      position = dataOffset + dataBlocks;
    }
  } finally {
    await handle.close();
  }
  return createTarIndex(file, members);
}

function checksumOk(header: Uint8Array): boolean {
  const stored = parseNumber(header.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** An octal field, or GNU's base-256 form (high bit set) for values that do not fit. */
function parseNumber(field: Uint8Array): number {
  if (((field[0] as number) & 0x80) !== 0) {
    let value = (field[0] as number) & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] as number);
    return value;
  }
  const text = new TextDecoder().decode(field).replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : Number.parseInt(text, 8);
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end === -1 ? bytes : bytes.subarray(0, end));
}

/** PAX records: `<length> <key>=<value>\n`, length counting the whole record. */
function parsePax(payload: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < payload.length) {
    const space = payload.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number.parseInt(new TextDecoder().decode(payload.subarray(at, space)), 10);
    if (!Number.isSafeInteger(length) || length <= 0 || at + length > payload.length) break;
    const record = new TextDecoder().decode(payload.subarray(space + 1, at + length - 1));
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
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
