// The client with basic and token auth: keychains, token refresh, secrets kept out of messages.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import {
  pushImage,
  type StartedFaultProxy,
  type StartedRegistry,
  startFaultProxy,
  startRegistry,
} from '@irb/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { createStaticKeychain, type Keychain } from '../src/index.ts';
import {
  cleanups,
  client,
  codeOf,
  dockerImage,
  ociImage,
  PASSWORD,
  pullAndCompare,
  REFRESH,
  tempDir,
  useClientFixtures,
} from './client-fixtures.ts';

useClientFixtures();

describe('htpasswd (basic) auth', () => {
  let basicReg: StartedRegistry;
  let px: StartedFaultProxy;
  const basic = `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`;
  beforeAll(async () => {
    basicReg = await startRegistry({ auth: { htpasswd: { user: 'alice', pass: PASSWORD } } });
    cleanups.push(() => basicReg.stop());
    await pushImage(basicReg, 'private/app', 'v1', ociImage);
    px = await startFaultProxy(basicReg.url, [], { blobStoreUpstreamAuthorization: async () => basic });
    cleanups.push(() => px.stop());
  });

  it('pulls with a keychain and refuses without one', async () => {
    const keychain = createStaticKeychain({
      [basicReg.host]: { kind: 'basic', username: 'alice', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    await pullAndCompare(c, `${basicReg.host}/private/app:v1`, ociImage);
    const anon = client({ cacheDir: await tempDir() });
    const failure = await codeOf(anon.image(`${basicReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failure.message).toMatch(/no keychain supplied credentials/);
  });

  it('a wrong password says so and never shows the secret', async () => {
    const wrong = `${PASSWORD}-wrong`;
    const keychain = createStaticKeychain(
      { [basicReg.host]: { kind: 'basic', username: 'alice', password: wrong } },
      'my-keychain',
    );
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const failure = await codeOf(c.image(`${basicReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failure.message).toMatch(/rejected the credentials from keychain "my-keychain"/);
    const everything = `${failure.message}\n${inspect(failure.error, { depth: 10 })}\n${JSON.stringify(failure.error)}`;
    for (const secret of [wrong, Buffer.from(`alice:${wrong}`).toString('base64')]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('follows redirects to another origin without sending Authorization there', async () => {
    px.add({
      method: 'GET',
      path: '/blobs/sha256:',
      fault: { kind: 'redirect' },
      times: Number.POSITIVE_INFINITY,
    });
    const keychain = createStaticKeychain({
      [px.host]: { kind: 'basic', username: 'alice', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    await pullAndCompare(c, `${px.host}/private/app:v1`, ociImage);
    const redirected = px.requests.filter((r) => r.fault === 'redirect');
    expect(redirected.length).toBe(3); // config + 2 layers
    expect(redirected.every((r) => r.headers.authorization === basic)).toBe(true);
    expect(px.blobStore.requests.length).toBe(3);
    expect(px.blobStore.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
  });
});

describe('token auth', () => {
  let tokReg: StartedRegistry;
  beforeAll(async () => {
    tokReg = await startRegistry({
      auth: {
        token: {
          users: { bob: PASSWORD },
          anonymousPull: ['public/app'],
          refreshTokens: { [REFRESH]: 'bob' },
        },
      },
    });
    cleanups.push(() => tokReg.stop());
    await pushImage(tokReg, 'public/app', 'v1', ociImage);
    await pushImage(tokReg, 'private/app', 'v1', dockerImage);
  });
  const requests = () => tokReg.tokenServer!.requests;

  it('gets anonymous tokens for public repositories', async () => {
    const c = client({ cacheDir: await tempDir() });
    const before = requests().length;
    await pullAndCompare(c, `${tokReg.host}/public/app:v1`, ociImage);
    const mine = requests().slice(before);
    expect(mine.length).toBe(1); // one token, cached for every later request
    expect(mine[0]).toMatchObject({ method: 'GET', user: undefined, scopes: ['repository:public/app:pull'] });
    const failure = await codeOf(c.image(`${tokReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
  });

  it('exchanges a username/password for a token and caches it', async () => {
    const keychain = createStaticKeychain({
      [tokReg.host]: { kind: 'basic', username: 'bob', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const before = requests().length;
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
    const mine = requests().slice(before);
    expect(mine.map((r) => r.user)).toEqual(['bob']);
  });

  it('fetches a fresh token when the registry rejects a cached one (expired or revoked)', async () => {
    const px = await startFaultProxy(tokReg.url);
    cleanups.push(() => px.stop());
    const keychain = createStaticKeychain({
      [px.host]: { kind: 'basic', username: 'bob', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    await pullAndCompare(c, `${px.host}/private/app:v1`, dockerImage);
    const before = requests().length;
    px.add({
      method: 'HEAD',
      path: '/manifests/v1',
      fault: {
        kind: 'status',
        status: 401,
        headers: {
          'www-authenticate': `Bearer realm="${tokReg.tokenServer!.realm}",service="irb-test-registry",scope="repository:private/app:pull",error="invalid_token"`,
        },
      },
    });
    await pullAndCompare(c, `${px.host}/private/app:v1`, dockerImage);
    expect(
      requests()
        .slice(before)
        .map((r) => r.user),
    ).toEqual(['bob']);
    const heads = px.requests.filter((r) => r.method === 'HEAD');
    expect(heads.at(-2)!.headers.authorization).toMatch(/^Bearer /);
    expect(heads.at(-1)!.headers.authorization).not.toBe(heads.at(-2)!.headers.authorization);
  });

  it('uses identity tokens (refresh_token grant)', async () => {
    const keychain: Keychain = {
      name: 'identity',
      resolve: async (scope) =>
        scope.registry === tokReg.host ? { kind: 'identity-token', token: REFRESH } : undefined,
    };
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const before = requests().length;
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
    expect(requests().slice(before)).toMatchObject([
      { method: 'POST', grantType: 'refresh_token', user: 'bob' },
    ]);
  });

  it('first keychain answer wins; unanswered falls through', async () => {
    const silent: Keychain = { name: 'silent', resolve: async () => undefined };
    const good = createStaticKeychain({
      [tokReg.host]: { kind: 'basic', username: 'bob', password: PASSWORD },
    });
    const bad = createStaticKeychain({ [tokReg.host]: { kind: 'basic', username: 'bob', password: 'nope' } });
    const c = client({ cacheDir: await tempDir(), keychains: [silent, good, bad] });
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
  });

  it('a wrong password is reported without leaking it', async () => {
    const wrong = `${PASSWORD}x`;
    const keychain = createStaticKeychain(
      { [tokReg.host]: { kind: 'basic', username: 'bob', password: wrong } },
      'docker-config',
    );
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const failure = await codeOf(c.image(`${tokReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failure.message).toMatch(/rejected the username\/password from keychain "docker-config"/);
    expect(failure.message).toMatch(/log in again/);
    const everything = `${failure.message}\n${inspect(failure.error, { depth: 10 })}`;
    expect(everything).not.toContain(wrong);
    expect(everything).not.toContain(Buffer.from(`bob:${wrong}`).toString('base64'));
  });

  it('a wrong identity token is reported without leaking it', async () => {
    const token = `bad-${randomBytes(8).toString('hex')}`;
    const keychain: Keychain = { name: 'idt', resolve: async () => ({ kind: 'identity-token', token }) };
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const failure = await codeOf(c.image(`${tokReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(`${failure.message}${inspect(failure.error, { depth: 10 })}`).not.toContain(token);
  });
});
