import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatSize, readLimited, statusError } from './errors.ts';
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
