// `@irb/layers/scratch`: a root filesystem of injected host files only, for `irb append`. A light
// entry: it loads the tree, injection and emit code, not the layer indexing machinery
// (indexLayers, the index cache, parallel layer readers) that the package's main entry brings.
import { Rootfs } from './rootfs.ts';

export { parseInjectSpec } from './inject-spec.ts';
export { Rootfs } from './rootfs.ts';
export type { InjectOptions, InjectSource, RootfsStats } from './types.ts';

/**
 * An empty root filesystem (just `/`, 0755 root) to inject files into, the same as
 * `indexLayers([], { sourceDateEpoch })` without loading the indexing code. `sourceDateEpoch`
 * is the mtime of what injection synthesizes (default 0).
 */
export function createScratchRootfs(options: { sourceDateEpoch?: number } = {}): Rootfs {
  return new Rootfs({
    layers: [],
    ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
  });
}
