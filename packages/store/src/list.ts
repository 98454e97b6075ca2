import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { orphaned } from './owner.ts';
import { type CacheLayout, cacheLayout } from './paths.ts';
import { staleTemps, tempNameOwner } from './temp.ts';

/** One file of the cache, as `irb cache ls` shows it. */
export interface CacheEntry {
  /**
   * `blob` (`blobs/<algorithm>/<hex>`), `index` (a layer's parsed headers), `output` (a built
   * member, its description, or the record of an output found holding it), `debris` (what a
   * killed process left: a temp file, a spool, a lease) or `legacy` (a file of the layout of
   * earlier versions: `<root>-index`, `<root>-output`, blobs straight under the root). Debris
   * and legacy files are never read as cache entries; every prune removes them. `other` is a
   * small cache that is not trimmed by size: the remembered registry schemes, the KVM probe's
   * answer, Node's compile cache (a directory, listed as one entry); a clear removes them.
   */
  kind: 'blob' | 'index' | 'output' | 'debris' | 'legacy' | 'other';
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
  /** True when a running process uses it (a leased blob, a held output): a prune keeps it. */
  inUse: boolean;
}

/** Output entries are `<hex key>.<kind>`. */
const OUTPUT_NAME = /^([0-9a-f]{64})\.(base|tree|overlay|meta|out|atree|aid)$/;
/** Index entries named `<algorithm>-<hex>.<keyhash>.idx` carry their layer's digest. */
const INDEX_NAME = /^([a-z0-9]+)-([a-zA-Z0-9=_-]+)\.[0-9a-f]+\.idx$/;
/** Blob algorithms earlier versions stored straight under the cache directory. */
const LEGACY_ALGORITHMS = ['sha256', 'sha384', 'sha512'];

/** What a scan of a cache root found. */
export interface CacheScan {
  /** Blobs, index and output entries. */
  entries: CacheEntry[];
  /** Leftovers of killed processes and files of the old layout. */
  leftovers: CacheEntry[];
  /** Directories of the old layout, to remove once empty. */
  legacyDirs: string[];
  /** The small caches that are not entries (kind `other`). */
  others: CacheEntry[];
}

/**
 * The digests named by the leases of live processes: this version's (`leases/`), and those an
 * earlier version's process still running keeps in the old places (`.leases` under the root or
 * under `blobs/`, where the default cache's blobs still are).
 */
export async function liveLeases(layout: CacheLayout): Promise<Set<string>> {
  const leased = new Set<string>();
  const dirs = [layout.leases, join(layout.root, '.leases'), join(layout.blobs, '.leases')];
  for (const dir of dirs) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name);
      const owner = tempNameOwner(name)?.owner ?? /^(\d+-\d+-\d+)\./.exec(name)?.[1];
      const info = await stat(path).catch(() => undefined);
      if (!info?.isFile() || orphaned(owner, info.mtimeMs)) continue;
      const text = await readFile(path, 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line) leased.add(line);
    }
  }
  return leased;
}

function entryOf(
  kind: CacheEntry['kind'],
  path: string,
  info: { size: number; mtimeMs: number; atimeMs?: number },
  digest?: string,
  inUse = false,
): CacheEntry {
  return {
    kind,
    ...(digest !== undefined ? { digest } : {}),
    path,
    size: info.size,
    lastUsed: new Date(Math.max(info.mtimeMs, info.atimeMs ?? 0)),
    inUse,
  };
}

async function fileInfo(path: string) {
  const info = await stat(path).catch(() => undefined);
  return info?.isFile() ? info : undefined;
}

