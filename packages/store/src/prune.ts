import { rm, rmdir, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { cacheWriteFailure } from './errors.ts';
import { type CacheEntry, type CacheScan, scanCache } from './list.ts';
import { acquirePruneLock, ownPrunes, releasePruneLock } from './lock.ts';
import { cacheLayout } from './paths.ts';

/** Options for {@link pruneCache}. */
export interface PruneCacheOptions {
  /** Remove least recently used entries until the total is at most this many bytes. */
  maxBytes?: number;
  /** Remove entries not used for longer than this many milliseconds. */
  olderThanMs?: number;
  /**
   * What to do when another live process is pruning the same cache: `wait` for it to finish
   * (default), or `skip` (return at once; what the automatic limit does).
   */
  busy?: 'wait' | 'skip';
  /** Stops waiting for another prune. */
  signal?: AbortSignal;
}

/** What {@link pruneCache} or {@link clearCache} did. */
export interface PruneCacheResult {
  /** The files removed: entries least recently used first, then debris and legacy files. */
  removed: CacheEntry[];
  /** Bytes freed by removing them. */
  removedBytes: number;
  /** Entries left, and their total size. */
  kept: number;
  keptBytes: number;
  /** Entries kept because a running build uses them, though the limits would have removed them. */
  keptInUse: number;
  /** Leftovers of killed processes removed: temp files, spools, leases (kind `debris`). */
  orphansRemoved: number;
  /** Files of the layout of earlier versions removed (kind `legacy`). */
  legacyRemoved: number;
  /** True when another process was pruning and `busy: 'skip'` returned without doing anything. */
  skipped: boolean;
}

function emptyResult(): PruneCacheResult {
  return {
    removed: [],
    removedBytes: 0,
    kept: 0,
    keptBytes: 0,
    keptInUse: 0,
    orphansRemoved: 0,
    legacyRemoved: 0,
    skipped: false,
  };
}

/**
 * Trims the cache at `root` (default: `IRB_CACHE_DIR` or `~/.cache/irb`): removes entries
 * (blobs, layer indexes, outputs) unused for longer than `olderThanMs`, then least recently
 * used entries until the total is at most `maxBytes`; and always the leftovers of killed
 * processes and the files of the layout of earlier versions. What a running process uses (a
 * leased blob, a held output, a temp file being written) is never removed. One prune runs at a
 * time per cache (a lock file holding the pruner's process token).
 */
export function pruneCache(root?: string, options: PruneCacheOptions = {}): Promise<PruneCacheResult> {
  return exclusive(cacheLayout(root).root, options, false);
}

/** Options for {@link clearCache}. */
export interface ClearCacheOptions {
  /** `wait` for another process's prune (default) or `skip`. */
  busy?: 'wait' | 'skip';
  /** Stops waiting for another prune. */
  signal?: AbortSignal;
}

/**
 * Removes everything irb cached under `root` (default: `IRB_CACHE_DIR` or `~/.cache/irb`):
 * blobs, layer indexes, outputs, the remembered registry schemes, the KVM probe's answer, Node's
 * compile cache, the leftovers of killed processes and the files of earlier layouts. Only files
 * irb names are touched, never anything else under the root (a kernel unpacked there stays).
 * Builds running meanwhile keep working: the blobs they leased and the outputs they hold are
 * kept (counted in `keptInUse`), as are files being written; what they store afterwards stays.
 */
export function clearCache(root?: string, options: ClearCacheOptions = {}): Promise<PruneCacheResult> {
  return exclusive(cacheLayout(root).root, { ...options, maxBytes: 0 }, true);
}

async function exclusive(
  root: string,
  options: PruneCacheOptions,
  clear: boolean,
): Promise<PruneCacheResult> {
  // One prune per cache in this process; a second waits for the first (or skips).
  for (;;) {
    const running = ownPrunes.get(root);
    if (!running) break;
    if (options.busy === 'skip') return { ...emptyResult(), skipped: true };
    await running.catch(() => undefined);
  }
  const task = locked(root, options, clear);
  ownPrunes.set(root, task);
  try {
    return await task;
  } finally {
    if (ownPrunes.get(root) === task) ownPrunes.delete(root);
  }
}

async function locked(root: string, options: PruneCacheOptions, clear: boolean): Promise<PruneCacheResult> {
  const result = emptyResult();
  if (
    !(await stat(root).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  ) {
    // No cache here (`rm -rf` of the root): only what earlier versions left beside it may be
    // there, and no build of this version uses it, so no lock is needed to remove it.
    await trim(root, await scanCache(root), options, result);
    return result;
  }
  for (;;) {
    options.signal?.throwIfAborted();
    let acquired: boolean;
    try {
      acquired = await acquirePruneLock(root);
    } catch (error) {
      throw cacheWriteFailure(root, error, { what: 'the cache' });
    }
    if (acquired) break;
    if (options.busy === 'skip') return { ...result, skipped: true };
    await sleep(50, undefined, options.signal ? { signal: options.signal } : {});
  }
  try {
    // Leases are read under the lock: see the protocol in lock.ts.
    const scan = await scanCache(root);
    await trim(root, scan, options, result);
    if (clear) await clearOthers(root, scan.others, result);
  } finally {
    await releasePruneLock(root);
  }
  return result;
}

/** Removes `path`; an entry already gone is fine, any other failure names the cache. */
async function remove(root: string, path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw cacheWriteFailure(root, error, { what: 'the cache' });
  }
}

async function trim(
  root: string,
  scan: CacheScan,
  options: PruneCacheOptions,
  result: PruneCacheResult,
): Promise<void> {
  for (const leftover of scan.leftovers) {
    await remove(root, leftover.path);
    result.removed.push(leftover);
    result.removedBytes += leftover.size;
    if (leftover.kind === 'debris') result.orphansRemoved++;
    else result.legacyRemoved++;
  }
  // Deepest first: a directory of the old layout goes once its files went.
  for (const dir of [...scan.legacyDirs].reverse()) await rmdir(dir).catch(() => undefined);
  const entries = scan.entries.sort(
    (a, b) => a.lastUsed.getTime() - b.lastUsed.getTime() || a.path.localeCompare(b.path),
  );
  let total = entries.reduce((sum, e) => sum + e.size, 0);
  const cutoff = options.olderThanMs !== undefined ? Date.now() - options.olderThanMs : undefined;
  const removedEntries: CacheEntry[] = [];
  for (const entry of entries) {
    const old = cutoff !== undefined && entry.lastUsed.getTime() < cutoff;
    const over = options.maxBytes !== undefined && total > options.maxBytes;
    if (!old && !over) {
      result.kept++;
      result.keptBytes += entry.size;
      continue;
    }
    if (entry.inUse) {
      result.kept++;
      result.keptBytes += entry.size;
      result.keptInUse++;
      continue;
    }
    await remove(root, entry.path);
    total -= entry.size;
    removedEntries.push(entry);
    result.removedBytes += entry.size;
  }
  // Entries first (least recently used first), then the leftovers.
  result.removed = [...removedEntries, ...result.removed];
}

/** What only a clear removes: the small caches that are not entries (kind `other`). */
async function clearOthers(
  root: string,
  others: readonly CacheEntry[],
  result: PruneCacheResult,
): Promise<void> {
  for (const other of others) {
    // Node's compile cache is a directory in Node's format: it goes whole (a running irb rewrites it).
    await rm(other.path, { recursive: true, force: true }).catch((error: unknown) => {
      throw cacheWriteFailure(root, error, { what: 'the cache' });
    });
    result.removed.push(other);
    result.removedBytes += other.size;
  }
}
