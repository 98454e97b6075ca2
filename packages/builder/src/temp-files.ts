import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Names of irb's temporary output files, and the sweep that removes those whose writer is gone.
 *
 * A temporary file is `.NAME.irb-PID-START-NS.HEX.irb-tmp`: the writer's pid, its start time
 * (clock ticks since boot, field 22 of /proc/PID/stat) and its pid namespace (the inode of
 * /proc/self/ns/pid), all in base 36. A pid alone is not enough: after a kill the pid can be
 * reused by another process, which then would look like the writer. Pid and start time together
 * name one process for the life of the machine. The namespace keeps a process in another
 * container that shares the directory from being judged by pids that mean nothing here.
 */

const TEMP = /^\..*\.irb-([0-9a-z]+)-([0-9a-z]+)-([0-9a-z]+)\.[0-9a-f]+\.irb-tmp$/;

/** Start time of `pid` in clock ticks since boot, or `undefined` when no such process exists. `0` when unknown (no /proc). */
function startTime(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // No /proc entry: the process is gone, or /proc is missing or hides other users' processes
    // (hidepid). The kernel still answers a null signal: ESRCH only when no such pid exists.
    if (code === 'ENOENT' || code === 'ESRCH') return aliveBySignal(pid) ? 0 : undefined;
    return 0;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[19]);
  return Number.isSafeInteger(ticks) ? ticks : 0;
}

function aliveBySignal(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function pidNamespace(): number {
  try {
    return Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

let self: string | undefined;
/** This process as `PID-START-NS` (base 36). */
function writerTag(): string {
  self ??= [process.pid, startTime(process.pid) ?? 0, pidNamespace()].map((n) => n.toString(36)).join('-');
  return self;
}

/** A fresh temporary name for writing `name` (a base name), tagged with this process. */
export function tempName(name: string): string {
  return `.${name}.irb-${writerTag()}.${randomBytes(6).toString('hex')}.irb-tmp`;
}

/**
 * Whether the writer of a temporary file named `name` is certainly gone: its pid does not
 * exist, or exists with another start time (reused). `false` for names that are not irb's,
 * for writers in another pid namespace, and whenever it cannot be told.
 */
export function isStaleTemp(name: string): boolean {
  const m = TEMP.exec(name);
  if (!m) return false;
  const [pid, start, ns] = [m[1], m[2], m[3]].map((s) => Number.parseInt(s as string, 36)) as [
    number,
    number,
    number,
  ];
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (ns !== pidNamespace()) return false;
  const now = startTime(pid);
  if (now === undefined) return true;
  return start !== 0 && now !== 0 && now !== start;
}

/**
 * Removes irb's temporary files in `dir` whose writer is gone (a build killed with SIGKILL or
 * by a power cut cannot clean up after itself). Live writers' files are never touched; errors
 * are ignored, as this is housekeeping. Returns the names removed.
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
    if (!name.endsWith('.irb-tmp') || !isStaleTemp(name)) continue;
    try {
      await unlink(join(dir, name));
      removed.push(name);
    } catch {}
  }
  return removed;
}
