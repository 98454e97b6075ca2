import { createRequire } from 'node:module';
import { addAbortSignal, pipeline, Readable } from 'node:stream';
import { constants, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { IrbError, isIrbError } from '@irb/errors';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { ByteReader } from './reader.ts';
import { settledWrite } from './settled-write.ts';

/**
 * Largest window a zstd frame may ask for: the kernel's initramfs decompressor refuses
 * frames with a window over 128 MiB. Levels 1–19 with an unknown input size use at most
 * 8 MiB (windowLog 23); levels above 19 are refused rather than capped, because setting
 * windowLog explicitly would change the bytes of every level. Decoding enforces the same limit.
 */
export const ZSTD_MAX_WINDOW_LOG = 27;

/** The zstd library that compresses and decodes: the native addon, or the one inside Node. */
export type ZstdBackend = 'zstd-napi' | 'node:zlib';

/**
 * Environment variable that forces a zstd backend: `node` (or `node:zlib`) or `napi` (or
 * `zstd-napi`). Unset or empty: zstd-napi when it loads, else node:zlib.
 */
export const ZSTD_BACKEND_ENV = 'IRB_ZSTD_BACKEND';

const require = createRequire(import.meta.url);
let napi: { binding: typeof ZstdBinding } | { error: unknown } | undefined;

/** zstd-napi's binding, or `undefined` when the addon is not installed or did not build. */
function napiBinding(): typeof ZstdBinding | undefined {
  if (napi === undefined) {
    try {
      napi = { binding: require('zstd-napi/binding.js') as typeof ZstdBinding };
    } catch (error) {
      napi = { error };
    }
  }
  return 'binding' in napi ? napi.binding : undefined;
}

/**
 * The zstd backend the next zstd operation uses: zstd-napi (the native addon, an optional
 * dependency whose build npm or pnpm may skip) when it loads, else Node's built-in zstd
 * (node:zlib, Node ≥ 22.15). {@link ZSTD_BACKEND_ENV} forces one.
 *
 * @throws IrbError `IRB_OPTION_INVALID` for an unknown value of the variable,
 *   `IRB_COMPRESSOR_UNAVAILABLE` when zstd-napi is forced but does not load.
 */
export function zstdBackend(): ZstdBackend {
  const forced = process.env[ZSTD_BACKEND_ENV]?.trim() ?? '';
  if (forced === 'node' || forced === 'node:zlib') return 'node:zlib';
  if (forced === 'napi' || forced === 'zstd-napi') {
    if (napiBinding() === undefined) {
      const error = napi !== undefined && 'error' in napi ? napi.error : undefined;
      throw new IrbError(
        'IRB_COMPRESSOR_UNAVAILABLE',
        `${ZSTD_BACKEND_ENV}=${forced} asks for zstd-napi, which did not load (${error instanceof Error ? error.message : String(error)}); install it with its build script allowed, or unset ${ZSTD_BACKEND_ENV} to use Node's built-in zstd`,
        { cause: error },
      );
    }
    return 'zstd-napi';
  }
  if (forced !== '') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `${ZSTD_BACKEND_ENV}=${forced} is not a zstd backend; use 'node' (node:zlib) or 'napi' (zstd-napi), or unset it`,
    );
  }
  return napiBinding() === undefined ? 'node:zlib' : 'zstd-napi';
}

function nativeBinding(): typeof ZstdBinding {
  const binding = napiBinding();
  if (binding === undefined) throw new Error('zstd-napi is not loaded');
  return binding;
}

/** zstd through the backend {@link zstdBackend} picks (see there for how their bytes differ). */
export function zstdStream(
  source: AsyncIterable<Uint8Array>,
  level: number,
  threads: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  return zstdBackend() === 'zstd-napi'
    ? napiZstdStream(source, level, threads, signal)
    : nodeZstdStream(source, level, signal);
}

/** Input handed to node:zlib per write: one thread-pool round trip per 128 KiB, not per cpio header. */
const NODE_WRITE_SIZE = 128 * 1024;

/**
 * Joins small chunks into pieces of at least `size` bytes (the last one may be shorter). Small
 * chunks are copied as they come, not kept: a source may read into a chunk's buffer again once
 * the next one is pulled (see `compress`).
 */
async function* coalesce(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let piece = Buffer.allocUnsafe(0);
  let length = 0;
  for await (const chunk of source) {
    if (chunk.length >= size && length === 0) {
      yield chunk;
      continue;
    }
    if (length + chunk.length > piece.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * size, length + chunk.length));
      grown.set(piece.subarray(0, length));
      piece = grown;
    }
    piece.set(chunk, length);
    length += chunk.length;
    if (length >= size) {
      yield piece.subarray(0, length);
      piece = Buffer.allocUnsafe(0);
      length = 0;
    }
  }
  if (length > 0) yield piece.subarray(0, length);
}

