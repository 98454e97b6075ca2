import { constants } from 'node:fs';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { tempPath } from './temp.ts';

/** Options of {@link replaceFile}. */
export interface ReplaceFileOptions {
  /**
   * Where the temporary file is written: a directory on the same file system as `path` (the
   * cache's `tmp` area). Default: `path`'s own directory.
   */
  tempDir?: string;
  /** Mode of a new file. Default 0600: the cache holds what private images contain. */
  mode?: number;
}

/**
 * Replaces `path` with `bytes` atomically: a new temporary file ({@link tempPath}), then a rename,
 * so readers see the old file, or the whole new one, never a part. Not synced: what irb stores in
 * its cache is verified when read, so a file a crash damaged is a miss, not a wrong answer. The
 * temporary file is removed on failure, and the errno error thrown.
 */
export async function replaceFile(
  path: string,
  bytes: Uint8Array,
  options: ReplaceFileOptions = {},
): Promise<void> {
  const temp = tempPath(options.tempDir ?? dirname(path), basename(path));
  try {
    const handle = await open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      options.mode ?? 0o600,
    );
    try {
      await handle.writeFile(bytes);
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/**
 * Takes a private hard link to `path` in `tempDir` (same file system), named as a temporary file
 * of this process: a prune or a clear that removes `path` meanwhile cannot take its bytes away,
 * and if this process is killed the link is swept like any leftover. `undefined` when `path` is
 * gone. Remove the link with `unlink` when done.
 */
export async function holdFile(path: string, tempDir: string): Promise<string | undefined> {
  const held = tempPath(tempDir, basename(path));
  try {
    await link(path, held);
    return held;
  } catch {
    return undefined;
  }
}
