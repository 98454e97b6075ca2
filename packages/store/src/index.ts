export { ensureCacheAreas, ensureDirectory, sweepTemps } from './ensure.ts';
export { type CorruptEntryError, cacheWriteFailure, corruptCacheEntry } from './errors.ts';
export { cacheMaxBytes, DEFAULT_CACHE_MAX_BYTES, parseByteSize, parseDuration } from './limits.ts';
export { type CacheEntry, listCache } from './list.ts';
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
  type ClearCacheOptions,
  clearCache,
  type PruneCacheOptions,
  type PruneCacheResult,
  pruneCache,
} from './prune.ts';
export {
  isStaleTemp,
  removeStaleTemps,
  staleTemps,
  type TempNameOptions,
  tempName,
  tempNameOwner,
  tempPath,
} from './temp.ts';
export { createDigester, discardCorruptEntry, fileDigest, removeCorruptBlobs } from './verify.ts';
export { holdFile, type ReplaceFileOptions, replaceFile } from './write.ts';
