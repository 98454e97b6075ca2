import { IrbError } from '@irb/errors';
import binding from 'zstd-napi/binding.js';

/**
 * Largest window a zstd frame may ask for: the kernel's initramfs decompressor refuses
 * frames with a window over 128 MiB. Levels 1–19 with an unknown input size use at most
 * 8 MiB (windowLog 23); levels above 19 are refused rather than capped, because setting
 * windowLog explicitly would change the bytes of every level. Decoding enforces the same limit.
 */
export const ZSTD_MAX_WINDOW_LOG = 27;

/**
 * zstd frame(s) through zstd-napi's streaming context. `nbWorkers` is always ≥ 1 so the
 * output is zstd's multi-threaded format, which is byte-identical for any worker count
 * (with 0 workers zstd would produce different, single-threaded bytes). The checksum flag
 * is on; the content size is unknown while streaming and never written.
 */
export async function* zstdStream(
  source: AsyncIterable<Uint8Array>,
  level: number,
  threads: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  const { CCtx, CParameter, EndDirective } = binding;
  const cctx = new CCtx();
  cctx.setParameter(CParameter.compressionLevel, level);
  cctx.setParameter(CParameter.checksumFlag, 1);
  cctx.setParameter(CParameter.contentSizeFlag, 0);
  cctx.setParameter(CParameter.nbWorkers, Math.max(1, threads));
  const out = new Uint8Array(binding.cStreamOutSize());
  for await (const chunk of source) {
    signal?.throwIfAborted();
    let input = chunk;
    while (input.length > 0) {
      const [, produced, consumed] = cctx.compressStream2(out, input, EndDirective.continue);
      if (produced > 0) yield out.slice(0, produced);
      input = input.subarray(consumed);
    }
  }
  for (;;) {
    const [remaining, produced] = cctx.compressStream2(out, new Uint8Array(0), EndDirective.end);
    if (produced > 0) yield out.slice(0, produced);
    if (remaining === 0) break;
  }
}

/** The window log a zstd frame header declares, or `undefined` when it is not a frame header. */
export function zstdFrameWindowLog(header: Uint8Array): number | undefined {
  if (
    header.length < 6 ||
    header[0] !== 0x28 ||
    header[1] !== 0xb5 ||
    header[2] !== 0x2f ||
    header[3] !== 0xfd
  ) {
    return undefined;
  }
  const descriptor = header[4]!;
  const singleSegment = (descriptor & 0x20) !== 0;
  if (singleSegment) return undefined;
  const windowDescriptor = header[5]!;
  return 10 + (windowDescriptor >> 3);
}

/**
 * A zstd decoder that can stop at the end of a frame, so callers that walk concatenated
 * members know where the next one starts. Output comes out one buffer (128 KiB) at a
 * time, so memory stays bounded whatever the compression ratio.
 */
export class ZstdDecoder {
  readonly #dctx = new binding.DCtx();
  readonly #out = new Uint8Array(binding.dStreamOutSize());
  readonly #label: string;
  /** True between frames (also before the first). */
  atFrameEnd = true;

  constructor(label: string) {
    this.#label = label;
    this.#dctx.setParameter(binding.DParameter.windowLogMax, ZSTD_MAX_WINDOW_LOG);
  }

  /**
   * Decodes from `input`, yielding output chunks. With `stopAtFrameEnd` it stops as soon
   * as a frame ends. Returns the number of input bytes consumed.
   */
  *decode(input: Uint8Array, stopAtFrameEnd: boolean): Generator<Uint8Array, number> {
    let consumedTotal = 0;
    let rest = input;
    for (;;) {
      let result: [number, number, number];
      try {
        result = this.#dctx.decompressStream(this.#out, rest);
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        if (/too much memory/i.test(detail)) {
          throw new IrbError(
            'IRB_ZSTD_WINDOW_TOO_LARGE',
            `zstd data in ${this.#label} needs a window over 128 MiB (written with --long or --ultra?); irb, like the kernel, decodes windows up to 128 MiB — recompress it without --long`,
            { cause: error },
          );
        }
        throw new IrbError(
          'IRB_ZSTD_CORRUPT',
          `corrupt zstd data in ${this.#label}: ${error instanceof Error ? error.message : String(error)}; the data is damaged or not zstd — fetch or build it again`,
          { cause: error },
        );
      }
      const [hint, produced, consumed] = result;
      consumedTotal += consumed;
      rest = rest.subarray(consumed);
      this.atFrameEnd = hint === 0;
      if (produced > 0) yield this.#out.slice(0, produced);
      // 0 means the frame is decoded and flushed; asking again would start a new frame.
      if (this.atFrameEnd && (stopAtFrameEnd || rest.length === 0)) return consumedTotal;
      // A full output buffer may hide more output even with no input left.
      if (produced === this.#out.length) continue;
      if (rest.length === 0 || (consumed === 0 && produced === 0)) return consumedTotal;
    }
  }

  /** Throws when the input ended inside a frame. */
  finish(): void {
    if (!this.atFrameEnd) {
      throw new IrbError(
        'IRB_ZSTD_TRUNCATED',
        `zstd data in ${this.#label} ends in the middle of a frame; the data is truncated — fetch or build it again`,
      );
    }
  }
}

/** Decodes every zstd frame of `source` (also several back to back). */
export async function* unzstdStream(
  source: AsyncIterable<Uint8Array>,
  label: string,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const decoder = new ZstdDecoder(label);
  let sawInput = false;
  for await (const chunk of source) {
    signal?.throwIfAborted();
    if (chunk.length === 0) continue;
    sawInput = true;
    yield* decoder.decode(chunk, false);
  }
  if (!sawInput) {
    throw new IrbError('IRB_ZSTD_TRUNCATED', `zstd data in ${label} is empty; expected at least one frame`);
  }
  decoder.finish();
}
