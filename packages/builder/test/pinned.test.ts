import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildImage,
  buildTar,
  pushImage,
  type StartedFaultProxy,
  type StartedRegistry,
  startFaultProxy,
  startRegistry,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InitramfsBuilder } from '../src/index.ts';

/*
 * A reference pinned by digest names content that cannot change: once its manifest is in the
 * cache, a rebuild has nothing to ask the registry. One by tag revalidates its manifest (a HEAD).
 */
describe('rebuilds of a digest-pinned reference', () => {
  let registry: StartedRegistry;
  let proxy: StartedFaultProxy;
  let dir: string;
  let digest: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-pinned-'));
    registry = await startRegistry();
    const layer = await buildTar([
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'file', path: 'usr/bin/agent', content: 'agent', mode: 0o755 },
      { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
    ]);
    digest = await pushImage(
      registry,
      'lib/pinned',
      'v1',
      buildImage({ layers: [layer], runtime: { Cmd: ['/usr/bin/agent'] } }),
    );
    proxy = await startFaultProxy(registry.url);
  });

  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const build = (image: string, out: string) =>
    new InitramfsBuilder({
      image,
      compression: 'zstd',
      cacheDir: join(dir, 'cache'),
      insecureRegistries: [proxy.host],
    }).build(out);

  it('an unchanged rebuild sends no request at all, and writes the same bytes', async () => {
    const pinned = `${proxy.host}/lib/pinned@${digest}`;
    const first = join(dir, 'first.cpio.zst');
    await build(pinned, first);
    expect(proxy.requests.length).toBeGreaterThan(0);
    proxy.requests.length = 0;
    const again = join(dir, 'again.cpio.zst');
    const summary = await build(pinned, again);
    expect(proxy.requests).toEqual([]);
    expect(summary.manifestDigest).toBe(digest);
    expect(Buffer.compare(await readFile(again), await readFile(first))).toBe(0);
  });

  it('by tag, the same rebuild revalidates the manifest with one HEAD request', async () => {
    const tagged = `${proxy.host}/lib/pinned:v1`;
    await build(tagged, join(dir, 'tag-first.cpio.zst'));
    proxy.requests.length = 0;
    await build(tagged, join(dir, 'tag-again.cpio.zst'));
    expect(
      proxy.requests.map((r) => `${r.method} ${r.path.replace(/^.*\/manifests\//, 'manifests/')}`),
    ).toEqual(['HEAD manifests/v1']);
  });
});
