// `@irb/builder/paths`: where irb's cache lives (from @irb/store), for a process that needs a
// path before it loads anything else: the CLI's entry point enabling Node's compile cache, and
// `irb cache path`.
export {
  type CacheArea,
  type CacheLayout,
  cacheAreas,
  cacheLayout,
  compileCacheDirectory,
  defaultCacheRoot,
} from '@irb/store/paths';
