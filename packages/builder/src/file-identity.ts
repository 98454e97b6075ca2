import type { BigIntStats } from 'node:fs';

/*
 * Trusting what was seen of a file without reading it again: its identity and times, recorded
 * once its bytes were read. ctime moves on any write, chmod or rename and cannot be set back, so
 * an unchanged record vouches for unchanged bytes, except right after a change: file times tick
 * coarsely, and a write in the same tick as the last one can leave ctime as it was (git's
 * "racily clean" entries).
 */

/** What `stat` tells of a file that changes when its bytes may have (nanoseconds as text). */
export interface FileIdentity {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

/** A {@link FileIdentity} with when it was seen (wall clock, ms). */
export interface SeenFile extends FileIdentity {
  seenAtMs: number;
}

/** How long before a record was made the file's ctime must lie for the record to be trusted. */
export const SETTLED_MS = 50;

/** The identity of a file from its `stat(…, { bigint: true })`. */
export function fileIdentity(st: BigIntStats): FileIdentity {
  return {
    dev: String(st.dev),
    ino: String(st.ino),
    size: String(st.size),
    mtimeNs: String(st.mtimeNs),
    ctimeNs: String(st.ctimeNs),
  };
}

/** Whether two identities name the same file in the same state. */
export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

/**
 * Whether `record` still vouches for the file `st` describes: same identity and times, and made
 * at least {@link SETTLED_MS} after the file's last change.
 */
export function recordHolds(record: SeenFile | undefined, st: BigIntStats): boolean {
  return (
    record !== undefined &&
    typeof record.seenAtMs === 'number' &&
    sameIdentity(record, fileIdentity(st)) &&
    record.seenAtMs - Number(st.ctimeNs / 1_000_000n) >= SETTLED_MS
  );
}
