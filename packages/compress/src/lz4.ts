import { createRequire } from 'node:module';
import { IrbError } from '@irb/errors';
import type * as Lz4Napi from 'lz4-napi';
import { blocksOf } from './gzip.ts';
import { inOrder } from './ordered.ts';
import type { ByteReader } from './reader.ts';

/** First word (little endian) of an lz4 legacy stream, the only lz4 format the kernel reads. */
export const LZ4_LEGACY_MAGIC = 0x184c2102;

/**
 * Input bytes per lz4 block. The legacy format has no block-size field: the kernel
 * (lib/decompress_unlz4.c) decodes every block into an 8 MiB buffer, and `lz4 -l` writes
 * 8 MiB blocks. Part of the output format: changing it changes the bytes.
 */
export const LZ4_BLOCK_SIZE = 8 * 1024 * 1024;

/** LZ4_compressBound(8 MiB): no compressor writes a longer block for an 8 MiB input. */
const LZ4_MAX_BLOCK = LZ4_BLOCK_SIZE + Math.floor(LZ4_BLOCK_SIZE / 255) + 16;

/** The lz4 frame format's magic (`lz4` without `-l`), which the kernel does not read. */
const LZ4_FRAME_MAGIC = 0x184d2204;

const require = createRequire(import.meta.url);
let library: typeof Lz4Napi | undefined;

/**
 * lz4-napi, loaded on first use so that gzip and zstd keep working on a platform that has
 * no prebuilt lz4-napi binary.
 */
function lz4Library(): typeof Lz4Napi {
  if (library) return library;
  try {
    library = require('lz4-napi') as typeof Lz4Napi;
  } catch (error) {
    throw new IrbError(
      'IRB_COMPRESSOR_UNAVAILABLE',
      `lz4 needs the lz4-napi package with its prebuilt binary for ${process.platform}-${process.arch}, which did not load (${error instanceof Error ? error.message : String(error)}); reinstall with optional dependencies enabled, or use gzip or zstd`,
      { cause: error },
    );
  }
  return library;
}

function le32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

function readLe32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
}

/**
 * One raw lz4 block, compressed on libuv's thread pool, or on this thread with `sync` (the same
 * bytes: for a stream of one block there is nothing to overlap, and a round trip through the
 * pool costs more than compressing a 1 MiB block, about 0.2 ms).
 */
async function compressBlock(lz4: typeof Lz4Napi, data: Uint8Array, sync = false): Promise<Uint8Array> {
  const out = sync
    ? lz4.compressSync(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    : await lz4.compress(data);
  // lz4-napi returns lz4_flex's compress_prepend_size layout: the input length as LE32,
  // then the raw block. Checked, so that a change of layout fails loudly, not silently.
  if (out.length < 5 || out.readUInt32LE(0) !== data.length) {
    throw new IrbError(
      'IRB_COMPRESSOR_UNAVAILABLE',
      'lz4-napi returned a block without its size prefix; irb expects lz4-napi 2.x (lz4_flex compress_prepend_size) — install a 2.x version',
    );
  }
  return new Uint8Array(out.buffer, out.byteOffset + 4, out.length - 4);
}

/**
 * The kernel's legacy lz4 format: the magic, then for every 8 MiB of input (the last
 * part shorter) its compressed length (LE32) and the raw lz4 block. Blocks are independent,
 * so up to `2 × threads` of them are compressed at once on libuv's thread pool, and the
 * bytes do not depend on the thread count or the input chunking. With `endMark`, a zero
 * length word ends the stream (padded with NULs to a multiple of 4 bytes): the kernel
 * stops an lz4 member only at the end of the input or at such a word, so without it any
 * member appended later would be read as more lz4 blocks.
 */
export function lz4Stream(
  source: AsyncIterable<Uint8Array>,
  threads: number,
  endMark: boolean,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  // Loaded now, so a missing binary fails the call before any output is opened.
  return lz4Blocks(lz4Library(), source, threads, endMark, signal);
}

async function* lz4Blocks(
  lz4: typeof Lz4Napi,
  source: AsyncIterable<Uint8Array>,
  threads: number,
  endMark: boolean,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  yield le32(LZ4_LEGACY_MAGIC);
  let length = 4;
  // Two 8 MiB blocks per thread keep the pool busy while the consumer drains the oldest.
  const window = threads <= 1 ? 1 : threads * 2;
  const blocks = blocksOf(source, LZ4_BLOCK_SIZE);
  let first = true;
  const compressed = inOrder(
    blocks,
    window,
    (data) => {
      const only = first && data.length < LZ4_BLOCK_SIZE;
      first = false;
      if (data.length === 0) return undefined;
      return { result: compressBlock(lz4, data, only), done: data.length < LZ4_BLOCK_SIZE };
    },
    signal,
  );
  for await (const block of compressed) {
    yield le32(block.length);
    yield block;
    length += 4 + block.length;
  }
  if (endMark) yield new Uint8Array(4 + ((4 - (length % 4)) % 4));
}

function corrupt(label: string, what: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_LZ4_CORRUPT',
    `corrupt lz4 data in ${label}: ${what}; the data is damaged or not lz4 legacy format — fetch or build it again`,
    cause === undefined ? undefined : { cause },
  );
}

