import { crc32 } from 'node:zlib';
import { type DeflateJob, deflateBlock } from './deflate-block.ts';
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

/**
 * A fixed gzip header: no mtime, OS = Unix, XFL as zlib sets it for the level, and `name` (the
 * FNAME field, which the kernel's gunzip skips too) when given.
 */
export function gzipHeader(level: number, name?: string): Uint8Array {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  const fixed = Uint8Array.of(0x1f, 0x8b, 8, name === undefined ? 0 : 0x08, 0, 0, 0, 0, xfl, 3);
  if (name === undefined) return fixed;
  const out = new Uint8Array(fixed.length + name.length + 1);
  out.set(fixed);
  for (let i = 0; i < name.length; i++) out[fixed.length + i] = name.charCodeAt(i);
  return out;
}

function gzipTrailer(crc: number, size: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, crc >>> 0, true);
  view.setUint32(4, size % 2 ** 32, true);
  return out;
}

/** What a block of {@link blocksOf} starts at when it may be the stream's only one. */
const FIRST_BLOCK_CAPACITY = 1024 * 1024;

/**
 * Cuts the input into blocks of exactly `size` bytes (the last one shorter, maybe empty). The
 * input is copied, so its chunks may be reused once pulled. The first block starts at 1 MiB and
 * doubles as it fills: a short stream (an overlay member) does not allocate lz4's whole 8 MiB,
 * external memory that V8 answers with a full garbage collection every few streams. Once a
 * block was full the stream is long, and the next blocks are allocated at `size` at once.
 */
export async function* blocksOf(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let block = new Uint8Array(Math.min(size, FIRST_BLOCK_CAPACITY));
  let filled = 0;
  for await (const chunk of source) {
    let offset = 0;
    while (offset < chunk.length) {
      if (filled === block.length) {
        const grown = new Uint8Array(Math.min(size, block.length * 2));
        grown.set(block);
        block = grown;
      }
      const take = Math.min(block.length - filled, chunk.length - offset);
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
 * Blocks of a stream deflated on libuv's thread pool before worker threads start: 8 MiB. A
 * worker costs about 30 ms to start, more than deflating a 1 MiB overlay member on the pool,
 * so a short stream never starts one; a long one starts them after its first 8 MiB.
 */
const POOL_BLOCKS = 32;

/**
 * Blocks deflated on libuv's pool at once: up to `threads`, leaving one of the pool's threads
 * (4 unless `UV_THREADPOOL_SIZE` says otherwise) for the file reads that feed the stream.
 */
function poolConcurrency(threads: number): number {
  const size = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.min(threads, size - 1));
}

/**
 * One-member gzip the pigz way: the input is cut into {@link GZIP_BLOCK_SIZE} blocks,
 * each deflated on its own with the 32 KiB before it as dictionary, joined by sync flushes;
 * CRC-32 and length are computed here. Every block's bytes depend only on its data, its
 * dictionary and the level, so the stream is identical for any thread count and wherever a
 * block is deflated: on libuv's thread pool (one block at a time with `threads` = 1; the first
 * {@link POOL_BLOCKS} blocks of any stream, several at a time) or in worker threads (the rest,
 * when `threads` > 1).
 */
export async function* gzipStream(
  source: AsyncIterable<Uint8Array>,
  level: number,
  threads: number,
  signal?: AbortSignal,
  name?: string,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  yield gzipHeader(level, name);
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
  // A semaphore over the blocks on libuv's pool (the window may be larger than its share).
  let free = poolConcurrency(threads);
  const waiting: Array<() => void> = [];
  const onLibuvPool = async (job: DeflateJob): Promise<Uint8Array> => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await deflateBlock(job);
    } finally {
      // The slot passes to the next waiter, or back to the count.
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
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
        if (threads <= 1 || job.id < POOL_BLOCKS) return { result: onLibuvPool(job), done: final };
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
