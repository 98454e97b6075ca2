import { randomBytes } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { IrbError } from '@irb/errors';
import { parseDigest, verifyBytes, verifyStream } from './digest.ts';

/**
 * The default blob cache directory: `IRB_CACHE_DIR`, else `$XDG_CACHE_HOME/irb/blobs`,
 * else `~/.cache/irb/blobs`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IRB_CACHE_DIR) return env.IRB_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.cache'), 'irb', 'blobs');
}

const STORAGE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EIO']);

/**
 * Wraps a filesystem failure while writing the cache in an `IRB_CACHE_WRITE_FAILED` that says
 * where and how to fix it; other errors pass through unchanged.
 */
export function cacheWriteError(dir: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (!code || !STORAGE_CODES.has(code)) return error;
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the disk is full'
      : code === 'EIO'
        ? 'the disk reported an I/O error'
        : 'it is not writable';
  return new IrbError(
    'IRB_CACHE_WRITE_FAILED',
    `cannot write the blob cache at ${dir}: ${why} (${code}); free space, or point IRB_CACHE_DIR / the cacheDir option at a writable directory, or disable the cache`,
    { cause: error },
  );
}

/** A file being written into the cache; becomes visible only through {@link BlobCache.commit}. */
export interface StagedBlob {
  path: string;
  digest: string;
}

const temporaryDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * A content-addressed blob store: `<dir>/<algorithm>/<hex>`.
 *
 * Blobs are written to a uniquely named file in `<dir>/.tmp` (same filesystem), verified,
 * flushed to disk, then renamed into place. Rename is atomic, so readers see either nothing
 * or a complete verified blob, and two processes fetching the same blob each write their
 * own temp file and both renames succeed with identical content — no locks needed.
 * Reads verify again, and a blob that fails (disk corruption, tampering) is removed.
 */
export class BlobCache {
  /** Root directory of the store. */
  readonly dir: string;
  /** True when the store lives in a per-process temp dir removed by {@link dispose}. */
  readonly temporary: boolean;
  #disposed = false;
  #swept = false;

  constructor(dir: string, options: { temporary?: boolean } = {}) {
    this.dir = dir;
    this.temporary = options.temporary === true;
    if (this.temporary) {
      temporaryDirs.add(dir);
      installExitHook();
    }
  }

  /** A store in a fresh temp dir, removed on {@link dispose} or at process exit (used when caching is off). */
  static async createTemporary(): Promise<BlobCache> {
    const dir = await mkdtemp(join(tmpdir(), 'irb-blobs-'));
    return new BlobCache(dir, { temporary: true });
  }

  /** Where a blob lives (whether or not it is there). */
  path(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, algorithm, hex);
  }

  /** True when the blob is stored with the expected size (content is verified on read). */
  async has(digest: string, size?: number): Promise<boolean> {
    try {
      const info = await stat(this.path(digest));
      return info.isFile() && (size === undefined || info.size === size);
    } catch {
      return false;
    }
  }

  /** A small blob's bytes, verified; `undefined` when absent or corrupt (then it is removed). */
  async readBytes(digest: string, size?: number): Promise<Uint8Array | undefined> {
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
        const handle = await open(staged.path, 'w');
        try {
          // Not synced: reads verify the digest (see the download path in client.ts).
          await handle.writeFile(bytes);
        } finally {
          await handle.close();
        }
      } catch (error) {
        throw cacheWriteError(this.dir, error);
      }
      await this.commit(staged);
    } finally {
      await rm(staged.path, { force: true });
    }
  }

  /** A new unique temp file path for a blob about to be downloaded. */
  async stage(digest: string): Promise<StagedBlob> {
    this.#assertOpen();
    const { hex } = parseDigest(digest);
    const tmp = join(this.dir, '.tmp');
    try {
      await mkdir(tmp, { recursive: true });
    } catch (error) {
      throw cacheWriteError(this.dir, error);
    }
    if (!this.#swept) {
      this.#swept = true;
      await this.sweep();
    }
    return {
      path: join(tmp, `${hex.slice(0, 16)}.${process.pid}.${randomBytes(6).toString('hex')}.partial`),
      digest,
    };
  }

  /**
   * Removes temp files a killed process left behind (older than `maxAgeMs`, default a day, so
   * a download running in another process is never touched). Best effort; runs once per cache
   * object before its first download.
   */
  async sweep(maxAgeMs = 24 * 60 * 60 * 1000): Promise<number> {
    const tmp = join(this.dir, '.tmp');
    let removed = 0;
    const names = await readdir(tmp).catch(() => [] as string[]);
    const cutoff = Date.now() - maxAgeMs;
    for (const name of names) {
      if (!name.endsWith('.partial')) continue;
      const path = join(tmp, name);
      const info = await stat(path).catch(() => undefined);
      if (info && info.mtimeMs < cutoff) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Moves a fully written and verified staged file into place (atomic). */
  async commit(staged: StagedBlob): Promise<void> {
    const target = this.path(staged.digest);
    try {
      await mkdir(join(target, '..'), { recursive: true });
      await rename(staged.path, target);
    } catch (error) {
      throw cacheWriteError(this.dir, error);
    }
  }

  /**
   * Streams a stored blob, verifying size and digest as it goes; when the bytes turn out
   * corrupt the blob is removed and the stream throws `IRB_DIGEST_MISMATCH`/`IRB_SIZE_MISMATCH`.
   */
  async *open(
    digest: string,
    size: number,
    signal?: AbortSignal,
  ): AsyncGenerator<Uint8Array, void, undefined> {
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
        await unlink(path).catch(() => undefined);
        throw new IrbError(
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

  /** Removes a temporary store (no-op for a persistent one). */
  async dispose(): Promise<void> {
    if (!this.temporary || this.#disposed) return;
    this.#disposed = true;
    temporaryDirs.delete(this.dir);
    await rm(this.dir, { recursive: true, force: true });
  }

  #assertOpen(): void {
    if (this.#disposed) {
      throw new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed; create a new one');
    }
  }
}
