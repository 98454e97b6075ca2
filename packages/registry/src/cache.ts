import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { IrbError } from '@irb/errors';
import {
  blobPath,
  type CacheLayout,
  cacheLayout,
  cacheMaxBytes,
  cacheWriteFailure,
  discardCorruptEntry,
  ensureDirectory,
  forgetTemporaryRoot,
  Leases,
  pruneCache,
  registerTemporaryRoot,
  sweepTemps,
  tempPath,
  waitForPrune,
} from '@irb/store';
import { parseDigest, verifyBytes, verifyStream } from './digest.ts';

/** A file being written into the cache; becomes visible only through {@link BlobCache.commit}. */
export interface StagedBlob {
  path: string;
  digest: string;
}

/** Options for a {@link BlobCache}. */
export interface BlobCacheOptions {
  /** A per-process store in a temp dir removed by {@link BlobCache.dispose}. Default false. */
  temporary?: boolean;
  /**
   * Limit applied by {@link BlobCache.dispose} when this cache stored a blob: least recently used
   * blobs, layer indexes and outputs are removed until the cache is under it. Default
   * {@link cacheMaxBytes} (`IRB_CACHE_MAX_SIZE`, else 10 GiB); `false` turns the limit off.
   */
  maxBytes?: number | false;
  /**
   * How long to wait for another process's prune before failing with `IRB_CACHE_BUSY`. Default
   * two minutes (a prune takes seconds; longer means it is stopped or stuck).
   */
  pruneWaitMs?: number;
}

/**
 * The content-addressed blobs of the cache at a root (see @irb/store for the layout):
 * `<root>/blobs/<algorithm>/<hex>`.
 *
 * Blobs are written to a uniquely named file in `<root>/tmp` (same filesystem), verified,
 * then renamed into place. Rename is atomic, so readers see either nothing or a complete
 * verified blob, and two processes fetching the same blob each write their own temp file and
 * both renames succeed with identical content. Reads verify again, and a blob that fails (disk
 * corruption, tampering) is removed. Every blob a persistent store touches is leased (see
 * @irb/store's `pruneCache`) and its mtime set to now: the mtime is the blob's last use.
 */
export class BlobCache {
  /** The cache root (`cacheDir`). */
  readonly dir: string;
  /** Where everything of this cache lives. */
  readonly layout: CacheLayout;
  /** True when the store lives in a per-process temp dir removed by {@link dispose}. */
  readonly temporary: boolean;
  readonly #maxBytes: number | undefined;
  readonly #pruneWaitMs: number | undefined;
  readonly #leaseFile: Leases;
  #disposed = false;
  #swept: Promise<void> | undefined;
  #leases = new Map<string, Promise<void>>();
  #stored = false;

  /** The blobs of the cache at `root`. */
  constructor(root: string, options: BlobCacheOptions = {}) {
    this.layout = cacheLayout(root);
    this.dir = this.layout.root;
    this.temporary = options.temporary === true;
    this.#pruneWaitMs = options.pruneWaitMs;
    // Read now, so a bad IRB_CACHE_MAX_SIZE fails before any download rather than after.
    this.#maxBytes =
      this.temporary || options.maxBytes === false ? undefined : (options.maxBytes ?? cacheMaxBytes());
    this.#leaseFile = new Leases(this.dir);
    if (this.temporary) registerTemporaryRoot(this.dir);
  }

  /** A store in a fresh temp dir, removed on {@link dispose} or at process exit (used when caching is off). */
  static async createTemporary(): Promise<BlobCache> {
    const dir = await mkdtemp(join(tmpdir(), 'irb-blobs-'));
    return new BlobCache(dir, { temporary: true });
  }

  /** Where a blob lives (whether or not it is there). */
  path(digest: string): string {
    // parseDigest refuses what is no supported digest, with the error callers expect.
    parseDigest(digest);
    return blobPath(this.layout, digest) as string;
  }

  /** True when the blob is stored with the expected size (content is verified on read). */
  async has(digest: string, size?: number): Promise<boolean> {
    await this.#lease(digest);
    try {
      const info = await stat(this.path(digest));
      return info.isFile() && (size === undefined || info.size === size);
    } catch {
      return false;
    }
  }