function truncated(label: string, what: string): IrbError {
  return new IrbError(
    'IRB_LZ4_TRUNCATED',
    `lz4 data in ${label} ends too early (${what}); the data is truncated — fetch or build it again`,
  );
}

/**
 * Decodes one lz4 legacy stream from `reader` as the kernel's unlz4 reads it: after the magic,
 * blocks until the end of the input, a zero length word, or the magic word again. The kernel
 * reads on past a magic word (streams written back to back are one stream to it); stopping
 * there instead lets a caller count each stream, with the same bytes decoded. The zero word,
 * the next magic and whatever follows stay in `reader` (for an initramfs a zero word ends the
 * member: NUL padding before the next one). Every block must decode to at most 8 MiB, the
 * kernel's buffer.
 */
export async function* unlz4Legacy(reader: ByteReader, label: string): AsyncGenerator<Uint8Array> {
  const lz4 = lz4Library();
  const start = reader.position;
  const magic = await reader.read(4);
  if (magic.length < 4) throw truncated(label, 'in its magic number');
  const word = readLe32(magic);
  if (word === LZ4_FRAME_MAGIC) {
    throw new IrbError(
      'IRB_COMPRESSION_UNSUPPORTED',
      `${label} is in the lz4 frame format, which the kernel does not read; irb reads lz4's legacy format — recompress it with \`lz4 -l\` or irb`,
    );
  }
  if (word !== LZ4_LEGACY_MAGIC) throw corrupt(label, `no lz4 legacy magic at byte ${start}`);
  for (;;) {
    const at = reader.position;
    const head = await reader.read(4);
    if (head.length < 4) {
      // Like the kernel: fewer than 4 bytes left ends the stream; the caller judges them.
      reader.unshift(head);
      return;
    }
    const size = readLe32(head);
    if (size === 0 || size === LZ4_LEGACY_MAGIC) {
      reader.unshift(head);
      return;
    }
    if (size > LZ4_MAX_BLOCK) {
      throw corrupt(
        label,
        `block at byte ${at} claims ${size} bytes, more than an 8 MiB block can take (is another member appended without NUL padding after the lz4 one?)`,
      );
    }
    // lz4-napi's decoder takes lz4_flex's size-prepended layout; the prefix is the output
    // capacity, so 8 MiB enforces the kernel's limit.
    const framed = new Uint8Array(4 + size);
    framed.set(le32(LZ4_BLOCK_SIZE));
    let filled = 0;
    while (filled < size) {
      const chunk = await reader.next();
      if (chunk === undefined) {
        throw truncated(
          label,
          `in the block at byte ${at}, which claims ${size} bytes; or another member follows the lz4 one without the NUL padding that ends it`,
        );
      }
      const take = Math.min(size - filled, chunk.length);
      framed.set(chunk.subarray(0, take), 4 + filled);
      reader.unshift(chunk.subarray(take));
      filled += take;
    }
    let out: Buffer;
    try {
      out = lz4.uncompressSync(framed);
    } catch (error) {
      throw corrupt(
        label,
        `block at byte ${at}: ${error instanceof Error ? error.message : String(error)}`,
        error,
      );
    }
    if (out.length > 0) yield new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
}

/**
 * Decodes lz4 legacy data (also several streams with NUL padding between them) for
 * `decompress`: only NULs may follow the last stream.
 */
export async function* unlz4Stream(
  reader: ByteReader,
  label: string,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  let streams = 0;
  for (;;) {
    signal?.throwIfAborted();
    // Skip NUL padding; the end of the input ends the data.
    let chunk = await reader.next();
    while (chunk !== undefined) {
      let i = 0;
      while (i < chunk.length && chunk[i] === 0) i++;
      if (i < chunk.length) {
        reader.unshift(chunk.subarray(i));
        break;
      }
      chunk = await reader.next();
    }
    if (chunk === undefined) {
      if (streams === 0) throw truncated(label, 'it is empty');
      return;
    }
    const at = reader.position;
    const head = await reader.peek(4);
    if (streams > 0 && (head.length < 4 || readLe32(head) !== LZ4_LEGACY_MAGIC)) {
      throw corrupt(
        label,
        `bytes at ${at} after the lz4 data are neither NUL padding nor another lz4 stream`,
      );
    }
    for await (const out of unlz4Legacy(reader, label)) {
      signal?.throwIfAborted();
      yield out;
    }
    streams++;
  }
}
