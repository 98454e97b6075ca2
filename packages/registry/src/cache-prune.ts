import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { indexCacheDirFor, outputCacheDirFor } from './cache-config.ts';
import { acquirePruneLock, LEASES, ownPrunes, releasePruneLock, TMP } from './cache-lock.ts';
import { cacheWriteFailure } from './errors.ts';
import { orphaned } from './owner.ts';

/** `<hex16>.<owner>.<random>.partial`; older versions wrote a bare pid as the owner. */
const PARTIAL = /^[0-9a-f]+\.(\d+(?:-\d+-\d+)?)\.[0-9a-f]+\.partial$/;

export async function sweepPartials(dir: string): Promise<number> {
  const tmp = join(dir, TMP);
  let removed = 0;
  const now = Date.now();
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    if (!name.endsWith('.partial')) continue;
    const path = join(tmp, name);
    const info = await stat(path).catch(() => undefined);
    if (info && orphaned(PARTIAL.exec(name)?.[1], info.mtimeMs, now)) {
      await rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Listing and pruning.

/** One entry of the cache: a blob or a layer index. */
export interface CacheEntry {
  /**
   * `blob` (`<dir>/<algorithm>/<hex>`), `index` (parsed layer headers, in the index directory) or
   * `output` (a built base member or archive and its description, in the output directory).
   */
  kind: 'blob' | 'index' | 'output';
  /**
   * The blob's digest; for an index, the digest of the layer it describes (absent for old
   * entries); for an output, its build key (`sha256:<hex>`).
   */
  digest?: string;
  /** Where it is stored. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Last use: last read or write by irb (the file's newer of mtime and atime). */
  lastUsed: Date;
  /** True when a running process holds a lease on it (a prune keeps it). */
  inUse: boolean;
}

/** Options of {@link listCache} and {@link pruneCache}. */
export interface ListCacheOptions {
  /** The layer index directory listed with the blobs. Default {@link indexCacheDirFor}`(dir)`; `false` skips it. */
  indexDir?: string | false;
  /** The output cache directory listed too. Default {@link outputCacheDirFor}`(dir)`; `false` skips it. */
  outputDir?: string | false;
}

/**
 * Output entries are `<hex key>.<kind>`: `base`, `tree`, `overlay`, `meta`, `out` (builds), and
 * `atree`, `aid` (what `irb append` knows of a BASE archive: its tree by content, and which file
 * has which content).
 */
const OUTPUT_NAME = /^([0-9a-f]{64})\.(base|tree|overlay|meta|out|atree|aid)$/;

/** Index entries named `<algorithm>-<hex>.<keyhash>.idx` carry their layer's digest. */
const INDEX_NAME = /^([a-z0-9]+)-([a-zA-Z0-9=_-]+)\.[0-9a-f]+\.idx$/;

async function liveLeases(dir: string, sweep: boolean): Promise<Set<string>> {
  const leased = new Set<string>();
  const leases = join(dir, LEASES);
  const now = Date.now();
  for (const name of await readdir(leases).catch(() => [] as string[])) {
    const path = join(leases, name);
    const owner = /^(\d+-\d+-\d+)\./.exec(name)?.[1];
    const info = await stat(path).catch(() => undefined);
    if (!info) continue;
    if (orphaned(owner, info.mtimeMs, now)) {
      if (sweep) await unlink(path).catch(() => undefined);
      continue;
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (line) leased.add(line);
  }
  return leased;
}

async function scan(dir: string, options: ListCacheOptions, leased: Set<string>): Promise<CacheEntry[]> {
  const entries: CacheEntry[] = [];
  const add = async (path: string, kind: CacheEntry['kind'], digest: string | undefined) => {
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return;
    entries.push({
      kind,
      ...(digest !== undefined ? { digest } : {}),
      path,
      size: info.size,
      lastUsed: new Date(Math.max(info.mtimeMs, info.atimeMs)),
      inUse: kind === 'blob' && digest !== undefined && leased.has(digest),
    });
  };
  for (const algorithm of await readdir(dir).catch(() => [] as string[])) {
    // Dot directories are bookkeeping (.tmp, .leases); everything else is an algorithm.
    if (algorithm.startsWith('.') || !/^[a-z0-9]+$/.test(algorithm)) continue;
    const sub = join(dir, algorithm);
    for (const hex of await readdir(sub).catch(() => [] as string[])) {
      await add(join(sub, hex), 'blob', `${algorithm}:${hex}`);
    }
  }
  const indexDir = options.indexDir ?? indexCacheDirFor(dir);
  if (indexDir !== false) {
    for (const name of await readdir(indexDir).catch(() => [] as string[])) {
      if (!name.endsWith('.idx')) continue;
      const match = INDEX_NAME.exec(name);
      await add(join(indexDir, name), 'index', match ? `${match[1]}:${match[2]}` : undefined);
    }
  }
  const outputDir = options.outputDir ?? outputCacheDirFor(dir);
  if (outputDir !== false) {
    for (const name of await readdir(outputDir).catch(() => [] as string[])) {
      const match = OUTPUT_NAME.exec(name);
      if (match) await add(join(outputDir, name), 'output', `sha256:${match[1]}`);
    }
  }
  return entries;
}

/**
 * Lists the blobs of a cache directory and the layer indexes beside it, most recently used
 * first. A missing directory lists as empty.
 */
export async function listCache(dir: string, options: ListCacheOptions = {}): Promise<CacheEntry[]> {
  const entries = await scan(dir, options, await liveLeases(dir, false));
  return entries.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime() || a.path.localeCompare(b.path));
}

/** Options for {@link pruneCache}. */
export interface PruneCacheOptions extends ListCacheOptions {
  /** Remove least recently used entries until the total is at most this many bytes. */
  maxBytes?: number;
  /** Remove entries not used for longer than this many milliseconds. */
  olderThanMs?: number;
  /**
   * What to do when another live process is pruning the same cache: `wait` for it to finish
   * (default), or `skip` (return at once; what `BlobCache.dispose` does).
   */
  busy?: 'wait' | 'skip';
  /** Stops waiting for another prune. */
  signal?: AbortSignal;
}

/** What {@link pruneCache} did. */
export interface PruneCacheResult {
  /** The entries removed, least recently used first. */
  removed: CacheEntry[];
  /** Bytes freed by removing them. */
  removedBytes: number;
  /** Entries left, and their total size. */
  kept: number;
  keptBytes: number;
  /** Entries kept because a running build uses them, though the limits would have removed them. */
  keptInUse: number;
  /** Partial downloads, leases and index temp files of killed processes that were removed. */
  orphansRemoved: number;
  /** True when another process was pruning and `busy: 'skip'` returned without doing anything. */
  skipped: boolean;
}

/**
 * Trims a cache directory (blobs, and the layer index and output directories beside it): removes entries unused
 * for longer than `olderThanMs`, then least recently used entries until the total is at most
 * `maxBytes`. Blobs that a running process leased (it is reading or writing them) are never
 * removed; downloads in progress are never touched, while the leftovers of killed processes are.
 * One prune runs at a time per cache (a lock file holding the pruner's {@link processToken}).
 */
export async function pruneCache(dir: string, options: PruneCacheOptions = {}): Promise<PruneCacheResult> {
  const key = resolve(dir);
  // One prune per directory in this process; a second waits for the first (or skips).
  for (;;) {
    const running = ownPrunes.get(key);
    if (!running) break;
    if (options.busy === 'skip') return { ...emptyResult(), skipped: true };
    await running.catch(() => undefined);
  }
  const task = prune(dir, options);
  ownPrunes.set(key, task);
  try {
    return await task;
  } finally {
    if (ownPrunes.get(key) === task) ownPrunes.delete(key);
  }
}

function emptyResult(): PruneCacheResult {
  return {
    removed: [],
    removedBytes: 0,
    kept: 0,
    keptBytes: 0,
    keptInUse: 0,
    orphansRemoved: 0,
    skipped: false,
  };
}

async function prune(dir: string, options: PruneCacheOptions): Promise<PruneCacheResult> {
  const result = emptyResult();
  if (
    !(await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  )
    return result;
  for (;;) {
    options.signal?.throwIfAborted();
    let acquired: boolean;
    try {
      acquired = await acquirePruneLock(dir);
    } catch (error) {
      throw cacheWriteFailure(dir, error);
    }
    if (acquired) break;
    if (options.busy === 'skip') return { ...result, skipped: true };
    await sleep(50, undefined, options.signal ? { signal: options.signal } : {});
  }
  try {
    result.orphansRemoved += await sweepPartials(dir);
    const indexDir = options.indexDir ?? indexCacheDirFor(dir);
    if (indexDir !== false) result.orphansRemoved += await sweepIndexTemps(indexDir);
    const outputDir = options.outputDir ?? outputCacheDirFor(dir);
    // Its temp files are named like the index's: `<entry>.<owner>.<random>.tmp`.
    if (outputDir !== false) result.orphansRemoved += await sweepIndexTemps(outputDir);
    // Leases are read under the lock: see the protocol above BlobCache.
    const leased = await liveLeases(dir, true);
    const entries = (await scan(dir, { indexDir, outputDir }, leased)).sort(
      (a, b) => a.lastUsed.getTime() - b.lastUsed.getTime() || a.path.localeCompare(b.path),
    );
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    const cutoff = options.olderThanMs !== undefined ? Date.now() - options.olderThanMs : undefined;
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
      try {
        await unlink(entry.path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw cacheWriteFailure(dir, error);
      }
      total -= entry.size;
      result.removed.push(entry);
      result.removedBytes += entry.size;
    }
  } finally {
    await releasePruneLock(dir);
  }
  return result;
}

/** Temp files of the index cache are `<entry>.<pid>.<random>.tmp`, renamed within milliseconds. */
async function sweepIndexTemps(indexDir: string): Promise<number> {
  let removed = 0;
  const now = Date.now();
  for (const name of await readdir(indexDir).catch(() => [] as string[])) {
    if (!name.endsWith('.tmp')) continue;
    const path = join(indexDir, name);
    const info = await stat(path).catch(() => undefined);
    const owner = /\.(\d+(?:-\d+-\d+)?)\.[0-9a-f]+\.tmp$/.exec(name)?.[1];
    if (info && orphaned(owner, info.mtimeMs, now)) {
      await rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}
