export { indexLayers } from './index-layers.ts';
export { parseInjectSpec } from './inject-spec.ts';
export { Rootfs } from './rootfs.ts';
export type {
  IndexLayersOptions,
  InjectOptions,
  InjectSource,
  LayerSource,
  LayersProgress,
  RootfsNodeInfo,
  RootfsNodeType,
  RootfsStats,
} from './types.ts';
