export { createDirectoryIndexCache, type DirectoryIndexCacheOptions, indexCacheKey } from './index-cache.ts';
export { indexLayers } from './index-layers.ts';
export { parseInjectSpec } from './inject-spec.ts';
export { compileGlob, type Glob } from './path.ts';
export { Rootfs } from './rootfs.ts';
export type {
  IndexCache,
  IndexLayersOptions,
  InjectOptions,
  InjectSource,
  LayerSource,
  LayersProgress,
  PathFilterEntry,
  RootfsNodeInfo,
  RootfsNodeType,
  RootfsStats,
} from './types.ts';
