import { decompress } from '@irb/compress';
import type { DiffIdCheck } from './diff-id.ts';
import { TarReader } from './tar.ts';
import type { LayerSource } from './types.ts';

/** Names a layer in messages: `layer 2/5 (sha256:0123456789ab)`. */
export function layerLabel(index: number, count: number, layer: LayerSource): string {
  return `layer ${index + 1}/${count} (${layer.digest.slice(0, 19)})`;
}

/**
 * Opens a layer blob (a new stream), decompresses it (gzip/zstd by media type, else by magic
 * bytes) and reads it as a tar: the one way every pass — index, emit, readFile — reads a layer.
 * With `check`, the uncompressed tar is hashed on the way for its diff_id. Close the reader when
 * done; closing releases the blob stream.
 */
export function openLayerTar(
  layer: LayerSource,
  label: string,
  signal?: AbortSignal,
  check?: DiffIdCheck,
): TarReader {
  const options = signal ? { signal } : {};
  const tar = decompress(layer.open(options), {
    format: 'auto',
    mediaType: layer.mediaType,
    label,
    ...options,
  });
  return new TarReader(check ? check.hashing(tar) : tar, label);
}
