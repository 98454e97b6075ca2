import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p` that tries each level at most twice; new levels get `mode` (default 0700: the cache
 * holds layers of private images). Node's `mkdir(…, { recursive: true })` is not used: under
 * `/proc` it never returns (mkdir of the child says ENOENT, of the parent EEXIST, and it retries
 * the child forever). Throws the errno error of the level that failed (ENOTDIR when a file
 * stands where a directory must be).
 */
export async function makeDirectory(path: string, mode = 0o700): Promise<void> {
  const target = resolve(path);
  const attempt = async (): Promise<boolean> => {
    try {
      await mkdir(target, mode);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        if ((await stat(target)).isDirectory()) return true;
        throw Object.assign(new Error(`${target} exists and is not a directory`), { code: 'ENOTDIR' });
      }
      if (code === 'ENOENT') return false;
      throw error;
    }
  };
  if (await attempt()) return;
  const parent = dirname(target);
  if (parent === target) throw Object.assign(new Error(`cannot create ${target}`), { code: 'ENOENT' });
  await makeDirectory(parent, mode);
  // The parent exists now; a second ENOENT means this filesystem refuses the name (e.g. /proc).
  if (!(await attempt())) {
    throw Object.assign(new Error(`mkdir ${target}: the parent exists but refuses new entries`), {
      code: 'ENOENT',
    });
  }
}
