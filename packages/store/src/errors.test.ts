import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IrbError } from '@irb/errors';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.ts';
import {
  blobPath,
  cacheWriteFailure,
  corruptCacheEntry,
  discardCorruptEntry,
  removeCorruptBlobs,
} from './index.ts';

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
  it('are removed, and told apart from other digest errors, also when wrapped', async () => {
    const dir = await tempDir();
    const [entry, description] = [join(dir, 'member'), join(dir, 'member.meta')];
    await writeFile(entry, 'bytes');
    await writeFile(description, 'what they are');
    const corrupt = await discardCorruptEntry(entry, 'IRB_DIGEST_MISMATCH', 'cached member is corrupt', {
      also: [description],
    });
    expect(existsSync(entry) || existsSync(description)).toBe(false);
    expect(corrupt).toBeInstanceOf(IrbError);
    expect(corrupt.code).toBe('IRB_DIGEST_MISMATCH');
    expect(corruptCacheEntry(corrupt)).toBe(entry);
    const wrapped = new IrbError('IRB_LAYER_CORRUPT', 'layer 1: …', { cause: corrupt });
    expect(corruptCacheEntry(wrapped)).toBe(entry);
    // The registry sending other bytes is not the cache's fault: nothing to repair.
    expect(corruptCacheEntry(new IrbError('IRB_DIGEST_MISMATCH', 'downloaded bytes differ'))).toBeUndefined();
    expect(corruptCacheEntry('text')).toBeUndefined();
  });

  it('a repair finds the blobs that fail now, and those a reader removed whose error was lost', async () => {
    const root = await tempDir();
    const put = async (bytes: Uint8Array) => {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
      await writeFile(blobPath(root, digest) as string, bytes);
      return digest;
    };
    const sound = await put(new Uint8Array([1, 2, 3]));
    const flipped = await put(new Uint8Array([4, 5, 6]));
    await writeFile(blobPath(root, flipped) as string, new Uint8Array([4, 5, 7]));
    const readBefore = await put(new Uint8Array([7, 8, 9]));
    // A reader found this one damaged and removed it, but a decompressor's error won.
    await discardCorruptEntry(blobPath(root, readBefore) as string, 'IRB_DIGEST_MISMATCH', 'corrupt');
    const absent = `sha256:${'0'.repeat(64)}`;
    const removed = await removeCorruptBlobs(root, [sound, flipped, readBefore, absent, 'not a digest']);
    expect(removed.sort()).toEqual([blobPath(root, flipped), blobPath(root, readBefore)].sort());
    expect(existsSync(blobPath(root, sound) as string)).toBe(true);
    expect(existsSync(blobPath(root, flipped) as string)).toBe(false);
    // Reported once.
    expect(await removeCorruptBlobs(root, [readBefore])).toEqual([]);
  });
});
