import { corruptCacheEntry, removeCorruptBlobs } from '@irb/store';

/** What an attempt tells {@link repairingCache}: the blobs it read from the cache. */
export interface RepairContext {
  /** Warnings for the summary: which cached files were replaced before this attempt. */
  readonly warnings: readonly string[];
  /** Digests of the cached blobs the attempt reads (the image's layers). */
  readonly blobs: Set<string>;
}

/**
 * Runs `attempt`, and once more when it failed because a file of the cache at `root` turned out
 * corrupt: a member or blob that no longer matches the digest recorded when it was stored (the
 * error says so), or, after a failure that damaged bytes may explain (a decoder's), one of the
 * blobs the attempt read that fails a check now (a decompressor may choke on a damaged blob
 * before the blob's own check at its end).
 * The cache removed the file, so the second attempt fetches or builds it afresh instead of
 * failing; it reports which file was replaced. An abort is never retried.
 */
export async function repairingCache<T>(
  root: string | undefined,
  signal: AbortSignal | undefined,
  attempt: (context: RepairContext) => Promise<T>,
): Promise<T> {
  const first: RepairContext = { warnings: [], blobs: new Set() };
  try {
    return await attempt(first);
  } catch (error) {
    if (signal?.aborted || root === undefined) throw error;
    const entry = corruptCacheEntry(error);
    const removed =
      entry !== undefined
        ? [entry]
        : damageMayExplain(error)
          ? await removeCorruptBlobs(root, first.blobs, signal).catch(() => [])
          : [];
    if (removed.length === 0) throw error;
    return attempt({
      warnings: removed.map(
        (path) =>
          `the cached ${path} did not match its digest (disk corruption?); it was removed and fetched or built again`,
      ),
      blobs: new Set(),
    });
  }
}

/**
 * Whether damaged layer bytes could have caused `error`: what the decoders say of bad input
 * (tar, compression, sizes and digests), or an error that is not irb's own. Not a refused
 * option, an output that cannot be written or a registry that cannot be reached: checking the
 * blobs after those would only cost time.
 */
function damageMayExplain(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || !code.startsWith('IRB_')) return true;
  return /^IRB_(LAYER|GZIP|ZSTD|LZ4|COMPRESSION|DIGEST|SIZE|CPIO)_/.test(code);
}

/**
 * `data`, then the outcome of `verify` (started when `data` is first read, so it runs while the
 * bytes are copied): a rejection surfaces as the stream's error after the last byte, which a
 * writer that renames only on success (writeFileAtomic) turns into no output at all.
 */
export async function* verifiedAtEnd(
  data: AsyncIterable<Uint8Array>,
  verify: () => Promise<void>,
): AsyncGenerator<Uint8Array> {
  const checking = verify();
  // Awaited below; never an unhandled rejection while `data` is read.
  checking.catch(() => {});
  yield* data;
  await checking;
}
