import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestOf, parseDigest, readVerified, verifyBytes, verifyStream } from './digest.ts';

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield new TextEncoder().encode(p);
}

const body = 'hello world';
const good = `sha256:${createHash('sha256').update(body).digest('hex')}`;

describe('digests', () => {
  it('parses sha256 and sha512, refuses the rest', () => {
    expect(parseDigest(good).algorithm).toBe('sha256');
    expect(parseDigest(`sha512:${'0'.repeat(128)}`).algorithm).toBe('sha512');
    expect(() => parseDigest('sha256:ABC')).toThrow(/64 lowercase hex/);
    expect(() => parseDigest(`sha256:${'A'.repeat(64)}`)).toThrow(/lowercase/);
    expect(() => parseDigest(`md5:${'0'.repeat(32)}`)).toThrow(/unsupported digest algorithm/);
    expect(() => parseDigest('nocolon')).toThrow(/invalid digest/);
  });

  it('passes matching content through', async () => {
    const out = await readVerified(chunks('hello', ' ', 'world'), { digest: good, size: 11 });
    expect(new TextDecoder().decode(out)).toBe(body);
    expect(digestOf(out)).toBe(good);
  });

  it('throws on a wrong digest only after the last chunk', async () => {
    const seen: number[] = [];
    const run = async () => {
      for await (const c of verifyStream(chunks('hello', ' ', 'wOrld'), { digest: good, size: 11 })) {
        seen.push(c.byteLength);
      }
    };
    await expect(run()).rejects.toMatchObject({ code: 'IRB_DIGEST_MISMATCH' });
    expect(seen).toEqual([5, 1, 5]);
  });

  it('throws as soon as the size overflows', async () => {
    const seen: number[] = [];
    const run = async () => {
      for await (const c of verifyStream(chunks('hello', ' world', 'more'), { digest: good, size: 8 })) {
        seen.push(c.byteLength);
      }
    };
    await expect(run()).rejects.toMatchObject({ code: 'IRB_SIZE_MISMATCH' });
    expect(seen).toEqual([5]);
  });

  it('throws on a short body', async () => {
    await expect(readVerified(chunks('hello'), { digest: good, size: 11 })).rejects.toMatchObject({
      code: 'IRB_SIZE_MISMATCH',
    });
  });

  it('verifies bytes in memory', () => {
    const bytes = new TextEncoder().encode(body);
    expect(() => verifyBytes(bytes, { digest: good, size: 11 })).not.toThrow();
    expect(() => verifyBytes(bytes, { digest: good, size: 12 })).toThrow(/expected 12/);
    bytes[0] = 0;
    expect(() => verifyBytes(bytes, { digest: good })).toThrow(/were not used/);
  });
});
