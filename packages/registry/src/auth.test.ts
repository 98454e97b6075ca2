import { describe, expect, it } from 'vitest';
import { credentialSecrets, parseChallenges, parseTokenAnswer, resolveCredential } from './auth.ts';
import { parseMirrorsEnv } from './mirrors.ts';
import { redactHeaders, redactUrl, scrub } from './redact.ts';
import { isRetryableStatus } from './transport/http.ts';
import { backoffDelay, parseRetryAfter } from './transport/retry.ts';
import type { Keychain } from './types.ts';

describe('WWW-Authenticate', () => {
  it('parses Docker Hub style bearer challenges', () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/alpine:pull',
        },
      },
    ]);
  });

  it('parses several challenges, unquoted values, escapes and error params', () => {
    expect(
      parseChallenges(
        'Basic realm="a \\"b\\"", Bearer realm=https://x/t , error="insufficient_scope",scope="a b"',
      ),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'a "b"' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', error: 'insufficient_scope', scope: 'a b' } },
    ]);
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('token answers', () => {
  it('accepts token or access_token and computes expiry', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseTokenAnswer('{"token":"t","expires_in":120}', now)).toEqual({
      token: 't',
      expiresAt: now + 120_000,
    });
    expect(parseTokenAnswer('{"access_token":"a"}', now)).toEqual({ token: 'a', expiresAt: now + 60_000 });
    // a token issued "in the future" by a skewed clock counts from now
    expect(
      parseTokenAnswer('{"token":"t","expires_in":60,"issued_at":"2030-01-01T00:00:00Z"}', now)?.expiresAt,
    ).toBe(now + 60_000);
    expect(parseTokenAnswer('not json', now)).toBeUndefined();
    expect(parseTokenAnswer('{"token":""}', now)).toBeUndefined();
  });
});

describe('keychains', () => {
  it('first answer wins, failures name the keychain', async () => {
    const none: Keychain = { name: 'none', resolve: async () => undefined };
    const a: Keychain = { name: 'a', resolve: async () => ({ kind: 'bearer', token: 'A' }) };
    const boom: Keychain = {
      name: 'boom',
      resolve: async () => {
        throw new Error('helper crashed');
      },
    };
    const scope = { registry: 'r.example', repository: 'x' };
    expect(await resolveCredential([none, a, boom], scope)).toEqual({
      credential: { kind: 'bearer', token: 'A' },
      keychain: 'a',
    });
    expect(await resolveCredential([none], scope)).toEqual({
      credential: { kind: 'anonymous' },
      keychain: undefined,
    });
    await expect(resolveCredential([boom, a], scope)).rejects.toMatchObject({
      code: 'IRB_KEYCHAIN_FAILED',
      message: expect.stringContaining('keychain "boom"'),
    });
  });

  it('knows which strings of a credential are secret', () => {
    expect(credentialSecrets({ kind: 'basic', username: 'u', password: 'p w' })).toEqual([
      'p w',
      Buffer.from('u:p w').toString('base64'),
      'p%20w',
    ]);
    expect(credentialSecrets({ kind: 'anonymous' })).toEqual([]);
  });
});

describe('retry policy', () => {
  it('parses Retry-After seconds and dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:05 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('backs off exponentially with jitter, capped, Retry-After winning', () => {
    const retry = { retries: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    for (let attempt = 0; attempt < 3; attempt++) {
      const d = backoffDelay(attempt, retry);
      expect(d).toBeGreaterThanOrEqual(50 * 2 ** attempt);
      expect(d).toBeLessThanOrEqual(150 * 2 ** attempt);
    }
    expect(backoffDelay(10, retry)).toBe(1000);
    expect(backoffDelay(0, retry, 400)).toBe(400);
    expect(backoffDelay(0, retry, 90_000)).toBe(1000);
  });

  it('retries 408, 429 and 5xx except 501/505', () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 501, 505].some(isRetryableStatus)).toBe(false);
  });
});

describe('redaction and configuration', () => {
  it('redacts user info and query strings', () => {
    expect(redactUrl('https://user:secret@host.example/v2/x?X-Amz-Signature=abc')).toBe(
      'https://host.example/v2/x?<redacted>',
    );
    expect(redactHeaders({ Authorization: 'Bearer x', 'content-type': 'a' })).toEqual({
      Authorization: '<redacted>',
      'content-type': 'a',
    });
    expect(scrub('token abc123 here', ['abc123'])).toBe('token <redacted> here');
  });

  it('parses IRB_REGISTRY_MIRRORS', () => {
    expect(
      parseMirrorsEnv('docker.io=https://a.example,docker.io=https://b.example;ghcr.io=http://c:5000'),
    ).toEqual({
      'docker.io': ['https://a.example', 'https://b.example'],
      'ghcr.io': ['http://c:5000'],
    });
    expect(() => parseMirrorsEnv('docker.io=')).toThrow(/not registry=URL/);
  });
});
