import { IrbError } from '@irb/errors';
import { describe, expect, it } from 'vitest';
import { cacheWriteFailure, corruptCacheEntry, corruptEntryError } from './index.ts';

describe('cacheWriteFailure', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

  it('gives the advice that fits the errno', () => {
    const full = cacheWriteFailure('/c', errno('ENOSPC')) as Error & { code: string };
    expect(full.code).toBe('IRB_CACHE_WRITE_FAILED');
    expect(full.message).toBe(
      'cannot write the blob cache at /c: the disk is full (ENOSPC); free space on that disk, or set `cacheDir` (or IRB_CACHE_DIR) to a writable directory, or pass `cache: false`',
    );
    const denied = (cacheWriteFailure('/c', errno('EACCES')) as Error).message;
    expect(denied).toMatch(/permission denied \(EACCES\); make the directory writable for this user/);
    expect(denied).not.toMatch(/free space/);
    for (const code of ['EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EIO']) {
      const message = (cacheWriteFailure('/c', errno(code)) as Error).message;
      expect(message).toContain(`(${code})`);
      expect(message).not.toMatch(/free space/);
      expect(message).toContain('`cacheDir`');
    }
  });

  it('passes other failures through unchanged', () => {
    const other = errno('EBADF');
    expect(cacheWriteFailure('/c', other)).toBe(other);
    const plain = new Error('x');
    expect(cacheWriteFailure('/c', plain)).toBe(plain);
  });
});

describe('corrupt cache entries', () => {
  it('are told apart from other digest errors, also when wrapped', () => {
    const corrupt = corruptEntryError(
      'IRB_DIGEST_MISMATCH',
      'cached blob x is corrupt',
      '/c/blobs/sha256/ab',
    );
    expect(corrupt).toBeInstanceOf(IrbError);
    expect(corrupt.code).toBe('IRB_DIGEST_MISMATCH');
    expect(corruptCacheEntry(corrupt)).toBe('/c/blobs/sha256/ab');
    const wrapped = new IrbError('IRB_LAYER_TRUNCATED', 'layer 1: …', { cause: corrupt });
    expect(corruptCacheEntry(wrapped)).toBe('/c/blobs/sha256/ab');
    // The registry sending other bytes is not the cache's fault: nothing to repair.
    expect(corruptCacheEntry(new IrbError('IRB_DIGEST_MISMATCH', 'downloaded bytes differ'))).toBeUndefined();
    expect(corruptCacheEntry('text')).toBeUndefined();
  });
});