  /** A small blob's bytes, verified; `undefined` when absent or corrupt (then it is removed). */
  async readBytes(digest: string, size?: number): Promise<Uint8Array | undefined> {
    await this.#lease(digest);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.path(digest)));
    } catch {
      return undefined;
    }
    try {
      verifyBytes(bytes, size === undefined ? { digest } : { digest, size });
      return bytes;
    } catch {
      await rm(this.path(digest), { force: true });
      return undefined;
    }
  }

  /** Stores bytes already verified against `digest` by the caller (verified again here). */
  async writeBytes(digest: string, bytes: Uint8Array): Promise<void> {
    verifyBytes(bytes, { digest, size: bytes.byteLength });
    const staged = await this.stage(digest);
    try {
      try {
        const handle = await open(staged.path, 'w', 0o600);
        try {
          // Not synced: reads verify the digest (see the download path in blobs.ts).
          await handle.writeFile(bytes);
        } finally {
          await handle.close();
        }
      } catch (error) {
        throw cacheWriteFailure(this.dir, error);
      }
      await this.commit(staged);
    } finally {
      await rm(staged.path, { force: true });
    }
  }

  /**
   * A new unique temp file path for a blob about to be downloaded, named as a temp file of this
   * process (@irb/store's `tempName`) so a later run can tell an orphan from a download in progress.
   */
  async stage(digest: string): Promise<StagedBlob> {
    this.#assertOpen();
    const { hex } = parseDigest(digest);
    await ensureDirectory(this.layout.tmp, 'the blob cache', this.dir);
    await this.#lease(digest);
    await this.#sweepOnce();
    return { path: tempPath(this.layout.tmp, hex.slice(0, 16)), digest };
  }

  /**
   * Removes what killed processes left in the cache's temp areas (partial downloads, spools):
   * files whose writer's pid runs no more, or runs a process started at another time. Files of
   * a writer in another pid namespace, which this process cannot judge, are removed after a
   * day. Best effort; returns how many were removed.
   */
  async sweep(): Promise<number> {
    return sweepTemps(this.dir);
  }

  /** Moves a fully written and verified staged file into place (atomic). */
  async commit(staged: StagedBlob): Promise<void> {
    const target = this.path(staged.digest);
    await ensureDirectory(dirname(target), 'the blob cache', this.dir);
    try {
      await rename(staged.path, target);
    } catch (error) {
      throw cacheWriteFailure(this.dir, error);
    }
    this.#stored = true;
  }

  /**
   * Streams a stored blob, verifying size and digest as it goes; when the bytes turn out
   * corrupt the blob is removed and the stream throws `IRB_DIGEST_MISMATCH`/`IRB_SIZE_MISMATCH`
   * marked as a cache corruption (@irb/store's `corruptCacheEntry`): reading it again fetches it
   * afresh.
   */
  async *open(
    digest: string,
    size: number,
    signal?: AbortSignal,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    await this.#lease(digest);
    const path = this.path(digest);
    const stream = createReadStream(path, { highWaterMark: 256 * 1024, ...(signal ? { signal } : {}) });
    try {
      for await (const chunk of verifyStream(stream as AsyncIterable<Buffer>, {
        digest,
        size,
        what: `cached blob ${digest}`,
      })) {
        yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const code = (error as { code?: string }).code;
      if (code === 'IRB_DIGEST_MISMATCH' || code === 'IRB_SIZE_MISMATCH') {
        throw await discardCorruptEntry(
          path,
          code,
          `cached blob ${digest} is corrupt and was removed from the cache (${this.dir}); run again to download it afresh`,
          { cause: error },
        );
      }
      if (code === 'ENOENT') {
        throw new IrbError(
          'IRB_CACHE_MISS',
          `blob ${digest} disappeared from the cache (${this.dir}) while in use; run again`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      stream.destroy();
    }
  }

  /**
   * Ends this process's use of the store. A temporary store is removed. A persistent one that
   * stored a blob is trimmed to its limit (least recently used first; what this process used
   * stays), then its lease is released. Trimming is best effort and never fails the caller.
   */
  async dispose(): Promise<void> {
    if (this.temporary) {
      if (this.#disposed) return;
      this.#disposed = true;
      forgetTemporaryRoot(this.dir);
      await rm(this.dir, { recursive: true, force: true });
      return;
    }
    await Promise.allSettled(this.#leases.values());
    if (this.#stored && this.#maxBytes !== undefined) {
      this.#stored = false;
      await pruneCache(this.dir, { maxBytes: this.#maxBytes, busy: 'skip' }).catch(() => undefined);
    }
    this.#leases.clear();
    await this.#leaseFile.release();
  }

  /** Records `digest` as in use by this process (once per digest) and marks it used now. */
  #lease(digest: string): Promise<void> {
    if (this.temporary) return Promise.resolve();
    let pending = this.#leases.get(digest);
    if (!pending) {
      pending = this.#writeLease(digest);
      this.#leases.set(digest, pending);
    }
    return pending;
  }

  async #writeLease(digest: string): Promise<void> {
    // A cache this process cannot write is one no other user can prune either: reading goes on.
    if (!(await this.#leaseFile.add(digest))) return;
    try {
      await waitForPrune(this.dir, this.#pruneWaitMs);
    } catch (error) {
      // Asked again next time: the lease is written, only the wait failed.
      this.#leases.delete(digest);
      throw error;
    }
    await this.#sweepOnce();
    // The mtime is the last use, set once per process and blob: no scan, no atime dependence.
    const now = new Date();
    await utimes(this.path(digest), now, now).catch(() => undefined);
  }

  #sweepOnce(): Promise<void> {
    this.#swept ??= sweepTemps(this.dir).then(
      () => undefined,
      () => undefined,
    );
    return this.#swept;
  }

  #assertOpen(): void {
    if (this.temporary && this.#disposed) {
      throw new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed; create a new one');
    }
  }
}
