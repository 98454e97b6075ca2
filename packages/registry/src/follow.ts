/**
 * Reading a blob while it downloads. A consumer (the layer index pass) gets the bytes as they
 * land in the download's staged file instead of after the whole blob is verified and committed,
 * so decompressing and parsing a layer overlaps its download byte by byte. The stream keeps the
 * contract of every blob stream here (`BlobCache.open`, `verifyStream`): it ends normally only
 * once every byte it gave out is verified against the digest; otherwise it throws
 * (`IRB_DIGEST_MISMATCH`, or the download's own error) and the consumer must drop what it built.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { IrbError } from '@irb/errors';
import type { BlobCache } from './cache.ts';
import { createDigestHasher } from './digest.ts';
import type { Descriptor } from './types.ts';

/** Bytes read from the staged file at once: a bound on what a follower holds, not a buffer size. */
const FOLLOW_CHUNK = 256 * 1024;

/** What a follower must keep of the bytes it gave out before the staged file is truncated. */
interface Follower {
  /** Bytes given out so far (all of one generation of the staged file). */
  position: number;
  /** Hash of those bytes, taken before a reset truncated the file under them. */
  snapshot: Promise<string> | undefined;
  readonly hashPrefix: (length: number) => Promise<string>;
}

/**
 * A download in progress as followers see it: the staged file, how much of it is written (and
 * hashed by the downloader), and a generation that changes whenever the file starts over (a
 * mirror gave up, a server ignored `Range`).
 */
export class LiveDownload {
  /** The staged file, once the download got its turn and opened it. */
  path: string | undefined;
  /** Bytes written to the staged file in this generation. */
  offset = 0;
  /** Bumped before the staged file is truncated. */
  generation = 0;
  /** True once this staged file was verified and renamed into the cache. */
  committed = false;
  /**
   * The bytes come from a mirror, with the registry to fall back to: not followed before they
   * are verified, since a mirror that serves other bytes is replaced, not trusted.
   */
  tentative = false;
  readonly #followers = new Set<Follower>();
  #waiters: Array<() => void> = [];

  /** The staged file is open for writing. */
  started(path: string): void {
    this.path = path;
    this.notify();
  }

  /** The next attempt fetches from a mirror (`true`) or from the registry itself. */
  source(mirror: boolean): void {
    this.tentative = mirror;
    this.notify();
  }

  /** `offset` bytes are written and hashed. */
  advanced(offset: number): void {
    this.offset = offset;
    this.notify();
  }

  /**
   * The staged file is about to start over. Followers that gave out bytes hash them now, from
   * the file as it still is, so they can later check them against the verified blob.
   */
  async resetting(): Promise<void> {
    this.generation++;
    this.offset = 0;
    const snapshots: Promise<string>[] = [];
    for (const follower of this.#followers) {
      if (follower.position > 0 && follower.snapshot === undefined) {
        follower.snapshot = follower.hashPrefix(follower.position);
        // Awaited below; a failed hash makes that follower fall back to failing, not the download.
        follower.snapshot.catch(() => undefined);
      }
      if (follower.snapshot) snapshots.push(follower.snapshot.catch(() => ''));
    }
    await Promise.all(snapshots);
    this.notify();
  }

  /** The staged file was verified and committed to the cache. */
  commit(): void {
    this.committed = true;
    this.notify();
  }

  add(follower: Follower): void {
    this.#followers.add(follower);
  }

  remove(follower: Follower): void {
    this.#followers.delete(follower);
  }

