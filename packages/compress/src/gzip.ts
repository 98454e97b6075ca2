import { crc32 } from 'node:zlib';
import { deflateBlock } from './deflate-block.ts';
import { inOrder } from './ordered.ts';
import { DeflatePool } from './pool.ts';

/**
 * Input bytes per deflate block. Part of the output format: changing it changes the
 * bytes. pigz uses 128 KiB, but every block here costs a fresh zlib context (node:zlib
 * cannot reset one with a new dictionary), which at 128 KiB adds about 20% CPU; at 256 KiB
 * the overhead is under 3% and the size stays within 0.1% of plain zlib (the 32 KiB
 * dictionary recovers nearly all of the cross-block matches).
 */
export const GZIP_BLOCK_SIZE = 256 * 1024;
const DICTIONARY_SIZE = 32 * 1024;

/** A fixed gzip header: no name, no mtime, OS = Unix, XFL as zlib sets it for the level. */
export function gzipHeader(level: number): Uint8Array {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3);
}

function gzipTrailer(crc: number, size: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, size % 2 ** 32, true);
  return out;
}

/** Cuts the input into blocks of exactly `size` bytes (the last one shorter, maybe empty). */
export async function* blocksOf(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let block = new Uint8Array(size);
  let filled = 0;
  for await (const chunk of source) {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(size - filled, chunk.length - offset);
      block.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === size) {
        yield block;
        block = new Uint8Array(size);
        filled = 0;
      }
    }
  }
  yield block.subarray(0, filled);
}

/**
 * One-member gzip the pigz way: the input is cut into {@link GZIP_BLOCK_SIZE} blocks,
 * each deflated on its own (in worker threads when `threads` > 1) with the 32 KiB before
 * it as dictionary, joined by sync flushes; CRC-32 and length are computed here. Every
 * block's bytes depend only on its data, its dictionary and the level, so the stream is
 * identical for any thread count, and `threads` = 1 deflates the same blocks on libuv's
 * pool without starting workers.
 */
export async function* gzipStream(
  source: AsyncIterable<Uint8Array>,
  level: number,
  threads: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  yield gzipHeader(level);
  // Blocks in flight: enough to keep every worker busy while the consumer drains the
  // oldest; memory stays at about 3 × threads × 256 KiB of input plus its output.
  // With one thread, one block at a time: libuv's pool would otherwise run two at once.
  // With workers, three blocks each, so a worker always has its next block queued.
  const window = threads <= 1 ? 1 : threads * 3;
  let pool: DeflatePool | undefined;
  let crc = 0;
  let size = 0;
  let dictionary: Uint8Array | undefined;
  let id = 0;
  const blocks = blocksOf(source, GZIP_BLOCK_SIZE);
  try {
    const deflated = inOrder(
      blocks,
      window,
      (data) => {
        const final = data.length < GZIP_BLOCK_SIZE;
        crc = crc32(data, crc);
        size += data.length;
        const job = { id: id++, data, level, final, ...(dictionary ? { dictionary } : {}) };
        // Taken before the block's buffer is transferred to a worker.
        dictionary = final ? undefined : data.slice(data.length - DICTIONARY_SIZE);
        if (threads <= 1 || (final && job.id === 0)) return { result: deflateBlock(job), done: final };
        pool ??= new DeflatePool(threads);
        return { result: pool.run(job), done: final };
      },
      signal,
    );
    for await (const out of deflated) if (out.length > 0) yield out;
    yield gzipTrailer(crc, size);
  } finally {
    await pool?.close();
  }
}
