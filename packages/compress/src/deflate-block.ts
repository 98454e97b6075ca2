import { constants, deflateRaw, deflateRawSync, type ZlibOptions } from 'node:zlib';

/** One block of the parallel gzip stream. */
export interface DeflateJob {
  id: number;
  data: Uint8Array;
  /** The 32 KiB of input before this block; absent for the first block. */
  dictionary?: Uint8Array;
  level: number;
  /** The last block ends the deflate stream (Z_FINISH); others end on a sync flush. */
  final: boolean;
}

/** A worker's answer. */
export type DeflateResult =
  | { id: number; out: Uint8Array; error?: undefined }
  | { id: number; error: string };

function optionsOf(job: DeflateJob): ZlibOptions {
  // Every block gets the same explicit parameters so the bytes never depend on defaults
  // of the thread that runs it. A sync flush ends a block on a byte boundary; no full
  // flush is needed because the next block starts from the dictionary, not from history.
  return {
    level: job.level,
    windowBits: 15,
    memLevel: 8,
    strategy: constants.Z_DEFAULT_STRATEGY,
    finishFlush: job.final ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
    // Room for the whole deflated block (deflate's bound: stored blocks add 5 bytes per 16 KiB):
    // with the default 16 KiB, an incompressible 256 KiB block takes 16 trips through zlib and,
    // deflated on libuv's pool, 16 round trips to this thread, a third more time. zlib's output
    // does not depend on how much room each call has.
    chunkSize: Math.max(64 * 1024, job.data.byteLength + (job.data.byteLength >> 3) + 1024),
    ...(job.dictionary ? { dictionary: job.dictionary } : {}),
  };
}

/** Deflates one block on the calling thread. */
export function deflateBlockSync(job: DeflateJob): Uint8Array {
  const out = deflateRawSync(job.data, optionsOf(job));
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Deflates one block on libuv's thread pool (same bytes as {@link deflateBlockSync}). */
export function deflateBlock(job: DeflateJob): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    deflateRaw(job.data, optionsOf(job), (error, out) => {
      if (error) reject(error);
      else resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    });
  });
}
