import { randomBytes } from 'node:crypto';
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isOwnerAlive, processToken } from '@irb/registry/owner';

/**
 * Names of irb's temporary output files, and the sweep that removes those whose writer is gone.
 *
 * A temporary file is `.NAME.irb-PID-START-NS.HEX.irb-tmp`, with the registry cache's process
 * token (@irb/registry's `processToken`: pid, start time from /proc/PID/stat, pid namespace). A
 * pid alone is not enough: after a kill it can be reused by another process, which would then
 * look like the writer; pid and start time together name one process. A writer in another pid
 * namespace (another container sharing the directory) cannot be judged from here and is left alone.
 */

const TEMP = /^\..*\.irb-(\d+-\d+-\d+)\.[0-9a-f]+\.irb-tmp$/;
/** What irb wrote before temp names carried their writer: `.NAME.HEX.irb-tmp`. */
const LEGACY_TEMP = /^\..*\.[0-9a-f]{12}\.irb-tmp$/;
/** A legacy temp file untouched this long has no writer (one writes to it all the time). */
const LEGACY_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** A fresh temporary name for writing `name` (a base name), tagged with this process. */
export function tempName(name: string): string {
  return `.${name}.irb-${processToken()}.${randomBytes(6).toString('hex')}.irb-tmp`;
}

/**
 * Whether the writer of a temporary file named `name` is certainly gone: its pid does not exist,
 * or exists with another start time (reused). `false` for names that are not irb's, for writers
 * in another pid namespace, and whenever it cannot be told.
 */
export function isStaleTemp(name: string): boolean {
  const m = TEMP.exec(name);
  return m !== null && isOwnerAlive(m[1] as string) === false;
}

/**
 * Removes irb's temporary files in `dir` whose writer is gone (a build killed with SIGKILL or by a
 * power cut cannot clean up after itself). Live writers' files are never touched. A legacy name
 * without a writer goes only when untouched for a day (a live writer writes to it all the time).
 * Errors are ignored, as this is housekeeping. Returns the names removed.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.endsWith('.irb-tmp')) continue;
    let stale = isStaleTemp(name);
    if (!stale && !TEMP.test(name) && LEGACY_TEMP.test(name)) {
      const st = await stat(join(dir, name)).catch(() => undefined);
      stale = st?.isFile() === true && st.mtimeMs < Date.now() - LEGACY_MAX_AGE_MS;
    }
    if (!stale) continue;
    try {
      await unlink(join(dir, name));
      removed.push(name);
    } catch {}
  }
  return removed;
}
