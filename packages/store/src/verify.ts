import { createHash } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { IrbError, type IrbErrorCode } from '@irb/errors';
import type { CorruptEntryError } from './errors.ts';
import { blobPath } from './paths.ts';

/** Bytes read at once while hashing a file: large reads cost fewer system calls. */
const CHUNK = 4 * 1024 * 1024;

/**
 * The `<algorithm>:<hex>` digest (default sha256) of a file's bytes and its size, read from where
 * it is (the page cache, mostly); `undefined` when it cannot be read. What a cache entry's
 * description records when it is stored, and what it is checked against before it is used.
 */
export async function fileDigest(
  path: string,
  signal?: AbortSignal,
  algorithm = 'sha256',
): Promise<{ digest: string; size: number } | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path);
  } catch {
    return undefined;
  }
  try {
    const hash = createHash(algorithm);
    const buffer = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { digest: `${algorithm}:${hash.digest('hex')}`, size };
  } catch (error) {
    if (signal?.aborted) throw error;
    return undefined;
  } finally {
    await handle.close();
  }
}

/** A running `sha256:<hex>` digest of bytes as they pass (what a cache entry records when stored). */
export function createDigester(): { update(chunk: Uint8Array): void; digest(): string } {
  const hash = createHash('sha256');
  return {
    update: (chunk) => {
      hash.update(chunk);
    },
    digest: () => `sha256:${hash.digest('hex')}`,
  };
}

/**
 * Files this process removed from a cache because they failed verification, until a repair asks
 * ({@link removeCorruptBlobs}): the reader that found the damage may have seen another error
 * first (a decompressor choking on the damaged bytes) and lost this one.
 */
const discarded = new Set<string>();

/**
 * Removes a cache file whose bytes do not match what was recorded when it was stored (disk
 * corruption, a stray write), and any files that describe it (`also`), and returns the error to
 * throw: `code` (`IRB_DIGEST_MISMATCH`, `IRB_SIZE_MISMATCH`) and `message` as given, with
 * `corruptEntry` naming the file, so a caller can tell "the cache's copy was bad, try again"
 * ({@link corruptCacheEntry}) from "the source sent other bytes".
 */
export async function discardCorruptEntry(
  path: string,
  code: Extract<IrbErrorCode, 'IRB_DIGEST_MISMATCH' | 'IRB_SIZE_MISMATCH'>,
  message: string,
  options: { also?: readonly string[]; cause?: unknown } = {},
): Promise<CorruptEntryError> {
  await Promise.all([path, ...(options.also ?? [])].map((p) => unlink(p).catch(() => {})));
  discarded.add(path);
  const error = new IrbError(
    code,
    message,
    options.cause === undefined ? undefined : { cause: options.cause },
  );
  return Object.assign(error, { corruptEntry: path });
}

/**
 * Checks the cached blobs of `digests` in the cache at `root` against their digests, removing
 * those that fail; returns the paths of the blobs that were corrupt: removed now, or removed
 * earlier by this process while being read ({@link discardCorruptEntry}). For a read that failed
 * in a way a damaged copy explains (a decompressor that choked before the blob's own check at
 * its end): when a path comes back, the same read again fetches the blob afresh.
 */
export async function removeCorruptBlobs(
  root: string,
  digests: Iterable<string>,
  signal?: AbortSignal,
): Promise<string[]> {
  const removed: string[] = [];
  for (const digest of new Set(digests)) {
    const algorithm = digest.slice(0, digest.indexOf(':'));
    const path = blobPath(root, digest);
    if (path === undefined || !/^sha(256|384|512)$/.test(algorithm)) continue;
    if (discarded.delete(path)) {
      removed.push(path);
      continue;
    }
    const actual = await fileDigest(path, signal, algorithm);
    if (actual === undefined || actual.digest === digest) continue;
    await discardCorruptEntry(path, 'IRB_DIGEST_MISMATCH', `cached blob ${digest} is corrupt`);
    discarded.delete(path);
    removed.push(path);
  }
  return removed;
}
