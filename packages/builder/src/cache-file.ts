import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { processToken } from '@irb/registry/owner';

/**
 * A temporary name beside a cache entry, `<path>.<owner>.<random>.tmp`: a prune removes it once
 * its writer is gone (see @irb/registry's `pruneCache`). Light: `irb append` writes cache files too.
 */
export function cacheTempPath(path: string): string {
  return `${path}.${processToken()}.${randomBytes(6).toString('hex')}.tmp`;
}

/** Replaces `path` with `data` atomically (temporary file, rename); the temporary file does not outlive a failure. */
export async function replaceCacheFile(path: string, data: Uint8Array | string): Promise<void> {
  const temp = cacheTempPath(path);
  try {
    await writeFile(temp, data, { flag: 'wx', mode: 0o644 });
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}
