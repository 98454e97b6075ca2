// The transport policy: plain HTTP only where allowed, mirrors.
import { setProxyEnv, startFaultProxy, startForwardProxy } from '@irb/test-utils';
import { describe, expect, it } from 'vitest';
import { createRegistryClient } from '../src/index.ts';
import {
  cleanups,
  client,
  codeOf,
  dockerImage,
  ociImage,
  plainImage,
  pullAndCompare,
  reg,
  tempDir,
  useClientFixtures,
} from './client-fixtures.ts';

useClientFixtures();

describe('transport policy', () => {
  it('refuses plain HTTP to a non-loopback registry unless marked insecure', async () => {
    // The proxy sends everything to the registry on loopback: the name is never resolved.
    const proxy = await startForwardProxy({ pinPort: Number(new URL(reg.url).port) });
    cleanups.push(() => proxy.stop());
    const host = 'registry.irb.test:5000';
    const restoreEnv = setProxyEnv(proxy.url);
    try {
      const strict = client({ cacheDir: await tempDir(), retry: { retries: 0 } });
      const failure = await codeOf(strict.image(`${host}/test/oci:v1`));
      expect(failure.code).toBe('IRB_REGISTRY_INSECURE');
      expect(failure.message).toContain(`\`insecureRegistries: ['${host}']\``);
      // a library names its options; the CLI translates them into flags
      expect(failure.message).not.toMatch(/--[a-z]/);
      const relaxed = client({ cacheDir: await tempDir(), insecureRegistries: [`http://${host}/`] });
      await pullAndCompare(relaxed, `${host}/test/oci:v1`, ociImage);
    } finally {
      restoreEnv();
    }
  });

  it('tries mirrors first and falls back to the origin', async () => {
    const mirror = await startFaultProxy(reg.url);
    cleanups.push(() => mirror.stop());
    // Only the mirror knows this registry name: the origin cannot resolve.
    const viaMirror = client({ cacheDir: await tempDir(), mirrors: { 'registry.invalid': [mirror.url] } });
    await pullAndCompare(viaMirror, 'registry.invalid/test/oci:v1', ociImage);
    expect(mirror.requests.some((r) => r.path.includes('/blobs/'))).toBe(true);
    // A broken mirror: everything falls back to the origin.
    mirror.add({ path: '/v2/', fault: { kind: 'status', status: 500 }, times: Number.POSITIVE_INFINITY });
    const fallback = client({
      cacheDir: await tempDir(),
      mirrors: { [reg.host]: [mirror.url] },
      retry: { retries: 0 },
    });
    await pullAndCompare(fallback, `${reg.host}/test/docker:v1`, dockerImage);
    // A mirror serving corrupt bytes: the blob comes from the origin instead.
    const corrupt = await startFaultProxy(reg.url);
    cleanups.push(() => corrupt.stop());
    corrupt.add({ path: `/blobs/${ociImage.layers[1]!.digest}`, fault: { kind: 'flip', at: 10 } });
    const dir = await tempDir();
    const viaCorrupt = client({ cacheDir: dir, mirrors: { [reg.host]: [corrupt.url] }, readAhead: false });
    await pullAndCompare(viaCorrupt, `${reg.host}/test/oci:v1`, ociImage);
    expect(corrupt.requests.filter((r) => r.fault === 'flip').length).toBe(1);
  });

  it('reads mirrors from IRB_REGISTRY_MIRRORS and refuses malformed ones', async () => {
    const mirror = await startFaultProxy(reg.url);
    cleanups.push(() => mirror.stop());
    process.env.IRB_REGISTRY_MIRRORS = `mirror-only.invalid=${mirror.url}`;
    try {
      const c = client({ cacheDir: await tempDir() });
      await pullAndCompare(c, 'mirror-only.invalid/test/plain:v1', plainImage);
      // Docker Hub mirrors may be keyed by any of Hub's names; `test/plain` is docker.io/test/plain.
      process.env.IRB_REGISTRY_MIRRORS = `index.docker.io=${mirror.url}`;
      await pullAndCompare(client({ cacheDir: await tempDir() }), 'test/plain:v1', plainImage);
      process.env.IRB_REGISTRY_MIRRORS = 'docker.io';
      expect(() => createRegistryClient()).toThrow(/not registry=URL/);
      process.env.IRB_REGISTRY_MIRRORS = 'docker.io=https://user:pw@mirror.example';
      expect(() => createRegistryClient()).toThrow(/credentials in its URL/);
    } finally {
      delete process.env.IRB_REGISTRY_MIRRORS;
    }
  });
});