async function names(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

/** Blobs, layer indexes and output entries of the cache at `layout`. */
async function scanEntries(layout: CacheLayout, leased: ReadonlySet<string>): Promise<CacheEntry[]> {
  const entries: CacheEntry[] = [];
  for (const algorithm of await names(layout.blobs)) {
    // Dot directories are an old layout's bookkeeping; everything else is an algorithm.
    if (!/^[a-z0-9]+$/.test(algorithm)) continue;
    const sub = join(layout.blobs, algorithm);
    for (const hex of await names(sub)) {
      const path = join(sub, hex);
      const info = await fileInfo(path);
      const digest = `${algorithm}:${hex}`;
      if (info) entries.push(entryOf('blob', path, info, digest, leased.has(digest)));
    }
  }
  for (const name of await names(layout.index)) {
    if (!name.endsWith('.idx')) continue;
    const path = join(layout.index, name);
    const info = await fileInfo(path);
    const match = INDEX_NAME.exec(name);
    if (info) entries.push(entryOf('index', path, info, match ? `${match[1]}:${match[2]}` : undefined));
  }
  // A build holds a member by a hard link (nlink > 1): the whole entry of that key is in use.
  const outputs: Array<{
    key: string;
    path: string;
    info: NonNullable<Awaited<ReturnType<typeof fileInfo>>>;
  }> = [];
  const held = new Set<string>();
  for (const name of await names(layout.output)) {
    const match = OUTPUT_NAME.exec(name);
    if (!match) continue;
    const path = join(layout.output, name);
    const info = await fileInfo(path);
    if (!info) continue;
    const key = match[1] as string;
    outputs.push({ key, path, info });
    if (info.nlink > 1) held.add(key);
  }
  for (const { key, path, info } of outputs) {
    entries.push(entryOf('output', path, info, `sha256:${key}`, held.has(key)));
  }
  return entries;
}

/** Temp files whose writer is gone, in every area that may hold one. */
async function scanDebris(layout: CacheLayout): Promise<CacheEntry[]> {
  const debris: CacheEntry[] = [];
  // The root holds the prune lock's temp file; index and output those of earlier versions.
  const dirs: Array<[string, boolean]> = [
    [layout.tmp, true],
    [layout.spool, true],
    [layout.leases, true],
    [layout.index, true],
    [layout.output, true],
    [layout.root, false],
  ];
  for (const [dir, cache] of dirs) {
    for (const t of await staleTemps(dir, { cache })) debris.push(entryOf('debris', t.path, t));
  }
  return debris;
}

/** Files and directories of the layout of earlier versions (see {@link CacheEntry.kind}). */
async function scanLegacy(layout: CacheLayout): Promise<{ files: CacheEntry[]; dirs: string[] }> {
  const files: CacheEntry[] = [];
  const dirs: string[] = [];
  const add = async (
    path: string,
    when: (info: { mtimeMs: number }) => boolean | Promise<boolean> = () => true,
  ) => {
    const info = await fileInfo(path);
    if (info && (await when(info))) files.push(entryOf('legacy', path, info));
  };
  // Entries that an old process may still be writing (its temp files, leases, lock) go only
  // once their owner is gone; finished entries are misses for this version and go at once.
  const ownerGone = (name: string) => (info: { mtimeMs: number }) => {
    const parsed = tempNameOwner(name, { cache: true }) ?? { owner: /^(\d+-\d+-\d+)\./.exec(name)?.[1] };
    return orphaned(parsed.owner, info.mtimeMs);
  };
  const lockGone = (path: string) => async (info: { mtimeMs: number }) =>
    orphaned((await readFile(path, 'utf8').catch(() => '')).trim() || undefined, info.mtimeMs);
  const siblings: Array<[string, RegExp]> = [
    [`${layout.root}-index`, /\.idx$/],
    [`${layout.root}-output`, OUTPUT_NAME],
  ];
  for (const [dir, entry] of siblings) {
    const list = await names(dir);
    if (list.length === 0) continue;
    dirs.push(dir);
    for (const name of list) {
      if (entry.test(name)) await add(join(dir, name));
      else if (tempNameOwner(name, { cache: true })) await add(join(dir, name), ownerGone(name));
    }
  }
  for (const algorithm of LEGACY_ALGORITHMS) {
    const dir = join(layout.root, algorithm);
    const list = await names(dir);
    if (list.length === 0) continue;
    dirs.push(dir);
    for (const name of list) if (/^[0-9a-f]+$/.test(name)) await add(join(dir, name));
  }
  // The bookkeeping of the blob directory of earlier versions: under the root (IRB_CACHE_DIR
  // was the blob directory) or under blobs/ (the default ~/.cache/irb/blobs).
  for (const base of [layout.root, layout.blobs]) {
    for (const sub of ['.tmp', '.leases']) {
      const dir = join(base, sub);
      const list = await names(dir);
      if (list.length === 0) continue;
      dirs.push(dir);
      for (const name of list) await add(join(dir, name), ownerGone(name));
    }
    await add(join(base, '.schemes'));
    await add(join(base, '.prune.lock'), lockGone(join(base, '.prune.lock')));
  }
  return { files, dirs };
}

/** Bytes of the files under `dir` (Node's compile cache: a directory per Node version), and the newest mtime. */
async function directorySize(dir: string): Promise<{ size: number; mtimeMs: number } | undefined> {
  const top = await stat(dir).catch(() => undefined);
  if (!top?.isDirectory()) return undefined;
  let size = 0;
  let mtimeMs = top.mtimeMs;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const info = await stat(join(entry.parentPath, entry.name)).catch(() => undefined);
    if (!info) continue;
    size += info.size;
    mtimeMs = Math.max(mtimeMs, info.mtimeMs);
  }
  return { size, mtimeMs };
}

/** The remembered schemes, the KVM probe's answer and the compile cache. */
async function scanOthers(layout: CacheLayout): Promise<CacheEntry[]> {
  const others: CacheEntry[] = [];
  for (const path of [layout.schemes, layout.kvmProbe]) {
    const info = await fileInfo(path);
    if (info) others.push(entryOf('other', path, info));
  }
  const compiled = await directorySize(layout.compileCache);
  if (compiled) others.push(entryOf('other', layout.compileCache, compiled));
  return others;
}

/** Everything of the cache at `root`: entries (with what live processes use), debris, legacy files. */
export async function scanCache(root: string): Promise<CacheScan> {
  const layout = cacheLayout(root);
  const [entries, debris, legacy, others] = await Promise.all([
    liveLeases(layout).then((leased) => scanEntries(layout, leased)),
    scanDebris(layout),
    scanLegacy(layout),
    scanOthers(layout),
  ]);
  return { entries, leftovers: [...debris, ...legacy.files], legacyDirs: legacy.dirs, others };
}

/**
 * Lists the cache at `root` (default: `IRB_CACHE_DIR` or `~/.cache/irb`): blobs, layer indexes
 * and output entries, most recently used first; then the leftovers of killed processes
 * (`debris`) and files of the layout of earlier versions (`legacy`), which the next prune
 * removes; then the small caches of kind `other`. A missing directory lists as empty.
 */
export async function listCache(root?: string): Promise<CacheEntry[]> {
  const scan = await scanCache(cacheLayout(root).root);
  const byUse = (a: CacheEntry, b: CacheEntry) =>
    b.lastUsed.getTime() - a.lastUsed.getTime() || a.path.localeCompare(b.path);
  return [...scan.entries.sort(byUse), ...scan.leftovers.sort(byUse), ...scan.others];
}
