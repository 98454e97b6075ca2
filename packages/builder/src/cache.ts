// The cache functions of @irb/store that `irb cache` uses, through the facade (see its README).
export {
  type CacheArea,
  type CacheEntry,
  type CacheLayout,
  type ClearCacheOptions,
  cacheAreas,
  cacheLayout,
  cacheMaxBytes,
  clearCache,
  DEFAULT_CACHE_MAX_BYTES,
  defaultCacheRoot,
  listCache,
  type PruneCacheOptions,
  type PruneCacheResult,
  parseByteSize,
  parseDuration,
  pruneCache,
} from '@irb/store';
