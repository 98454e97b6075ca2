import { BLOCK_SIZE, FIELDS, paddingOf } from '../src/header.ts';
import type { TarInput } from '../src/members.ts';

/*
 * Tar blocks written field by field, independently of the decoders under test, for the hostile
 * and edge cases no tar program writes.
 */

/** Bytes of ASCII text. */
export const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));

/** POSIX magic and version. */
export const USTAR = { magic: 'ustar\0', version: '00' };
/** GNU magic and version (one 8-byte field in GNU's view). */
export const GNU = { magic: 'ustar ', version: ' \0' };
/** Mode, owner, size (10 bytes) and mtime of an ordinary member. */
export const base = {
  mode: '0000644\0',
  uid: '0001750\0',
  gid: '0001750\0',
  size: '00000000012\0',
  mtime: '14172410000\0',
};

/** A header block with the given fields and a correct checksum. */
export function header(fields: Partial<Record<keyof typeof FIELDS, Uint8Array | string>>): Uint8Array {
  const block = new Uint8Array(BLOCK_SIZE);
  for (const [key, value] of Object.entries(fields)) {
    const { offset, length } = FIELDS[key as keyof typeof FIELDS];
    block.set((typeof value === 'string' ? ascii(value) : value).subarray(0, length), offset);
  }
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.set(ascii(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
  return block;
}

/** One PAX record, `<len> key=value\n`, the length counting itself; text as UTF-8. */
export function paxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const utf8 = new TextEncoder();
  const bytes = typeof value === 'string' ? utf8.encode(value) : value;
  const body = new Uint8Array([...utf8.encode(` ${key}=`), ...bytes, 0x0a]);
  let length = body.byteLength + 1;
  while (String(length).length + body.byteLength !== length) length = String(length).length + body.byteLength;
  return new Uint8Array([...ascii(String(length)), ...body]);
}

/** A size field: 11 octal digits and a NUL. */
export const sizeField = (size: number) => `${size.toString(8).padStart(11, '0')}\0`;

/** A header followed by `data` padded to the block size. */
export function withData(block: Uint8Array, data: Uint8Array): Uint8Array {
  return concat(block, data, new Uint8Array(paddingOf(data.byteLength)));
}

/** Byte arrays one after the other. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/**
 * A tar in memory as a {@link TarInput} handing out views of at most `chunk` bytes at a time and
 * then overwriting them, as a decompressor reusing its buffer would: what the iterator keeps
 * past a read must be its own copy.
 */
export function memoryInput(tar: Uint8Array, chunk = 100): TarInput {
  const scratch = new Uint8Array(Math.max(chunk, BLOCK_SIZE));
  let offset = 0;
  return {
    get offset() {
      return offset;
    },
    async read(length) {
      scratch.fill(0xee);
      const out = length <= scratch.byteLength ? scratch.subarray(0, length) : new Uint8Array(length);
      const got = tar.subarray(offset, offset + length);
      out.set(got);
      offset += got.byteLength;
      return out.subarray(0, got.byteLength);
    },
    async skip(length) {
      const skipped = Math.min(length, tar.byteLength - offset);
      offset += skipped;
      return skipped;
    },
  };
}
