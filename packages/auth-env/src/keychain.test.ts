import { describe, expect, it } from 'vitest';
import { createEnvKeychain, envHostSuffix } from './index.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const scope = (registry: string, repository = 'team/app') => ({ registry, repository });

describe('envHostSuffix', () => {
  it('encodes dots, ports and hyphens distinctly', () => {
    expect(envHostSuffix('registry.example.com:5000')).toBe('REGISTRY_EXAMPLE_COM_5000');
    expect(envHostSuffix('my-reg.io')).toBe('MY__REG_IO');
    expect(envHostSuffix('my.reg.io')).toBe('MY_REG_IO');
    expect(envHostSuffix('127.0.0.1:5000')).toBe('127_0_0_1_5000');
    expect(envHostSuffix('index.docker.io')).toBe('DOCKER_IO');
  });

  it('gives every Docker Hub alias the one DOCKER_IO suffix', () => {
    for (const alias of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']) {
      expect(envHostSuffix(alias)).toBe('DOCKER_IO');
      expect(envHostSuffix(alias.toUpperCase())).toBe('DOCKER_IO');
    }
  });
});

describe('createEnvKeychain', () => {
  it('reads IRB_AUTH_<HOST> as username:password, splitting at the first colon', async () => {
    const kc = createEnvKeychain({ env: { IRB_AUTH_REGISTRY_EXAMPLE_COM_5000: 'ci:pa:ss' } });
    expect(await kc.resolve(scope('registry.example.com:5000'))).toEqual({
      kind: 'basic',
      username: 'ci',
      password: 'pa:ss',
    });
    expect(await kc.resolve(scope('registry.example.com'))).toBeUndefined();
  });

  it('reads IRB_TOKEN_<HOST> as a bearer token and Docker Hub as DOCKER_IO', async () => {
    const kc = createEnvKeychain({ env: { IRB_TOKEN_DOCKER_IO: 'tok' } });
    expect(await kc.resolve(scope('docker.io', 'library/alpine'))).toEqual({ kind: 'bearer', token: 'tok' });
  });

  it('treats empty variables as unset and accepts lowercase names', async () => {
    const kc = createEnvKeychain({ env: { IRB_AUTH_GHCR_IO: '', irb_auth_quay_io: 'u:p' } });
    expect(await kc.resolve(scope('ghcr.io'))).toBeUndefined();
    expect(await kc.resolve(scope('quay.io'))).toMatchObject({ username: 'u' });
  });

  it('reads the JSON map, most specific key first', async () => {
    const env = {
      IRB_REGISTRY_AUTH: JSON.stringify({
        'https://reg.example/': { username: 'host', password: 'h' },
        'reg.example/team': { auth: b64('team:t') },
        'reg.example/team/app': { identityToken: 'refresh' },
        'https://index.docker.io/v1/': { token: 'hub' },
      }),
      IRB_AUTH_REG_EXAMPLE: 'var:v',
    };
    const kc = createEnvKeychain({ env });
    expect(await kc.resolve(scope('reg.example', 'team/app'))).toEqual({
      kind: 'identity-token',
      token: 'refresh',
    });
    expect(await kc.resolve(scope('reg.example', 'team/other'))).toEqual({
      kind: 'basic',
      username: 'team',
      password: 't',
    });
    // The per-host variable beats the JSON host entry.
    expect(await kc.resolve(scope('reg.example', 'solo'))).toMatchObject({ username: 'var' });
    delete (env as Record<string, string | undefined>).IRB_AUTH_REG_EXAMPLE;
    expect(await kc.resolve(scope('reg.example', 'solo'))).toMatchObject({ username: 'host' });
    expect(await kc.resolve(scope('docker.io', 'library/alpine'))).toEqual({ kind: 'bearer', token: 'hub' });
  });

  it('honours a custom prefix', async () => {
    const kc = createEnvKeychain({
      prefix: 'ACME',
      env: { ACME_AUTH_GHCR_IO: 'a:b', IRB_AUTH_GHCR_IO: 'x:y' },
    });
    expect(await kc.resolve(scope('ghcr.io'))).toMatchObject({ username: 'a' });
  });

  it('names the variable, never the value, when something is malformed', async () => {
    const secret = 'hunter2-very-secret';
    const cases: Array<[Record<string, string>, string]> = [
      [{ IRB_AUTH_GHCR_IO: secret }, 'IRB_AUTH_GHCR_IO'],
      [{ IRB_REGISTRY_AUTH: `{"ghcr.io": {"password": "${secret}"` }, 'IRB_REGISTRY_AUTH'],
      [
        { IRB_REGISTRY_AUTH: JSON.stringify({ 'ghcr.io': { password: secret } }) },
        'IRB_REGISTRY_AUTH["ghcr.io"]',
      ],
      [
        { IRB_REGISTRY_AUTH: JSON.stringify({ 'ghcr.io': { auth: b64(secret) } }) },
        'IRB_REGISTRY_AUTH["ghcr.io"]',
      ],
      [{ IRB_AUTH_GHCR_IO: `u:${secret}`, IRB_TOKEN_GHCR_IO: secret }, 'IRB_TOKEN_GHCR_IO'],
      // A password that is not UTF-8 would reach the registry changed: refused, not decoded lossily.
      [
        {
          IRB_REGISTRY_AUTH: JSON.stringify({
            'ghcr.io': { auth: Buffer.from([...Buffer.from(`u:${secret}`), 0xff, 0xfe]).toString('base64') },
          }),
        },
        'IRB_REGISTRY_AUTH["ghcr.io"]',
      ],
    ];
    for (const [env, name] of cases) {
      const error = await createEnvKeychain({ env })
        .resolve(scope('ghcr.io'))
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'IRB_AUTH_ENV_INVALID' });
      expect((error as Error).message).toContain(name);
      expect((error as Error).message).not.toContain(secret);
      expect((error as Error).message).not.toContain(b64(secret));
      expect((error as Error).cause).toBeUndefined();
    }
  });

  it('defers (undefined) when nothing is configured for the registry', async () => {
    const kc = createEnvKeychain({
      env: { IRB_AUTH_OTHER_IO: 'u:p', IRB_REGISTRY_AUTH: '{"other.io":{"token":"t"}}' },
    });
    expect(await kc.resolve(scope('ghcr.io'))).toBeUndefined();
  });
});

describe('Docker Hub aliases in IRB_REGISTRY_AUTH keys', () => {
  it('a key under any Hub alias answers for docker.io', async () => {
    for (const alias of ['index.docker.io', 'registry-1.docker.io', 'https://registry.hub.docker.com']) {
      const kc = createEnvKeychain({
        env: { IRB_REGISTRY_AUTH: JSON.stringify({ [alias]: { token: 't' } }) },
      });
      expect(await kc.resolve(scope('docker.io'))).toEqual({ kind: 'bearer', token: 't' });
    }
  });
});
