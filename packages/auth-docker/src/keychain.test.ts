import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDockerKeychain, findAuthFiles } from './index.ts';

let root: string;
let home: string;
let bin: string;
let env: Record<string, string | undefined>;

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function writeJson(path: string, data: unknown) {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(data, null, 2));
}

/** Installs a real executable credential helper `docker-credential-<name>` on the test PATH. */
async function installHelper(name: string, script: string) {
  const path = join(bin, `docker-credential-${name}`);
  await writeFile(path, `#!/bin/sh\n${script}\n`);
  await chmod(path, 0o755);
  return path;
}

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'irb-auth-docker-'));
  home = join(root, 'home');
  bin = join(root, 'bin');
  await mkdir(home, { recursive: true });
  await mkdir(bin, { recursive: true });
  // Only our bin dir plus the basics a shell script needs; never the developer's real helpers.
  env = { HOME: home, PATH: `${bin}:/usr/bin:/bin`, XDG_RUNTIME_DIR: join(root, 'run') };
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('config.json auths', () => {
  it('decodes base64 auth for host:port keys and splits at the first colon', async () => {
    await writeJson(join(home, '.docker/config.json'), {
      auths: { 'localhost:5000': { auth: b64('alice:pa:ss') } },
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'localhost:5000', repository: 'a/b' })).toEqual({
      kind: 'basic',
      username: 'alice',
      password: 'pa:ss',
    });
    expect(await kc.resolve({ registry: 'localhost:5001', repository: 'a/b' })).toBeUndefined();
  });

  it('reads DOCKER_CONFIG instead of ~/.docker', async () => {
    await writeJson(join(home, '.docker/config.json'), { auths: { 'r.example': { auth: b64('home:x') } } });
    await writeJson(join(root, 'dc/config.json'), { auths: { 'r.example': { auth: b64('dc:y') } } });
    const kc = createDockerKeychain({ env: { ...env, DOCKER_CONFIG: join(root, 'dc') } });
    expect(await kc.resolve({ registry: 'r.example', repository: 'x' })).toMatchObject({ username: 'dc' });
  });

  it('uses username/password fields and identitytoken', async () => {
    await writeJson(join(home, '.docker/config.json'), {
      auths: {
        'plain.example': { username: 'bob', password: 'secret' },
        'token.example': { auth: b64('ignored:ignored'), identitytoken: 'refresh-123' },
      },
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'plain.example', repository: 'r' })).toEqual({
      kind: 'basic',
      username: 'bob',
      password: 'secret',
    });
    expect(await kc.resolve({ registry: 'token.example', repository: 'r' })).toEqual({
      kind: 'identity-token',
      token: 'refresh-123',
    });
  });

  it('finds Docker Hub under https://index.docker.io/v1/', async () => {
    await writeJson(join(home, '.docker/config.json'), {
      auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') } },
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'docker.io', repository: 'library/alpine' })).toEqual({
      kind: 'basic',
      username: 'hubuser',
      password: 'hubpass',
    });
  });

  it('finds Docker Hub credentials whichever alias the reference or the config file uses', async () => {
    await writeJson(join(home, '.docker/config.json'), {
      auths: { 'registry.hub.docker.com': { auth: b64('hubuser:hubpass') } },
    });
    const kc = createDockerKeychain({ env });
    for (const registry of [
      'docker.io',
      'index.docker.io',
      'registry-1.docker.io',
      'REGISTRY.HUB.DOCKER.COM',
    ]) {
      expect(await kc.resolve({ registry, repository: 'library/alpine' })).toEqual({
        kind: 'basic',
        username: 'hubuser',
        password: 'hubpass',
      });
    }
  });

  it('matches keys written with a scheme and path, but not scheme-less repository keys for other repos', async () => {
    await writeJson(join(home, '.docker/config.json'), {
      auths: {
        'https://registry.example.com/v2/': { auth: b64('u1:p1') },
        'http://localhost:5000': { auth: b64('u2:p2') },
        'other.example/team/app': { auth: b64('u3:p3') },
      },
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'registry.example.com', repository: 'x' })).toMatchObject({
      username: 'u1',
    });
    expect(await kc.resolve({ registry: 'localhost:5000', repository: 'x' })).toMatchObject({
      username: 'u2',
    });
    expect(await kc.resolve({ registry: 'other.example', repository: 'team/app' })).toMatchObject({
      username: 'u3',
    });
    expect(await kc.resolve({ registry: 'other.example', repository: 'team/else' })).toBeUndefined();
  });

  it('skips empty entries (written by docker login when a store holds the secret)', async () => {
    await writeJson(join(home, '.docker/config.json'), { auths: { 'r.example': {} } });
    expect(
      await createDockerKeychain({ env }).resolve({ registry: 'r.example', repository: 'x' }),
    ).toBeUndefined();
  });

  it('rejects a broken file with a clear error that does not echo its contents', async () => {
    await mkdir(join(home, '.docker'), { recursive: true });
    await writeFile(join(home, '.docker/config.json'), '{"auths": {"r.example": {"auth": "c2VjcmV0OnB3"}');
    const error = await createDockerKeychain({ env })
      .resolve({ registry: 'r.example', repository: 'x' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_AUTH_FILE_INVALID' });
    expect(String((error as Error).message)).toContain('config.json');
    expect(JSON.stringify(error)).not.toContain('c2VjcmV0OnB3');
    expect((error as Error).message).not.toContain('c2VjcmV0OnB3');
  });

  it('rejects an auth value that is not base64 of user:password', async () => {
    await writeJson(join(home, '.docker/config.json'), { auths: { 'r.example': { auth: b64('nocolon') } } });
    const error = await createDockerKeychain({ env })
      .resolve({ registry: 'r.example', repository: 'x' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_AUTH_FILE_INVALID' });
    expect((error as Error).message).toContain('r.example');
    expect((error as Error).message).not.toContain(b64('nocolon'));
  });
});

describe('containers auth.json', () => {
  it('prefers the most specific repository-scoped key', async () => {
    await writeJson(join(home, '.config/containers/auth.json'), {
      auths: {
        'quay.example': { auth: b64('registry:r') },
        'quay.example/team': { auth: b64('namespace:n') },
        'quay.example/team/app': { auth: b64('repo:a') },
      },
    });
    const kc = createDockerKeychain({ env });
    const who = async (repository: string) =>
      ((await kc.resolve({ registry: 'quay.example', repository })) as { username: string }).username;
    expect(await who('team/app')).toBe('repo');
    expect(await who('team/other')).toBe('namespace');
    expect(await who('team/app/sub')).toBe('repo');
    expect(await who('solo')).toBe('registry');
  });

  it('uses podman precedence: runtime auth.json, then ~/.config, then docker config', async () => {
    await writeJson(join(root, 'run/containers/auth.json'), { auths: { a: { auth: b64('runtime:1') } } });
    await writeJson(join(home, '.config/containers/auth.json'), {
      auths: { a: { auth: b64('config:2') }, b: { auth: b64('config:2') } },
    });
    await writeJson(join(home, '.docker/config.json'), {
      auths: { a: { auth: b64('docker:3') }, b: { auth: b64('docker:3') }, c: { auth: b64('docker:3') } },
    });
    const kc = createDockerKeychain({ env });
    const who = async (registry: string) =>
      ((await kc.resolve({ registry, repository: 'x' })) as { username: string }).username;
    expect([await who('a'), await who('b'), await who('c')]).toEqual(['runtime', 'config', 'docker']);
    expect(findAuthFiles({ env }).map((f) => f.path)).toEqual([
      join(root, 'run/containers/auth.json'),
      join(home, '.config/containers/auth.json'),
      join(home, '.docker/config.json'),
      join(home, '.dockercfg'),
    ]);
  });

  it('reads only REGISTRY_AUTH_FILE when it is set', async () => {
    await writeJson(join(root, 'explicit.json'), { auths: { a: { auth: b64('explicit:1') } } });
    await writeJson(join(home, '.docker/config.json'), { auths: { b: { auth: b64('docker:2') } } });
    const kc = createDockerKeychain({ env: { ...env, REGISTRY_AUTH_FILE: join(root, 'explicit.json') } });
    expect(await kc.resolve({ registry: 'a', repository: 'x' })).toMatchObject({ username: 'explicit' });
    expect(await kc.resolve({ registry: 'b', repository: 'x' })).toBeUndefined();
  });

  it('reads the legacy ~/.dockercfg format', async () => {
    await writeJson(join(home, '.dockercfg'), { 'https://old.example/v1/': { auth: b64('old:timer') } });
    expect(await createDockerKeychain({ env }).resolve({ registry: 'old.example', repository: 'x' })).toEqual(
      {
        kind: 'basic',
        username: 'old',
        password: 'timer',
      },
    );
  });
});

describe('credential helpers', () => {
  // A real helper: echoes back the server URL it was given so the test sees docker's protocol.
  const echoHelper = `read url
echo "$url" >> "$(dirname "$0")/calls.log"
case "$url" in
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"hub-refresh"}' "$url" ;;
  known.example|known.example:*) printf '{"ServerURL":"%s","Username":"helperuser","Secret":"helper-secret"}' "$url" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac`;

  it('runs credHelpers per registry with the server URL on stdin', async () => {
    await installHelper('echo', echoHelper);
    await writeJson(join(home, '.docker/config.json'), {
      auths: { 'known.example': { auth: b64('inline:ignored') } },
      credHelpers: { 'known.example': 'echo', 'https://index.docker.io/v1/': 'echo', 'none.example': 'echo' },
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'known.example', repository: 'r' })).toEqual({
      kind: 'basic',
      username: 'helperuser',
      password: 'helper-secret',
    });
    expect(await kc.resolve({ registry: 'docker.io', repository: 'library/alpine' })).toEqual({
      kind: 'identity-token',
      token: 'hub-refresh',
    });
    expect(await kc.resolve({ registry: 'none.example', repository: 'r' })).toBeUndefined();
    const calls = (await readFile(join(bin, 'calls.log'), 'utf8')).trim().split('\n');
    expect(calls).toEqual(['known.example', 'https://index.docker.io/v1/', 'none.example']);
  });

  it('asks credsStore for registries without their own entry, once per server per keychain', async () => {
    await installHelper('echo', echoHelper);
    await writeJson(join(home, '.docker/config.json'), {
      auths: { 'inline.example': { auth: b64('inline:pw') }, 'known.example:8443': {} },
      credsStore: 'echo',
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'inline.example', repository: 'r' })).toMatchObject({
      username: 'inline',
    });
    expect(await kc.resolve({ registry: 'known.example:8443', repository: 'a' })).toMatchObject({
      username: 'helperuser',
    });
    expect(await kc.resolve({ registry: 'known.example:8443', repository: 'b' })).toMatchObject({
      username: 'helperuser',
    });
    expect(await kc.resolve({ registry: 'unknown.example', repository: 'r' })).toBeUndefined();
    const calls = (await readFile(join(bin, 'calls.log'), 'utf8')).trim().split('\n');
    expect(calls).toEqual(['known.example:8443', 'unknown.example']);
  });

  it('reports a missing helper by name without failing registries that do not need it', async () => {
    await writeJson(join(home, '.docker/config.json'), {
      auths: { 'inline.example': { auth: b64('inline:pw') } },
      credHelpers: { 'gone.example': 'nonexistent' },
    });
    const kc = createDockerKeychain({ env });
    expect(await kc.resolve({ registry: 'inline.example', repository: 'r' })).toMatchObject({
      username: 'inline',
    });
    const error = await kc.resolve({ registry: 'gone.example', repository: 'r' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_AUTH_HELPER_NOT_FOUND' });
    expect((error as Error).message).toContain('docker-credential-nonexistent');
    expect((error as Error).message).toContain('PATH');
  });

  it('reports a failing helper with its own message and never the secret', async () => {
    await installHelper('broken', 'cat >/dev/null; echo "error: keychain is locked" >&2; exit 3');
    await writeJson(join(home, '.docker/config.json'), { credsStore: 'broken' });
    const error = await createDockerKeychain({ env })
      .resolve({ registry: 'r.example', repository: 'x' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_AUTH_HELPER_FAILED' });
    expect((error as Error).message).toContain('status 3');
    expect((error as Error).message).toContain('keychain is locked');
  });

  it('does not echo a malformed answer, which may be the secret itself', async () => {
    await installHelper('raw', 'cat >/dev/null; echo "TOPSECRET-raw-token"');
    await writeJson(join(home, '.docker/config.json'), { credHelpers: { 'r.example': 'raw' } });
    const error = await createDockerKeychain({ env })
      .resolve({ registry: 'r.example', repository: 'x' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_AUTH_HELPER_FAILED' });
    expect((error as Error).message).not.toContain('TOPSECRET');
  });

  it('kills a helper that hangs and says so', async () => {
    await installHelper('slow', 'exec sleep 30');
    await writeJson(join(home, '.docker/config.json'), { credHelpers: { 'r.example': 'slow' } });
    const error = await createDockerKeychain({ env, helperTimeout: 300 })
      .resolve({ registry: 'r.example', repository: 'x' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_AUTH_HELPER_TIMEOUT' });
    expect((error as Error).message).toContain('docker-credential-slow');
  });

  it('stops a helper when the signal aborts', async () => {
    await installHelper('slow', 'exec sleep 30');
    await writeJson(join(home, '.docker/config.json'), { credHelpers: { 'r.example': 'slow' } });
    const controller = new AbortController();
    const pending = createDockerKeychain({ env }).resolve(
      { registry: 'r.example', repository: 'x' },
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(new Error('user cancelled')), 50);
    await expect(pending).rejects.toThrow('user cancelled');
  });
});
