import { IrbError } from '@irb/errors';

/** Where to put the cache instead, or how to do without it: the tail of every cache write advice. */
const ELSEWHERE = 'set `cacheDir` (or IRB_CACHE_DIR) to a writable directory, or pass `cache: false`';

/** What went wrong, and the first thing to try, for each errno a cache write can fail with. */
const STORAGE_ADVICE: Record<string, [why: string, fix: string]> = {
  ENOSPC: ['the disk is full', `free space on that disk, or ${ELSEWHERE}`],
  EDQUOT: ['your disk quota is used up', `free space within your quota, or ${ELSEWHERE}`],
  EACCES: ['permission denied', `make the directory writable for this user, or ${ELSEWHERE}`],
  EPERM: ['the operation is not permitted', `make the directory writable for this user, or ${ELSEWHERE}`],
  EROFS: ['the file system is read-only', ELSEWHERE],
  ENOTDIR: ['a part of the path is a file, not a directory', ELSEWHERE],
  EEXIST: ['a file stands where a directory must be', `remove it, or ${ELSEWHERE}`],
  EIO: ['the disk reported an I/O error', `check the disk (dmesg), or ${ELSEWHERE}`],
  // mkdir of a child says ENOENT although its parent exists: /proc, /sys and the like.
  ENOENT: ['its parent directory does not accept new directories', ELSEWHERE],
};

/**
 * Wraps a filesystem failure while writing into the cache in an `IRB_CACHE_WRITE_FAILED` that
 * says where, why, and the fix that errno calls for (EACCES is not cured by freeing space);
 * other errors pass through unchanged. `what` names the part of the cache (default "the blob
 * cache").
 */
export function cacheWriteFailure(
  dir: string,
  error: unknown,
  context: { action?: 'write' | 'create'; what?: string } = {},
): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const advice = code ? STORAGE_ADVICE[code] : undefined;
  if (!advice) return error;
  const [why, fix] = advice;
  return new IrbError(
    'IRB_CACHE_WRITE_FAILED',
    `cannot ${context.action ?? 'write'} ${context.what ?? 'the blob cache'} at ${dir}: ${why} (${code}); ${fix}`,
    {
      cause: error,
    },
  );
}

/** An `IrbError` saying that something irb stored itself failed verification and was removed. */
export type CorruptEntryError = IrbError & {
  /** The cache file that failed and is gone now: asking again stores it afresh. */
  readonly corruptEntry: string;
};

/**
 * When `error`, or an error in its `cause` chain, is a {@link discardCorruptEntry} error: the
 * path of the cache file that failed. It was removed, so running the same operation again
 * fetches or builds it afresh. `undefined` for any other error.
 */
export function corruptCacheEntry(error: unknown): string | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const entry = (current as Partial<CorruptEntryError>).corruptEntry;
    if (typeof entry === 'string') return entry;
    current = current.cause;
  }
  return undefined;
}
