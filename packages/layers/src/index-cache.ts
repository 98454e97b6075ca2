import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { RECORDS_FORMAT } from './records.ts';
import type { IndexCache, LayerSource } from './types.ts';

/** OCI digest grammar: `algorithm:encoded`. Only layers named by a digest are cached. */
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * The cache key of a layer's header records: format version, blob digest and media type (which
 * decides how the blob is decompressed). `undefined` when the layer has no usable digest.
 */
export function indexCacheKey(layer: LayerSource): string | undefined {
  if (!DIGEST.test(layer.digest)) return undefined;
  return `irb-layer-index/v${RECORDS_FORMAT}/${layer.digest}/${layer.mediaType}`;
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

/**
 * An {@link IndexCache} in a directory: one file per key (see {@link indexCacheFileName}), written
 * to a temp file (`<entry>.<pid>.<random>.tmp`, so a prune can tell a killed writer's leftover)
 * and renamed into place, so readers see a whole entry or none. A hit sets the entry's mtime to
 * now: that is its last use, which a size-limited prune goes by. Entries are not trusted here:
 * `indexLayers` checks each one (format, key, checksum, structure) and reads the layer again when
 * it does not pass. Unreadable entries read as missing; a directory that cannot be created fails
 * the write at once.
 */
export function createDirectoryIndexCache(dir: string): IndexCache {
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
      await makeDirectory(resolve(dir));
      const target = file(key);
      const temp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await writeFile(temp, bytes);
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    },
  };
}

/**
 * `mkdir -p` that tries each level at most twice. Node's recursive mkdir never returns for a
 * path the filesystem refuses to create although its parent exists (under `/proc`: ENOENT for the
 * child, EEXIST for the parent, forever).
 */
async function makeDirectory(path: string): Promise<void> {
  const attempt = async (): Promise<boolean> => {
    try {
      await mkdir(path);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await stat(path)).isDirectory()) return true;
      if (code === 'ENOENT') return false;
      throw error;
    }
  };
  if (await attempt()) return;
  const parent = dirname(path);
  if (parent !== path) await makeDirectory(parent);
  if (parent === path || !(await attempt())) {
    throw Object.assign(new Error(`cannot create ${path}: its parent refuses new entries`), {
      code: 'ENOENT',
    });
  }
}