/**
 * One zstd frame through node:zlib: checksum on, no content size, like the zstd-napi
 * backend, but zstd's single-threaded format (`nbWorkers` 0), so its bytes differ from
 * zstd-napi's and it compresses on one thread. node:zlib's stream cannot run zstd's
 * workers: with `nbWorkers` ≥ 1 it takes zstd's "everything flushed" answer for the end of
 * the stream and drops the rest of the input or fails with ERR_STREAM_PUSH_AFTER_EOF
 * (nodejs/node#59899; seen here after about 40 MB on Node 24.21). The single-threaded
 * format is as deterministic: the bytes depend only on the input and the level.
 */
async function* nodeZstdStream(
  source: AsyncIterable<Uint8Array>,
  level: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  const zstd = createZstdCompress({
    chunkSize: 128 * 1024,
    params: {
      [constants.ZSTD_c_compressionLevel]: level,
      [constants.ZSTD_c_checksumFlag]: 1,
      [constants.ZSTD_c_contentSizeFlag]: 0,
      [constants.ZSTD_c_nbWorkers]: 0,
    },
  });
  if (signal) addAbortSignal(signal, zstd);
  // Each piece is written once the one before it has been compressed, and end() comes
  // after the last: with writes still queued at end(), node:zlib compresses the last one
  // with ZSTD_e_end and may append an empty frame (nodejs/node#66078), so the bytes would
  // depend on timing and chunking. The write callback also waits while the output is not
  // being read (backpressure).
  const pump = (async () => {
    for await (const chunk of coalesce(source, NODE_WRITE_SIZE)) {
      if (zstd.destroyed) return;
      await settledWrite(zstd, chunk);
    }
    zstd.end();
  })();
  pump.catch((error: unknown) => zstd.destroy(error instanceof Error ? error : new Error(String(error))));
  try {
    for await (const chunk of zstd as AsyncIterable<Buffer>) {
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } finally {
    zstd.destroy();
  }
}

/** Input bytes per zstd worker job (`ZSTD_c_jobSize`). */
const ZSTD_JOB_SIZE = 4 * 1024 * 1024;

/**
 * Idle zstd-napi compression contexts, one at most per level and worker count. Creating one
 * costs more than compressing a small member with it: zstd starts its worker threads and
 * allocates its job buffers and tables on first use (about 3 ms of a 1 MiB member's 4 ms here),
 * and each new context reports those megabytes to V8 as external memory, which brings on a
 * full garbage collection every few calls. Only a context that compressed less than one job
 * goes back (its buffers are one job's worth), and it is let go after {@link IDLE_CONTEXT_MS}
 * unused, so a long-lived process does not keep a context's memory for nothing. A context is
 * reset between frames; its parameters stay, and the bytes do not depend on its history.
 */
const idleContexts = new Map<string, { cctx: ZstdBinding.CCtx; timer: NodeJS.Timeout }>();
const IDLE_CONTEXT_MS = 2000;

function takeContext(binding: typeof ZstdBinding, level: number, workers: number): ZstdBinding.CCtx {
  const key = `${level}:${workers}`;
  const idle = idleContexts.get(key);
  if (idle !== undefined) {
    idleContexts.delete(key);
    clearTimeout(idle.timer);
    return idle.cctx;
  }
  const { CCtx, CParameter } = binding;
  const cctx = new CCtx();
  cctx.setParameter(CParameter.compressionLevel, level);
  cctx.setParameter(CParameter.checksumFlag, 1);
  cctx.setParameter(CParameter.contentSizeFlag, 0);
  cctx.setParameter(CParameter.nbWorkers, workers);
  // zstd's default job at level 3 is 8 MiB; each worker holds its job's input and output and the
  // context keeps a round buffer of jobs besides: about 50 MiB at 2 workers, a fifth of the 256 MiB
  // a cold build may use. 4 MiB jobs measured 35 MiB less peak RSS for 0.5 % more output.
  // Part of the format: changing it changes the bytes (any worker count still gives the same ones).
  cctx.setParameter(CParameter.jobSize, ZSTD_JOB_SIZE);
  return cctx;
}

function returnContext(
  binding: typeof ZstdBinding,
  level: number,
  workers: number,
  cctx: ZstdBinding.CCtx,
): void {
  const key = `${level}:${workers}`;
  if (idleContexts.has(key)) return;
  cctx.reset(binding.ResetDirective.sessionOnly);
  const timer = setTimeout(() => {
    if (idleContexts.get(key)?.cctx === cctx) idleContexts.delete(key);
  }, IDLE_CONTEXT_MS);
  timer.unref();
  idleContexts.set(key, { cctx, timer });
}

/**
 * zstd frame(s) through zstd-napi's streaming context. `nbWorkers` is always ≥ 1 so the
 * output is zstd's multi-threaded format, which is byte-identical for any worker count
 * (with 0 workers zstd would produce different, single-threaded bytes). The checksum flag
 * is on; the content size is unknown while streaming and never written.
 */
async function* napiZstdStream(
  source: AsyncIterable<Uint8Array>,
  level: number,
  threads: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  const binding = nativeBinding();
  const { EndDirective } = binding;
  const workers = Math.max(1, threads);
  const cctx = takeContext(binding, level, workers);
  const out = new Uint8Array(binding.cStreamOutSize());
  let consumedTotal = 0;
  for await (const chunk of source) {
    signal?.throwIfAborted();
    let input = chunk;
    while (input.length > 0) {
      const [, produced, consumed] = cctx.compressStream2(out, input, EndDirective.continue);
      if (produced > 0) yield out.slice(0, produced);
      input = input.subarray(consumed);
      consumedTotal += consumed;
    }
  }
  for (;;) {
    const [remaining, produced] = cctx.compressStream2(out, new Uint8Array(0), EndDirective.end);
    if (produced > 0) yield out.slice(0, produced);
    if (remaining === 0) break;
  }
  // Only after a frame ended cleanly: an abandoned or failed context is left to the GC.
  if (consumedTotal < ZSTD_JOB_SIZE) returnContext(binding, level, workers, cctx);
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
  readonly #dctx = new (nativeBinding().DCtx)();
  readonly #out = new Uint8Array(nativeBinding().dStreamOutSize());
  readonly #label: string;
  /** True between frames (also before the first). */
  atFrameEnd = true;

  constructor(label: string) {
    this.#label = label;
    this.#dctx.setParameter(nativeBinding().DParameter.windowLogMax, ZSTD_MAX_WINDOW_LOG);
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
  if (zstdBackend() === 'node:zlib') {
    yield* nodeUnzstdStream(source, label, signal);
    return;
  }
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

function zstdTruncated(label: string, what: string): IrbError {
  return new IrbError(
    'IRB_ZSTD_TRUNCATED',
    `zstd data in ${label} ends in the middle of a frame (${what}); the data is truncated — fetch or build it again`,
  );
}

function zstdCorrupt(label: string, what: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_ZSTD_CORRUPT',
    `corrupt zstd data in ${label}: ${what}; the data is damaged or not zstd — fetch or build it again`,
    cause === undefined ? undefined : { cause },
  );
}

function windowTooLarge(label: string, cause?: unknown): IrbError {
  return new IrbError(
    'IRB_ZSTD_WINDOW_TOO_LARGE',
    `zstd data in ${label} needs a window over 128 MiB (written with --long or --ultra?); irb, like the kernel, decodes windows up to 128 MiB — recompress it without --long`,
    cause === undefined ? undefined : { cause },
  );
}

async function readExactly(reader: ByteReader, n: number, label: string, what: string): Promise<Uint8Array> {
  const bytes = await reader.read(n);
  if (bytes.length < n) throw zstdTruncated(label, what);
  return bytes;
}

/** Largest block content: min(window, 128 KiB) (RFC 8878, Block_Maximum_Size). */
const ZSTD_MAX_BLOCK = 128 * 1024;

/**
 * Yields the bytes of exactly one zstd frame from `reader`, walking its header and block
 * headers (RFC 8878), so the caller knows where the frame ends without help from the
 * decoder: node:zlib's stream does not say how much input a frame used. A skippable
 * frame is consumed and yields nothing. Checks the window against the kernel's limit.
 */
async function* zstdFrameBytes(reader: ByteReader, label: string): AsyncGenerator<Uint8Array> {
  const at = reader.position;
  const magicBytes = await readExactly(reader, 4, label, 'its magic number');
  const magic = new DataView(magicBytes.buffer, magicBytes.byteOffset, 4).getUint32(0, true);
  if ((magic & 0xfffffff0) === 0x184d2a50) {
    const sizeBytes = await readExactly(reader, 4, label, 'a skippable frame header');
    let left = new DataView(sizeBytes.buffer, sizeBytes.byteOffset, 4).getUint32(0, true);
    while (left > 0) {
      const chunk = await readExactly(reader, Math.min(left, ZSTD_MAX_BLOCK), label, 'a skippable frame');
      left -= chunk.length;
    }
    return;
  }
  if (magic !== 0xfd2fb528) throw zstdCorrupt(label, `no zstd frame at byte ${at}`);
  const descriptor = (await readExactly(reader, 1, label, 'the frame header'))[0]!;
  if (descriptor & 0x08) throw zstdCorrupt(label, `reserved bit set in the frame header at byte ${at}`);
  const singleSegment = (descriptor & 0x20) !== 0;
  const fcsFlag = descriptor >> 6;
  const dictBytes = [0, 1, 2, 4][descriptor & 0x03]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  const rest = await readExactly(
    reader,
    (singleSegment ? 0 : 1) + dictBytes + fcsBytes,
    label,
    'the frame header',
  );
  let window: number;
  if (singleSegment) {
    // The window is the content size (RFC 8878 3.1.1.1.2); a 2-byte field is offset by 256.
    const field = rest.subarray(dictBytes);
    window = 0;
    for (let i = field.length - 1; i >= 0; i--) window = window * 256 + field[i]!;
    if (fcsBytes === 2) window += 256;
  } else {
    const exponent = rest[0]! >> 3;
    const base = 2 ** (10 + exponent);
    window = base + (base / 8) * (rest[0]! & 0x07);
  }
  if (window > 2 ** ZSTD_MAX_WINDOW_LOG) throw windowTooLarge(label);
  yield magicBytes;
  yield Uint8Array.of(descriptor);
  yield rest;
  for (;;) {
    const header = await readExactly(reader, 3, label, 'a block header');
    const word = header[0]! | (header[1]! << 8) | (header[2]! << 16);
    const type = (word >> 1) & 0x03;
    const size = word >>> 3;
    if (type === 3) throw zstdCorrupt(label, `reserved block type at byte ${reader.position - 3}`);
    if (size > ZSTD_MAX_BLOCK)
      throw zstdCorrupt(label, `block of ${size} bytes at byte ${reader.position - 3}`);
    yield header;
    // An RLE block stores its one byte, whatever its size.
    yield await readExactly(reader, type === 1 ? 1 : size, label, 'a block');
    if (word & 0x01) break;
  }
  if (descriptor & 0x04) yield await readExactly(reader, 4, label, 'the content checksum');
}

/** Maps a node:zlib zstd failure to an irb error; irb's own errors pass through. */
function nodeZstdError(error: unknown, label: string): unknown {
  if (isIrbError(error)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  if (/too much memory|window/i.test(detail)) return windowTooLarge(label, error);
  if (/end of (file|input)|truncat/i.test(detail)) return zstdTruncated(label, detail);
  if (error instanceof Error && (error as { code?: unknown }).code === 'ABORT_ERR') return error;
  return zstdCorrupt(label, detail, error);
}

/**
 * Decodes one zstd frame from `reader` with node:zlib and leaves `reader` just past it
 * (a skippable frame yields nothing). Memory: the frame's window and one output buffer.
 */
export async function* nodeUnzstdFrame(reader: ByteReader, label: string): AsyncGenerator<Uint8Array> {
  const head = await reader.peek(4);
  if (
    head.length === 4 &&
    (head[0]! & 0xf0) === 0x50 &&
    head[1] === 0x2a &&
    head[2] === 0x4d &&
    head[3] === 0x18
  ) {
    // node:zlib calls an input without a frame truncated: skip it here.
    for await (const _ of zstdFrameBytes(reader, label)) {
      // a skippable frame yields nothing
    }
    return;
  }
  const zstd = createZstdDecompress({
    chunkSize: 128 * 1024,
    params: { [constants.ZSTD_d_windowLogMax]: ZSTD_MAX_WINDOW_LOG },
  });
  let failure: unknown;
  pipeline(Readable.from(zstdFrameBytes(reader, label)), zstd, (error) => {
    failure ??= error ?? undefined;
  });
  try {
    for await (const chunk of zstd as AsyncIterable<Buffer>) {
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } catch (error) {
    throw nodeZstdError(failure ?? error, label);
  } finally {
    zstd.destroy();
  }
}

/** node:zlib decoding of every frame of `source`, for {@link unzstdStream}. */
async function* nodeUnzstdStream(
  source: AsyncIterable<Uint8Array>,
  label: string,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  try {
    let frames = 0;
    for (;;) {
      signal?.throwIfAborted();
      if ((await reader.peek(1)).length === 0) break;
      for await (const chunk of nodeUnzstdFrame(reader, label)) {
        signal?.throwIfAborted();
        yield chunk;
      }
      frames++;
    }
    if (frames === 0) {
      throw new IrbError('IRB_ZSTD_TRUNCATED', `zstd data in ${label} is empty; expected at least one frame`);
    }
  } finally {
    await reader.close();
  }
}
