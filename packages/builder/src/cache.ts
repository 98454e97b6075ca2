import { defaultCacheDir, ensureCacheDirectory, indexCacheDirFor, outputCacheDirFor } from '@irb/registry';

export {
  type CacheEntry,
  cacheMaxBytes,
  DEFAULT_CACHE_MAX_BYTES,
  defaultCacheDir,
  indexCacheDirFor,
  type ListCacheOptions,
  listCache,
  outputCacheDirFor,
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
  /** Built base members by base key, beside it: `~/.cache/irb/output`, or `<cacheDir>-output`. */
  output: string;
}

/** The blob, layer index and output directories for a `cacheDir` option (default: {@link defaultCacheDir}). */
export function cacheDirectories(cacheDir?: string): CacheDirectories {
  const blobs = cacheDir ?? defaultCacheDir();
  return { blobs, index: indexCacheDirFor(blobs), output: outputCacheDirFor(blobs) };
}

/**
 * Creates the cache directories before a build starts, so a directory that cannot be created
 * fails at once with `IRB_CACHE_WRITE_FAILED` naming `cacheDir` (never a retry loop).
 */
export async function ensureCacheDirectories(cacheDir?: string): Promise<CacheDirectories> {
  const dirs = cacheDirectories(cacheDir);
  await ensureCacheDirectory(dirs.blobs, 'the blob cache');
  await ensureCacheDirectory(dirs.index, 'the layer index cache');
  await ensureCacheDirectory(dirs.output, 'the output cache');
  return dirs;
}
