// `@irb/registry/cache-dirs`: where the caches live, and making their directories. A light entry
// (node built-ins only) for callers that use the cache directories without the registry client,
// such as `irb append`.
import { mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * The default blob cache directory: `IRB_CACHE_DIR`, else `$XDG_CACHE_HOME/irb/blobs`,
 * else `~/.cache/irb/blobs`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IRB_CACHE_DIR) return env.IRB_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.cache'), 'irb', 'blobs');
}

/**
 * The layer index cache that goes with a blob cache directory: `<parent>/index` beside a
 * directory named `blobs` (so `~/.cache/irb/blobs` pairs with `~/.cache/irb/index`), else
 * `<dir>-index` beside it (`IRB_CACHE_DIR=/var/cache/irb` pairs with `/var/cache/irb-index`).
 */
export function indexCacheDirFor(blobCacheDir: string): string {
  const dir = resolve(blobCacheDir);
  const name = basename(dir);
  return join(dirname(dir), name === 'blobs' ? 'index' : `${name}-index`);
}

/**
 * The output cache directory that goes with a blob cache directory, placed like the index
 * directory: `output` beside a directory named `blobs` (`~/.cache/irb/output`), else
 * `<dir>-output` beside it. It holds built base members by build key (see @irb/builder).
 */
export function outputCacheDirFor(blobCacheDir: string): string {
  const dir = resolve(blobCacheDir);
  const name = basename(dir);
  return join(dirname(dir), name === 'blobs' ? 'output' : `${name}-output`);
}

/**
 * Creates `path` and its missing parents (default mode), each level tried at most twice; throws
 * an errno error when it cannot. Not `mkdir(…, { recursive: true })`: under `/proc` that never
 * returns (mkdir of the child says ENOENT, of the parent EEXIST, and it retries forever).
 */
export async function makeDirectory(path: string): Promise<void> {
  const attempt = async (): Promise<boolean> => {
    try {
      await mkdir(path);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        if ((await stat(path)).isDirectory()) return true;
        throw Object.assign(new Error(`${path} exists and is not a directory`), { code: 'ENOTDIR' });
      }
      if (code === 'ENOENT') return false;
      throw error;
    }
  };
  if (await attempt()) return;
  const parent = dirname(path);
  if (parent === path) throw Object.assign(new Error(`cannot create ${path}`), { code: 'ENOENT' });
  await makeDirectory(parent);
  // The parent exists now; a second ENOENT means this filesystem refuses the name (e.g. /proc).
  if (!(await attempt())) {
    throw Object.assign(new Error(`mkdir ${path}: the parent exists but refuses new entries`), {
      code: 'ENOENT',
    });
  }
}
