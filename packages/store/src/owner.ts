import { readFileSync, readlinkSync } from 'node:fs';

// ---------------------------------------------------------------------------------------------
// Who owns a temp file: pid + process start time + pid namespace, so a reused pid is not mistaken
// for the writer, and a writer in another container is never judged from here.

let ownToken: string | undefined;

function procStartTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
  } catch {
    return '0';
  }
}

/**
 * This process as a token `<pid>-<start>-<pidns>` (start time in clock ticks since boot from
 * `/proc/<pid>/stat`, `0` where unknown). Written into the names of temp files, leases and locks
 * so {@link isOwnerAlive} can tell whether their writer still runs.
 */
export function processToken(): string {
  ownToken ??= `${process.pid}-${procStartTime(process.pid) ?? '0'}-${pidNamespace()}`;
  return ownToken;
}

/**
 * Whether the process a {@link processToken} (or a bare pid) names is still running: `false`
 * when it is gone or its pid now belongs to a process started at another time, `true` when it
 * runs, `undefined` when this process cannot tell (another pid namespace).
 */
export function isOwnerAlive(token: string): boolean | undefined {
  const match = /^(\d+)(?:-(\d+)-(\d+))?$/.exec(token);
  if (!match) return undefined;
  const pid = Number(match[1]);
  const [, , start, ns] = match;
  if (ns !== undefined && ns !== '0' && pidNamespace() !== '0' && ns !== pidNamespace()) return undefined;
  const now = procStartTime(pid);
  if (now !== undefined) return start === undefined || start === '0' || start === now;
  try {
    process.kill(pid, 0);
    // Running, but without /proc the start time cannot be compared: assume it is the writer.
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Files whose owner cannot be judged (another container) are left alone for this long. */
export const UNKNOWN_OWNER_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** True when a file written by `owner` (last modified at `mtimeMs`) is an orphan to remove. */
export function orphaned(owner: string | undefined, mtimeMs: number, now = Date.now()): boolean {
  const alive = owner === undefined ? undefined : isOwnerAlive(owner);
  if (alive === undefined) return mtimeMs < now - UNKNOWN_OWNER_MAX_AGE_MS;
  return !alive;
}
