import { cacheWriteFailure } from './errors.ts';
import { makeDirectory } from './mkdir.ts';
import { type CacheLayout, cacheLayout } from './paths.ts';
import { removeStaleTemps } from './temp.ts';

/**
 * {@link makeDirectory}, failing with `IRB_CACHE_WRITE_FAILED` at once: "cannot create `what` at
 * `root`", with the advice that fits the errno (see {@link cacheWriteFailure}).
 */
export async function ensureDirectory(dir: string, what = 'the blob cache', root = dir): Promise<void> {
  try {
    await makeDirectory(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const cause = code ? error : Object.assign(new Error(String(error)), { code: 'EIO', cause: error });
    throw cacheWriteFailure(root, cause, { action: 'create', what });
  }
}

/** The areas a build writes into, and how messages name them. */
const WRITTEN: Partial<Record<keyof CacheLayout, string>> = {
  blobs: 'the blob cache',
  index: 'the layer index cache',
  output: 'the output cache',
  spool: 'the spool directory of the cache',
  tmp: 'the temp directory of the cache',
};

/**
 * Creates the cache root (private: 0700) and the areas a build writes into (`blobs`, `index`,
 * `output`, `spool`, `tmp`) before it starts, so one that cannot be created fails at once with
 * `IRB_CACHE_WRITE_FAILED` naming the root (never a retry loop, never mid-download). Returns the
 * layout.
 */
export async function ensureCacheAreas(root?: string): Promise<CacheLayout> {
  const layout = cacheLayout(root);
  for (const [area, what] of Object.entries(WRITTEN)) {
    await ensureDirectory(layout[area as keyof CacheLayout], what, layout.root);
  }
  return layout;
}

/**
 * Removes what killed processes left in the cache's `tmp` and `spool` areas (partial downloads,
 * entries never renamed, held links, spools); files of live writers stay. Best effort: a cheap
 * look at two directories, done when a process first uses the cache. Returns how many went.
 */
export async function sweepTemps(root?: string): Promise<number> {
  const layout = cacheLayout(root);
  const removed = await Promise.all([
    removeStaleTemps(layout.tmp, { cache: true }),
    removeStaleTemps(layout.spool, { cache: true }),
  ]);
  return removed[0].length + removed[1].length;
}
