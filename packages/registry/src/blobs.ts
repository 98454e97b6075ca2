/**
 * The blob download pipeline: blobs land in the cache verified or not at all. One download per
 * digest at a time (callers asking for the same blob share it), `concurrency` downloads at
 * once, mirrors first, and a broken transfer resumes with a `Range` request where it stopped.
 */
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { IrbError, isIrbError } from '@irb/errors';
import { cacheWriteFailure } from '@irb/store';
import type { BlobCache } from './cache.ts';
import { createDigestHasher, parseDigest } from './digest.ts';
import { dump, statusError } from './errors.ts';
import { followBlob, LiveDownload } from './follow.ts';
import { Limiter } from './limiter.ts';
import { validateDescriptor } from './manifest.ts';
import type { Endpoint, Mirrors } from './mirrors.ts';
import type { Secrets } from './redact.ts';
import { formatReference, type Reference } from './reference.ts';
import { header, isRetryableNetworkError } from './transport/http.ts';
import type { RegistryTransport } from './transport/request.ts';
import { type RetryOptions, withRetry } from './transport/retry.ts';
import type { Descriptor, ProgressListener } from './types.ts';

/** Bytes of a download gathered before they are written to the staged file (and given to followers). */
const WRITE_BLOCK = 1024 * 1024;

/** How long a gathered block waits for more bytes before it is written anyway. */
const PAUSE_MS = 5;

