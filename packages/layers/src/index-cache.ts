import { createHash } from 'node:crypto';
import { readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirectory, replaceFile } from '@irb/store';
import { RECORDS_FORMAT } from './records.ts';
import type { IndexCache, LayerSource } from './types.ts';

/** OCI digest grammar: `algorithm:encoded`. Only layers named by a digest are cached. */
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * The cache key of a layer's header records: format version, blob digest, media type (which
 * decides how the blob is decompressed) and the diff_id the uncompressed tar was checked against,
 * if any: an entry is written only after that check passed, so a hit stands for it and a warm
 * build need not decompress the layer to know. `undefined` when the layer has no usable digest.
 */
export function indexCacheKey(layer: LayerSource): string | undefined {
  if (!DIGEST.test(layer.digest)) return undefined;
  const key = `irb-layer-index/v${RECORDS_FORMAT}/${layer.digest}/${layer.mediaType}`;
  return layer.diffId ? `${key};diff_id=${layer.diffId}` : key;
}

/**
 * The file name of an entry: `<algorithm>-<encoded>.<keyhash>.idx` when the key names a layer
 * digest, so a cache listing (`irb cache ls`) shows which layer an entry describes; else
 * `<keyhash>.idx`. The key hash keeps entries of one layer under other media types or format
 * versions apart.
 */
export function indexCacheFileName(key: string): string {
  const hash = createHash('sha256').update(key).digest('hex');
  const digest = /^irb-layer-index\/v\d+\/([a-z0-9]+):([a-zA-Z0-9=_-]+)\//.exec(key);
  return digest ? `${digest[1]}-${digest[2]}.${hash.slice(0, 16)}.idx` : `${hash}.idx`;
}

/** Options of {@link createDirectoryIndexCache}. */
export interface DirectoryIndexCacheOptions {
  /**
   * Where entries are written before they are renamed into place: a directory on the same file
   * system (the cache's `tmp` area, see @irb/store). Default: the index directory itself.
   */
  tempDir?: string;
}

/**
 * An {@link IndexCache} in a directory: one file per key (see {@link indexCacheFileName}),
 * replaced atomically (@irb/store's `replaceFile`: a temp file named after this process, so a
 * prune can tell a killed writer's leftover, then a rename), so readers see a whole entry or
 * none. A hit sets the entry's mtime to now: that is its last use, which a size-limited prune
 * goes by. Entries are not trusted here: `indexLayers` checks each one (format, key, checksum,
 * structure) and reads the layer again when it does not pass. Unreadable entries read as
 * missing; a directory that cannot be created fails the write at once.
 */
export function createDirectoryIndexCache(dir: string, options: DirectoryIndexCacheOptions = {}): IndexCache {
  const file = (key: string) => join(dir, indexCacheFileName(key));
  return {
    async get(key) {
      const path = file(key);
      try {
        const bytes = new Uint8Array(await readFile(path));
        const now = new Date();
        await utimes(path, now, now).catch(() => undefined);
        return bytes;
      } catch {
        return undefined;
      }
    },
    async set(key, bytes) {
      await makeDirectory(dir);
      await replaceFile(file(key), bytes, options.tempDir !== undefined ? { tempDir: options.tempDir } : {});
    },
  };
}
