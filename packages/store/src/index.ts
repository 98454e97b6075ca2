import type { CacheEntry } from './list.ts';
import type { ClearCacheOptions, PruneCacheOptions, PruneCacheResult } from './prune.ts';

export { ensureCacheAreas, ensureDirectory, sweepTemps } from './ensure.ts';
export { type CorruptEntryError, cacheWriteFailure, corruptCacheEntry } from './errors.ts';
export { cacheMaxBytes, DEFAULT_CACHE_MAX_BYTES, parseByteSize, parseDuration } from './limits.ts';
export {
  forgetTemporaryRoot,
  Leases,
  registerTemporaryRoot,
  waitForPrune,
} from './lock.ts';
export { makeDirectory } from './mkdir.ts';
export { isOwnerAlive, processToken } from './owner.ts';
export {
  blobPath,
  type CacheArea,
  type CacheLayout,
  cacheAreas,
  cacheLayout,
  compileCacheDirectory,
  defaultCacheRoot,
} from './paths.ts';
export {
  isStaleTemp,
  removeStaleTemps,
  staleTemps,
  type TempNameOptions,
  tempName,
  tempPath,
} from './temp.ts';
export { createDigester, discardCorruptEntry, fileDigest, removeCorruptBlobs } from './verify.ts';
export { holdFile, type ReplaceFileOptions, replaceFile } from './write.ts';

export type { CacheEntry, ClearCacheOptions, PruneCacheOptions, PruneCacheResult };

// Listing, pruning and clearing are loaded when first called: a build that stores nothing (an
// unchanged rebuild) never needs them.

/** See `listCache` in list.ts: every file of the cache at `root`, by kind. */
export async function listCache(root?: string): Promise<CacheEntry[]> {
  return (await import('./list.ts')).listCache(root);
}

/** See `pruneCache` in prune.ts: trims the cache at `root`, and removes debris and old-layout files. */
export async function pruneCache(root?: string, options?: PruneCacheOptions): Promise<PruneCacheResult> {
  return (await import('./prune.ts')).pruneCache(root, options);
}

/** See `clearCache` in prune.ts: removes everything irb cached at `root` but what running builds use. */
export async function clearCache(root?: string, options?: ClearCacheOptions): Promise<PruneCacheResult> {
  return (await import('./prune.ts')).clearCache(root, options);
}
