import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryClient } from '@irb/registry';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerKeychain } from '../src/index.ts';

const USER = 'docker-user';
const PASS = 'docker-secret-9f3a';

describe('createDockerKeychain against a real registry with htpasswd auth', () => {
  let root: string;
  let registry: StartedRegistry;
  let ref: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'irb-auth-docker-e2e-'));
    registry = await startRegistry({ auth: { htpasswd: { user: USER, pass: PASS } } });
    // pushImage speaks the registry's htpasswd auth with the harness's credentials.
    await pushImage(
      registry,
      'private/app',
      'v1',
      buildImage({ layers: [await buildTar([{ type: 'file', path: 'f', content: 'docker' }])] }),
    );
    ref = `${registry.host}/private/app:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function pullWith(config: unknown, helper?: string) {
    const dir = await mkdtemp(join(root, 'cfg-'));
    const bin = join(dir, 'bin');
    await mkdir(bin);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    if (helper) {
      await writeFile(join(bin, 'docker-credential-irbtest'), `#!/bin/sh\n${helper}\n`);
      await chmod(join(bin, 'docker-credential-irbtest'), 0o755);
    }
    const keychain = createDockerKeychain({
      env: { HOME: dir, DOCKER_CONFIG: dir, XDG_RUNTIME_DIR: join(dir, 'run'), PATH: `${bin}:/usr/bin:/bin` },
    });
    const client = createRegistryClient({ cache: false, keychains: [keychain] });
    try {
      const image = await client.image(ref);
      const layer = (await image.layers())[0]!;
      let bytes = 0;
      for await (const chunk of layer.open()) bytes += chunk.byteLength;
      return bytes === layer.size;
    } finally {
      await client.close();
    }
  }

  it('pulls with an auths entry keyed host:port', async () => {
    const auth = Buffer.from(`${USER}:${PASS}`).toString('base64');
    expect(await pullWith({ auths: { [registry.host]: { auth } } })).toBe(true);
  });

  it('pulls with a credential helper script named in credHelpers', async () => {
    const helper = `read url
[ "$url" = "${registry.host}" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASS}"}' "$url"`;
    expect(await pullWith({ credHelpers: { [registry.host]: 'irbtest' } }, helper)).toBe(true);
  });

  it('surfaces a failing helper as its own error, never the secret', async () => {
    const error = await pullWith({ credsStore: 'irbtest' }, 'echo "vault sealed" >&2; exit 2').catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'IRB_AUTH_HELPER_FAILED' });
    expect((error as Error).message).toContain('vault sealed');
    expect((error as Error).message).not.toContain(PASS);
  });
});