  /** Resolves on the next change (bytes, reset, commit, or a `notify` from elsewhere). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** How {@link followBlob} gets at the download. */
export interface FollowContext {
  cache: BlobCache;
  descriptor: Descriptor;
  /** The download this blob is in; undefined when the blob was cached (or the download ended first). */
  live: Promise<LiveDownload | undefined>;
  /** Settles when the blob is in the cache (verified), or rejects with the download's error. */
  done: Promise<void>;
  signal: AbortSignal | undefined;
}

/**
 * Streams a blob: from the cache when it is there, else from the staged file of its download as
 * bytes arrive. When the download ends with the file this stream followed committed, every byte
 * given out was verified by the download's hash. When the bytes given out came from another
 * attempt (the file was reset, another process committed its copy, a cancelled download was
 * restarted), the rest comes from the verified cache after checking that its first bytes hash
 * to what was given out; if they do not, the stream throws `IRB_DIGEST_MISMATCH`.
 */
export async function* followBlob(context: FollowContext): AsyncGenerator<Uint8Array, void, undefined> {
  const { cache, descriptor, signal } = context;
  const { digest, size } = descriptor;
  let settled = false;
  let failed = false;
  let failure: unknown;
  let live: LiveDownload | undefined;
  const wake = () => live?.notify();
  context.done.then(
    () => {
      settled = true;
      wake();
    },
    (error: unknown) => {
      settled = failed = true;
      failure = error;
      wake();
    },
  );
  signal?.addEventListener('abort', wake, { once: true });
  let handle: FileHandle | undefined;
  let generation = 0;
  const follower: Follower = {
    position: 0,
    snapshot: undefined,
    hashPrefix: (length) => hashPrefix(handle as FileHandle, digest, length),
  };
  try {
    live = await Promise.race([
      context.live,
      context.done.then(
        () => undefined,
        () => undefined,
      ),
    ]);
    // Wait for the download's staged file (it may queue behind other downloads) or its end.
    while (live && live.path === undefined && !settled) {
      signal?.throwIfAborted();
      await live.changed();
    }
    signal?.throwIfAborted();
    if (failed) throw failure;
    if (live?.path !== undefined && !live.committed) {
      handle = await open(live.path, 'r').catch(() => undefined);
    }
    if (live && handle) {
      live.add(follower);
      generation = live.generation;
      for (;;) {
        signal?.throwIfAborted();
        if (failed) throw failure;
        if (live.generation !== generation) {
          // Nothing given out yet: follow the new attempt from its start.
          if (follower.position > 0) break;
          generation = live.generation;
        }
        if ((!live.tentative || live.committed) && follower.position < live.offset) {
          const length = Math.min(FOLLOW_CHUNK, live.offset - follower.position);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buffer, 0, length, follower.position);
          // Reset while reading: these bytes may be a mix of two attempts; never give them out.
          if (live.generation !== generation || bytesRead === 0) continue;
          follower.position += bytesRead;
          yield new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead);
          continue;
        }
        if (settled) break;
        await live.changed();
      }
    }
    // The download's outcome decides whether what was given out is trusted.
    await context.done.catch(() => undefined);
    signal?.throwIfAborted();
    if (failed) throw failure;
    if (live?.committed && handle && live.generation === generation && follower.position === size) {
      // Every byte given out was hashed by the download, which verified and committed this file.
      return;
    }
    const given = follower.position;
    const expected =
      given === 0 ? undefined : await (follower.snapshot ?? hashPrefix(handle as FileHandle, digest, given));
    yield* resumeVerified(cache, descriptor, given, expected, signal);
  } finally {
    signal?.removeEventListener('abort', wake);
    live?.remove(follower);
    await handle?.close().catch(() => undefined);
  }
}

/** Hash (hex) of the first `length` bytes of the file, in the digest's algorithm. */
async function hashPrefix(handle: FileHandle, digest: string, length: number): Promise<string> {
  const hasher = createDigestHasher(digest);
  const buffer = Buffer.allocUnsafe(Math.min(FOLLOW_CHUNK * 4, length));
  let position = 0;
  while (position < length) {
    const want = Math.min(buffer.byteLength, length - position);
    const { bytesRead } = await handle.read(buffer, 0, want, position);
    if (bytesRead === 0) break;
    hasher.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return position === length ? hasher.digest('hex') : '';
}

/**
 * The verified cached blob from byte `given` on, after checking its first `given` bytes hash to
 * `expected` (the bytes the stream already gave out came from another attempt).
 */
async function* resumeVerified(
  cache: BlobCache,
  descriptor: Descriptor,
  given: number,
  expected: string | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array, void, undefined> {
  const { digest, size } = descriptor;
  const hasher = expected === undefined ? undefined : createDigestHasher(digest);
  let position = 0;
  for await (const chunk of cache.open(digest, size, signal)) {
    const end = position + chunk.byteLength;
    if (end <= given) {
      hasher?.update(chunk);
    } else if (position >= given) {
      yield chunk;
    } else {
      hasher?.update(chunk.subarray(0, given - position));
      check(hasher, expected, digest);
      yield chunk.subarray(given - position);
    }
    if (end === given) check(hasher, expected, digest);
    position = end;
  }
}

function check(
  hasher: ReturnType<typeof createDigestHasher> | undefined,
  expected: string | undefined,
  digest: string,
): void {
  if (!hasher || expected === undefined) return;
  if (hasher.digest('hex') !== expected) {
    throw new IrbError(
      'IRB_DIGEST_MISMATCH',
      `blob ${digest}: the bytes read while it downloaded differ from the verified blob (an attempt that was abandoned sent other bytes); they were discarded, run again`,
    );
  }
}
