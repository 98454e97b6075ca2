import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { cacheWriteFailure, formatSize, readLimited, statusError } from './errors.ts';
import type { HttpResponse } from './transport/http.ts';

function response(status: number, chunks: Array<string | Uint8Array>): HttpResponse {
  const body = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c))));
  return { status, headers: {}, body: body as unknown as HttpResponse['body'], url: new URL('http://x/') };
}

describe('formatSize', () => {
  it('says MiB, KiB or bytes as the number divides', () => {
    expect(formatSize(4 * 1024 * 1024)).toBe('4 MiB');
    expect(formatSize(64 * 1024)).toBe('64 KiB');
    expect(formatSize(1000)).toBe('1000 bytes');
    expect(formatSize(1024 * 1024 + 1)).toBe('1048577 bytes');
  });
});

describe('readLimited', () => {
  it('returns a body within the limit byte for byte', async () => {
    const bytes = await readLimited(response(200, ['ab', new Uint8Array([0x80, 0xff])]), 4, 'x: manifest');
    expect([...bytes]).toEqual([0x61, 0x62, 0x80, 0xff]);
  });

  it('names the limit it was given, not a fixed one', async () => {
    await expect(
      readLimited(response(200, ['a'.repeat(600), 'a'.repeat(600)]), 1024, 'r: manifest'),
    ).rejects.toMatchObject({
      code: 'IRB_MANIFEST_INVALID',
      message: 'r: manifest is larger than the 1 KiB limit',
    });
    await expect(readLimited(response(200, ['a'.repeat(1001)]), 1000, 'r: manifest')).rejects.toThrow(
      /larger than the 1000 bytes limit/,
    );
  });
});

describe('statusError', () => {
  const clean = (text: string) => text.replaceAll('s3cret', '<redacted>');

  it('a 4xx was not retried and does not claim it was', async () => {
    const body = JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message: 'no s3cret here' }] });
    const error = await statusError(response(400, [body]), 'r/a:1', 'manifest', clean);
    expect(error.code).toBe('IRB_REGISTRY_FAILED');
    expect(error.message).toBe(
      'registry answered 400 fetching the manifest of r/a:1: UNSUPPORTED: no <redacted> here',
    );
  });

  it('a 5xx left after the retries says so', async () => {
    const error = await statusError(response(503, []), 'r/a:1', 'manifest', clean);
    expect(error.code).toBe('IRB_REGISTRY_FAILED');
    expect(error.message).toBe('registry answered 503 fetching the manifest of r/a:1 even after retrying');
    // 501 and 505 are not transient, so they were not retried
    expect((await statusError(response(501, []), 'r', 'manifest', clean)).message).not.toMatch(/retrying/);
  });

  it('a 429 is a rate limit', async () => {
    const error = await statusError(response(429, []), 'r/a:1', 'blob sha256:x', clean);
    expect(error.code).toBe('IRB_REGISTRY_RATE_LIMITED');
  });
});

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
