import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTar, type StartedRegistry, startRegistry, writeOciLayout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient } from '../src/client.ts';
import { openImage, parseImageSpec } from '../src/source.ts';
import { layerTar, run, tarContents } from '../src/sources/test-helpers.ts';
import type { Image } from '../src/types.ts';

describe('parseImageSpec', () => {
  it('splits transports the way skopeo does', () => {
    expect(parseImageSpec('oci:/tmp/layout')).toEqual({ transport: 'oci', path: '/tmp/layout' });
    expect(parseImageSpec('oci:/tmp/layout:v1')).toEqual({
      transport: 'oci',
      path: '/tmp/layout',
      tag: 'v1',
    });
    expect(parseImageSpec('oci:lay:docker.io/library/a:1')).toEqual({
      transport: 'oci',
      path: 'lay',
      tag: 'docker.io/library/a:1',
    });
    expect(parseImageSpec('docker-archive:a.tar:foo/bar:v1')).toEqual({
      transport: 'docker-archive',
      path: 'a.tar',
      tag: 'foo/bar:v1',
    });
    expect(parseImageSpec('docker-archive:a.tar:@1')).toEqual({
      transport: 'docker-archive',
      path: 'a.tar',
      tag: '@1',
    });
    expect(parseImageSpec('docker://alpine:3.20')).toEqual({
      transport: 'registry',
      reference: 'alpine:3.20',
    });
    expect(parseImageSpec('localhost:5000/a/b:c')).toEqual({
      transport: 'registry',
      reference: 'localhost:5000/a/b:c',
    });
    expect(parseImageSpec('alpine')).toEqual({ transport: 'registry', reference: 'alpine' });
  });

  it('refuses transports irb does not read, saying what to do', () => {
    expect(() => parseImageSpec('oci-archive:x.tar')).toThrow(/tar -xf/);
    expect(() => parseImageSpec('docker-daemon:alpine:latest')).toThrow(/docker save/);
    expect(() => parseImageSpec('oci:')).toThrow(/names no directory/);
  });
});

describe('openImage', () => {
  let root: string;
  let registry: StartedRegistry;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'irb-open-image-'));
    await writeOciLayout(join(root, 'layout'), [
      {
        tag: 'v1',
        images: [
          { layers: [await buildTar([{ type: 'file', path: 'which', content: 'amd64' }])] },
          {
            platform: { os: 'linux', architecture: 'arm64' },
            layers: [await buildTar([{ type: 'file', path: 'which', content: 'arm64' }])],
          },
        ],
      },
    ]);
    registry = await startRegistry();
  });

  afterAll(async () => {
    await registry?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const which = async (image: Image) =>
    (await tarContents(await layerTar((await image.layers())[0]!))).get('which');

  it('opens the same image from an OCI layout, a docker archive and a registry', async () => {
    const layout = `oci:${join(root, 'layout')}:v1`;
    const archive = join(root, 'arm.tar');
    await run('skopeo', [
      'copy',
      '--quiet',
      '--override-arch',
      'arm64',
      layout,
      `docker-archive:${archive}:t/arm:1`,
    ]);
    await run('skopeo', [
      'copy',
      '--quiet',
      '--all',
      '--dest-tls-verify=false',
      layout,
      `docker://${registry.host}/team/app:v1`,
    ]);

    expect(await which(await openImage(layout))).toBe('amd64');
    expect(await which(await openImage(layout, { platform: 'linux/arm64' }))).toBe('arm64');
    expect(await which(await openImage(`docker-archive:${archive}`, { platform: 'linux/arm64' }))).toBe(
      'arm64',
    );

    const client = createRegistryClient({ cache: false });
    try {
      const fromRegistry = await openImage(`${registry.host}/team/app:v1`, {
        client,
        platform: 'linux/arm64',
      });
      expect(await which(fromRegistry)).toBe('arm64');
      const fromLayout = await openImage(layout, { platform: 'linux/arm64' });
      // skopeo copy --all keeps manifests byte for byte, so the digests agree across sources.
      expect(await fromRegistry.digest()).toBe(await fromLayout.digest());
      expect(await which(await openImage(`docker://${registry.host}/team/app:v1`, { client }))).toBe('amd64');
    } finally {
      await client.close();
    }
  });
});
