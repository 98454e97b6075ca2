import { createRegistryClient } from '@irb/registry';
import { buildImage, buildTar, pushImage, type StartedRegistry, startRegistry } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnvKeychain, envHostSuffix } from '../src/index.ts';

const USER = 'ci-bot';
const PASS = 'env-secret-Pa55:word';

describe('createEnvKeychain against a real registry with htpasswd auth', () => {
  let registry: StartedRegistry;
  let ref: string;

  beforeAll(async () => {
    registry = await startRegistry({ auth: { htpasswd: { user: USER, pass: PASS } } });
    // pushImage speaks the registry's htpasswd auth with the harness's credentials.
    await pushImage(
      registry,
      'private/app',
      'v1',
      buildImage({ layers: [await buildTar([{ type: 'file', path: 'hello', content: 'from env' }])] }),
    );
    ref = `${registry.host}/private/app:v1`;
  });

  afterAll(async () => {
    await registry?.stop();
  });

  const pull = async (env: Record<string, string>) => {
    const client = createRegistryClient({ cache: false, keychains: [createEnvKeychain({ env })] });
    try {
      const image = await client.image(ref);
      const layer = (await image.layers())[0]!;
      let bytes = 0;
      for await (const chunk of layer.open()) bytes += chunk.byteLength;
      return { digest: await image.digest(), bytes, size: layer.size };
    } finally {
      await client.close();
    }
  };

  it('pulls with IRB_AUTH_<HOST> (host with dots and a port)', async () => {
    const name = `IRB_AUTH_${envHostSuffix(registry.host)}`;
    expect(name).toMatch(/^IRB_AUTH_127_0_0_1_\d+$/);
    const result = await pull({ [name]: `${USER}:${PASS}` });
    expect(result.bytes).toBe(result.size);
  });

  it('pulls with a repository-scoped IRB_REGISTRY_AUTH entry', async () => {
    const result = await pull({
      IRB_REGISTRY_AUTH: JSON.stringify({ [`${registry.host}/private`]: { username: USER, password: PASS } }),
    });
    expect(result.bytes).toBe(result.size);
  });

  it('fails clearly, without the password, when the credentials are wrong or absent', async () => {
    const wrong = await pull({ [`IRB_AUTH_${envHostSuffix(registry.host)}`]: `${USER}:not-${PASS}` }).catch(
      (e: unknown) => e,
    );
    expect(wrong).toMatchObject({ code: 'IRB_REGISTRY_UNAUTHORIZED' });
    expect((wrong as Error).message).toContain('"env"');
    expect((wrong as Error).message).not.toContain(PASS);
    const none = await pull({}).catch((e: unknown) => e);
    expect(none).toMatchObject({ code: 'IRB_REGISTRY_UNAUTHORIZED' });
  });
});