/** `pending`'s result if it settles within `ms`, else `undefined` (it is left pending, its rejection handled later). */
async function soon<T>(pending: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  pending.catch(() => {});
  try {
    return await Promise.race([pending, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A reusable buffer that gathers small chunks; its bytes are valid until the next `clear`. */
class Block {
  readonly #buffer: Uint8Array;
  filled = 0;

  constructor(size: number) {
    this.#buffer = new Uint8Array(size);
  }

  get full(): boolean {
    return this.filled === this.#buffer.byteLength;
  }

  /** Copies what fits of `chunk` from `from` on; returns how many bytes it took. */
  take(chunk: Uint8Array, from: number): number {
    const n = Math.min(chunk.byteLength - from, this.#buffer.byteLength - this.filled);
    this.#buffer.set(chunk.subarray(from, from + n), this.filled);
    this.filled += n;
    return n;
  }

  bytes(): Uint8Array {
    return this.#buffer.subarray(0, this.filled);
  }

  clear(): void {
    this.filled = 0;
  }
}

/** Thrown when a body ended early (or answered a range we did not ask for); retried with a Range request. */
class ShortBody extends Error {
  readonly code = 'IRB_BODY_TRUNCATED';
}

/**
 * The staged file of a download and the hash of the bytes in it: they are written, hashed and
 * reset together, so the hash always covers exactly the file's first `offset` bytes.
 */
class PartialBlob {
  readonly #handle: FileHandle;
  readonly #digest: string;
  readonly #cacheDir: string;
  readonly #live: LiveDownload;
  #hasher: ReturnType<typeof createDigestHasher>;
  /** Bytes written (and hashed) so far; where a resumed request starts. */
  offset = 0;

  constructor(handle: FileHandle, digest: string, cacheDir: string, live: LiveDownload) {
    this.#handle = handle;
    this.#digest = digest;
    this.#cacheDir = cacheDir;
    this.#live = live;
    this.#hasher = createDigestHasher(digest);
  }

  /** Drops everything received, to start over from byte 0. */
  async reset(): Promise<void> {
    // Readers following the file keep a hash of what they already gave out before it goes.
    await this.#live.resetting();
    await this.#handle.truncate(0);
    this.#hasher = createDigestHasher(this.#digest);
    this.offset = 0;
  }

  async append(chunk: Uint8Array): Promise<void> {
    this.#hasher.update(chunk);
    await this.#handle.write(chunk, 0, chunk.byteLength, this.offset).catch((error: unknown) => {
      throw cacheWriteFailure(this.#cacheDir, error);
    });
    this.offset += chunk.byteLength;
    this.#live.advanced(this.offset);
  }

  /** The digest of what was received, in the expected digest's algorithm. */
  actual(): string {
    return `${parseDigest(this.#digest).algorithm}:${this.#hasher.digest('hex')}`;
  }
}

/** What the pipeline shares with its client. */
export interface BlobFetcherOptions {
  cache: () => Promise<BlobCache>;
  requests: RegistryTransport;
  mirrors: Mirrors;
  retry: Required<RetryOptions>;
  secrets: Secrets;
  concurrency: number;
  /** The client's listener, told about every blob. */
  onProgress: ProgressListener | undefined;
}

/** Downloads blobs into the verified cache. */
export class BlobFetcher {
  readonly #o: BlobFetcherOptions;
  readonly #limiter: Limiter;
  readonly #inflight = new Map<
    string,
    { task: Promise<void>; signal: AbortSignal | undefined; live: LiveDownload }
  >();

  constructor(options: BlobFetcherOptions) {
    this.#o = options;
    this.#limiter = new Limiter(options.concurrency);
  }

  /**
   * Makes sure all `descriptors` are in the cache, `concurrency` at a time. The first failure
   * cancels the siblings, so no download is left running behind an error.
   */
  async ensureAll(
    ref: Reference,
    descriptors: readonly Descriptor[],
    signal: AbortSignal | undefined,
    onProgress: ProgressListener | undefined,
  ): Promise<void> {
    const controller = new AbortController();
    const both = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
    const results = await Promise.allSettled(
      descriptors.map((d) =>
        this.ensure(ref, d, both, onProgress).catch((error: unknown) => {
          controller.abort(error);
          throw error;
        }),
      ),
    );
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // The first failure (or the caller's abort reason) is what every sibling was cancelled with.
    if (failure) throw signal?.aborted ? signal.reason : controller.signal.reason;
  }

  /**
   * A verified stream of one blob: from the cache when it is there, else following its download
   * (joined or started) byte by byte as it lands in the staged file. Like every blob stream it
   * throws at the end (`IRB_DIGEST_MISMATCH`, …) when the bytes turn out not to be the blob, so a
   * consumer keeps nothing it built from them until the stream ended normally.
   */
  open(
    ref: Reference,
    descriptor: Descriptor,
    cache: BlobCache,
    signal: AbortSignal | undefined,
    onProgress: ProgressListener | undefined,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    let found: (live: LiveDownload | undefined) => void = () => undefined;
    const live = new Promise<LiveDownload | undefined>((resolve) => {
      found = resolve;
    });
    // Started only when the stream is first read, as a generator's body would be.
    async function* start(fetcher: BlobFetcher): AsyncGenerator<Uint8Array, void, undefined> {
      const done = fetcher.ensure(ref, descriptor, signal, onProgress, found);
      done.then(
        () => found(undefined),
        () => found(undefined),
      );
      yield* followBlob({ cache, descriptor, live, done, signal });
    }
    return start(this);
  }

  /** Makes sure one blob is in the cache: found there, joined to a running download, or downloaded. */
  async ensure(
    ref: Reference,
    descriptor: Descriptor,
    signal: AbortSignal | undefined,
    onProgress: ProgressListener | undefined,
    onLive?: (live: LiveDownload) => void,
  ): Promise<void> {
    validateDescriptor(descriptor, formatReference(ref));
    const progress: ProgressListener = (event) => {
      this.#o.onProgress?.(event);
      onProgress?.(event);
    };
    const cache = await this.#o.cache();
    const { digest, size } = descriptor;
    for (;;) {
      signal?.throwIfAborted();
      if (await cache.has(digest, size)) {
        progress({ type: 'blob', digest, done: size, total: size, phase: 'cache' });
        return;
      }
      const running = this.#inflight.get(digest);
      if (!running) break;
      onLive?.(running.live);
      try {
        await running.task;
      } catch (error) {
        // Someone else's cancelled download is not our failure: try ourselves.
        if (!running.signal?.aborted || signal?.aborted) throw error;
      }
    }
    const live = new LiveDownload();
    onLive?.(live);
    const task = this.#limiter
      .run(() => this.#download(cache, ref, descriptor, signal, progress, live), signal)
      .catch((error: unknown) => {
        signal?.throwIfAborted();
        throw error;
      });
    const entry = { task, signal, live };
    this.#inflight.set(digest, entry);
    try {
      await task;
    } finally {
      if (this.#inflight.get(digest) === entry) this.#inflight.delete(digest);
    }
  }

  /** Waits for every running download to end (after their signals were aborted, on close). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#inflight.values()].map((e) => e.task));
  }

  async #download(
    cache: BlobCache,
    ref: Reference,
    descriptor: Descriptor,
    signal: AbortSignal | undefined,
    progress: ProgressListener,
    live: LiveDownload,
  ): Promise<void> {
    const { digest, size } = descriptor;
    const name = formatReference(ref);
    const staged = await cache.stage(digest);
    const handle = await open(staged.path, 'w', 0o600).catch((error: unknown) => {
      throw cacheWriteFailure(cache.dir, error);
    });
    let closed = false;
    try {
      live.started(staged.path);
      const partial = new PartialBlob(handle, digest, cache.dir, live);
      let attempts = 0;
      let lastError: unknown;
      let outcome: 'cached' | 'verified' | undefined;
      for (const endpoint of this.#o.mirrors.endpoints(ref)) {
        let offsetAtStart = 0;
        live.source(endpoint.mirror);
        const attempt = () => {
          attempts++;
          offsetAtStart = partial.offset;
          return this.#attempt(cache, endpoint, ref, descriptor, partial, signal, progress);
        };
        try {
          outcome = await withRetry(
            attempt,
            {
              ...this.#o.retry,
              retryError: (error) => error instanceof ShortBody || isRetryableNetworkError(error),
              progressed: () => partial.offset > offsetAtStart,
            },
            signal,
          );
          break;
        } catch (error) {
          signal?.throwIfAborted();
          lastError = error;
          if (endpoint.mirror) {
            // A mirror failing is not fatal: fall back to the next mirror or the origin, from scratch.
            await partial.reset();
            continue;
          }
          if (error instanceof ShortBody || (isRetryableNetworkError(error) && !isIrbError(error))) {
            throw new IrbError(
              'IRB_REGISTRY_UNREACHABLE',
              `download of blob ${digest} from ${name} kept failing after ${attempts} attempts (${partial.offset} of ${size} bytes received): ${this.#o.secrets.clean(String((error as Error).message))}; check the network and retry`,
              { cause: this.#o.secrets.safeCause(error) },
            );
          }
          throw error;
        }
      }
      if (outcome === undefined) throw lastError;
      if (outcome === 'cached') return;
      // No fsync before the rename: every read of a cached blob is verified against its digest,
      // so a file a crash left damaged is found, removed and fetched again. Syncing every layer
      // would put the disk's write-back time on every cold build.
      await handle.close();
      closed = true;
      await cache.commit(staged);
      live.commit();
      progress({ type: 'blob', digest, done: size, total: size, phase: 'done' });
    } finally {
      if (!closed) await handle.close().catch(() => undefined);
      await unlink(staged.path).catch(() => undefined);
    }
  }

  /** One request for the rest of the blob, appended to `partial` and verified when complete. */
  async #attempt(
    cache: BlobCache,
    endpoint: Endpoint,
    ref: Reference,
    descriptor: Descriptor,
    partial: PartialBlob,
    signal: AbortSignal | undefined,
    progress: ProgressListener,
  ): Promise<'cached' | 'verified'> {
    const { digest, size } = descriptor;
    const name = formatReference(ref);
    // Another client or process may have stored it while we queued or retried.
    if (await cache.has(digest, size)) {
      progress({ type: 'blob', digest, done: size, total: size, phase: 'cache' });
      return 'cached';
    }
    const headers: Record<string, string> = {};
    if (partial.offset > 0) headers.range = `bytes=${partial.offset}-`;
    const res = await this.#o.requests.request(
      endpoint,
      ref,
      'GET',
      `blobs/${digest}`,
      headers,
      signal,
      name,
      { bulk: true },
    );
    if (res.status === 404) {
      await dump(res);
      throw new IrbError(
        'IRB_IMAGE_NOT_FOUND',
        `blob ${digest} of ${name} is not in the registry (404); the image is incomplete there`,
      );
    }
    let start = 0;
    if (res.status === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res.headers, 'content-range') ?? '');
      start = range ? Number(range[1]) : -1;
    } else if (res.status !== 200) {
      throw await statusError(res, name, `blob ${digest}`, (t) => this.#o.secrets.clean(t));
    }
    if (start !== partial.offset) {
      await partial.reset();
      if (start !== 0 && res.status === 206) {
        // A range we did not ask for: start over rather than guess.
        await dump(res);
        throw new ShortBody('unexpected Content-Range');
      }
      // Otherwise the server ignored Range (200) and sends everything again.
    }
    // Socket reads are small (13 KiB on average from a local registry): written one by one, each
    // costs a write, a wake-up of every follower and a decompressor round trip of that size.
    // Gathered, a blob takes about one write per MiB while bytes keep coming; when they stop
    // coming for a moment (a slow or stalled server), what arrived is written at once, so a
    // follower never waits for bytes that are here.
    const block = new Block(WRITE_BLOCK);
    const flush = async () => {
      if (block.filled === 0) return;
      await partial.append(block.bytes());
      block.clear();
    };
    const chunks = (res.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const pending = chunks.next();
        let next = block.filled > 0 ? await soon(pending, PAUSE_MS) : await pending;
        if (next === undefined) {
          await flush();
          next = await pending;
        }
        if (next.done) break;
        const chunk = next.value;
        if (partial.offset + block.filled + chunk.byteLength > size) {
          throw new IrbError(
            'IRB_SIZE_MISMATCH',
            `blob ${digest} of ${name}: the registry sent more than the ${size} bytes the manifest declares; the content was discarded`,
          );
        }
        let at = 0;
        while (at < chunk.byteLength) {
          at += block.take(chunk, at);
          if (block.full) await flush();
        }
        progress({
          type: 'blob',
          digest,
          done: partial.offset + block.filled,
          total: size,
          phase: 'network',
        });
      }
    } catch (error) {
      // What arrived before a broken transfer is kept, as it was chunk by chunk: the retry
      // resumes after it.
      await flush().catch(() => {});
      await chunks.return?.().catch(() => undefined);
      throw error;
    }
    await flush();
    if (partial.offset < size) throw new ShortBody(`body ended after ${partial.offset} of ${size} bytes`);
    const actual = partial.actual();
    if (actual !== digest) {
      throw new IrbError(
        'IRB_DIGEST_MISMATCH',
        `blob ${digest} of ${name}${endpoint.mirror ? ` (from mirror ${endpoint.host})` : ''}: the downloaded bytes hash to ${actual}; they are corrupt or were tampered with and were discarded (nothing was cached)`,
      );
    }
    return 'verified';
  }
}
