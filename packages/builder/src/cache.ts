import { defaultCacheDir, ensureCacheDirectory, indexCacheDirFor } from '@irb/registry';

export {
  type CacheEntry,
  cacheMaxBytes,
  DEFAULT_CACHE_MAX_BYTES,
  defaultCacheDir,
  indexCacheDirFor,
  type ListCacheOptions,
  listCache,
  type PruneCacheOptions,
  type PruneCacheResult,
  parseByteSize,
  parseDuration,
  pruneCache,
} from '@irb/registry';

/** Where a build keeps its caches. */
export interface CacheDirectories {
  /** Verified blobs by digest (`cacheDir`; default `IRB_CACHE_DIR`, else `~/.cache/irb/blobs`). */
  blobs: string;
  /** Parsed layer headers, beside it: `~/.cache/irb/index`, or `<cacheDir>-index`. */
  index: string;
}

/** The blob and layer index directories for a `cacheDir` option (default: {@link defaultCacheDir}). */
export function cacheDirectories(cacheDir?: string): CacheDirectories {
  const blobs = cacheDir ?? defaultCacheDir();
  return { blobs, index: indexCacheDirFor(blobs) };
}

/**
 * Creates both cache directories before a build starts, so a directory that cannot be created
 * fails at once with `IRB_CACHE_WRITE_FAILED` naming `cacheDir` (never a retry loop).
 */
export async function ensureCacheDirectories(cacheDir?: string): Promise<CacheDirectories> {
  const dirs = cacheDirectories(cacheDir);
  await ensureCacheDirectory(dirs.blobs, 'the blob cache');
  await ensureCacheDirectory(dirs.index, 'the layer index cache');
  return dirs;
}
