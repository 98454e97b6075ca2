import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
 * An {@link IndexCache} in a directory: one file per key (named by the key's SHA-256), written
 * to a temp file and renamed into place, so readers see a whole entry or none. Entries are not
 * trusted here: `indexLayers` checks each one (format, key, checksum, structure) and reads the
 * layer again when it does not pass. Unreadable entries read as missing.
 */
export function createDirectoryIndexCache(dir: string): IndexCache {
  const file = (key: string) => join(dir, `${createHash('sha256').update(key).digest('hex')}.idx`);
  return {
    async get(key) {
      try {
        return new Uint8Array(await readFile(file(key)));
      } catch {
        return undefined;
      }
    },
    async set(key, bytes) {
      await mkdir(dir, { recursive: true });
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
