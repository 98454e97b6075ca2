// `@irb/store/temp`: temp names and their sweep alone, for a process that writes an output and
// needs nothing else of the cache (`irb append`).
import { randomBytes } from 'node:crypto';
import { readdir, stat, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { orphaned, processToken } from './owner.ts';

/*
 * Temporary file names: one spelling for every file irb writes before renaming it into place or
 * holds for a while (a download, a cache entry, an output next to the user's file, a lease):
 *
 *   .NAME.irb-PID-START-NS.RANDOM.irb-tmp
 *
 * PID-START-NS is the writer's process token (owner.ts): pid, start time from /proc/PID/stat and
 * pid namespace. A pid alone is not enough: after a kill it can be reused by another process,
 * which would then look like the writer; pid and start time together name one process. The
 * leading dot keeps the file out of `ls` beside a user's output, and NAME says what it becomes.
 */
const TEMP = /^\.(.*)\.irb-(\d+-\d+-\d+)\.[0-9a-f]+\.irb-tmp$/;
/** Output temp files from before names carried their writer: `.NAME.HEX.irb-tmp`. */
const LEGACY_OUTPUT_TEMP = /^\..*\.[0-9a-f]{12}\.irb-tmp$/;
/**
 * Cache temp files of earlier versions: partial downloads `<hex16>.<owner>.<random>.partial` and
 * index or output entries `<entry>.<owner>.<random>.tmp`, the owner a token or a bare pid.
 */
const LEGACY_CACHE_TEMP = /^.+\.(\d+(?:-\d+-\d+)?)\.[0-9a-f]+\.(?:partial|tmp)$/;
/** A legacy temp file untouched this long has no writer (one writes to it all the time). */
const LEGACY_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** A fresh temporary name for writing `name` (a base name), tagged with this process. */
export function tempName(name: string): string {
  return `.${name}.irb-${processToken()}.${randomBytes(6).toString('hex')}.irb-tmp`;
}

/** `dir/`{@link tempName}`(name)`. */
export function tempPath(dir: string, name: string): string {
  return join(dir, tempName(name));
}

/** Which names count as temporary files: `cache` adds the older cache spellings (only inside a cache). */
export interface TempNameOptions {
  /**
   * Also the names earlier versions gave temp files inside the cache (`….partial`, `….tmp`).
   * Never for a user's directory, where such a name may be anyone's file.
   */
  cache?: boolean;
}

/**
 * What a temporary name says of its writer: `owner` is its token (`undefined` for the oldest
 * names, which carry none). `undefined` when `name` is no temporary name of irb.
 */
export function tempNameOwner(
  name: string,
  options: TempNameOptions = {},
): { owner: string | undefined } | undefined {
  const current = TEMP.exec(name);
  if (current) return { owner: current[2] as string };
  if (LEGACY_OUTPUT_TEMP.test(name)) return { owner: undefined };
  const old = options.cache ? LEGACY_CACHE_TEMP.exec(name) : null;
  return old ? { owner: old[1] as string } : undefined;
}

/**
 * Whether a temporary file named `name` is left over: its writer is certainly gone (its pid does
 * not exist, or exists with another start time), or the writer cannot be judged from here (none
 * named, another pid namespace) and the file was untouched for a day. `mtimeMs` is the file's.
 */
export function isStaleTemp(
  name: string,
  mtimeMs = Date.now(),
  now = Date.now(),
  options: TempNameOptions = {},
): boolean {
  const parsed = tempNameOwner(name, options);
  if (!parsed) return false;
  return parsed.owner === undefined
    ? mtimeMs < now - LEGACY_MAX_AGE_MS
    : orphaned(parsed.owner, mtimeMs, now);
}

/**
 * The temporary files in `dir` whose writer is gone (see {@link isStaleTemp}): a build killed
 * with SIGKILL or by a power cut cannot clean up after itself. Live writers' files are never
 * listed, nor names that are not temporary files. A missing directory has none.
 */
export async function staleTemps(
  dir: string,
  options: TempNameOptions = {},
): Promise<Array<{ path: string; size: number; mtimeMs: number }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const now = Date.now();
  const stale: Array<{ path: string; size: number; mtimeMs: number }> = [];
  for (const name of names) {
    if (!tempNameOwner(name, options)) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (info?.isFile() && isStaleTemp(name, info.mtimeMs, now, options)) {
      stale.push({ path, size: info.size, mtimeMs: info.mtimeMs });
    }
  }
  return stale;
}

/**
 * Removes the temporary files in `dir` whose writer is gone ({@link staleTemps}). Errors are
 * ignored, as this is housekeeping. Returns the names removed.
 */
export async function removeStaleTemps(dir: string, options: TempNameOptions = {}): Promise<string[]> {
  const removed: string[] = [];
  for (const { path } of await staleTemps(dir, options)) {
    try {
      await unlink(path);
      removed.push(basename(path));
    } catch {}
  }
  return removed;
}
