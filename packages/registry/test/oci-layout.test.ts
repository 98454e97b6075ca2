import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTar, writeLayoutBlob, writeOciLayout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ociLayoutPlatforms, openOciLayout } from '../src/sources/oci-layout.ts';
import { layerTar, readLayer, run, sha256, tarContents } from '../src/sources/test-helpers.ts';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'irb-oci-layout-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const fileTar = (path: string, content: string) => buildTar([{ type: 'file', path, content }]);

async function layout(name: string, entries: Parameters<typeof writeOciLayout>[1]) {
  const dir = join(root, name);
  const written = await writeOciLayout(dir, entries);
  return { dir, written };
}

describe('openOciLayout with a layout built by umoci', () => {
  it('opens the tagged image and streams its verified layers', async () => {
    const dir = join(root, 'umoci');
    const bundle = join(root, 'umoci-bundle');
    await run('umoci', ['init', '--layout', dir]);
    await run('umoci', ['new', '--image', `${dir}:v1`]);
    // unpack + repack, not `umoci insert`: umoci 0.4.7's insert writes tars cut off after the last
    // file's data (no padding, no end blocks), which GNU tar itself rejects.
    await run('umoci', ['unpack', '--rootless', '--image', `${dir}:v1`, bundle]);
    await mkdir(join(bundle, 'rootfs', 'etc'), { recursive: true });
    await writeFile(join(bundle, 'rootfs', 'etc', 'greeting'), 'hello from umoci\n');
    await run('umoci', ['repack', '--image', `${dir}:v1`, bundle]);
    await run('umoci', ['new', '--image', `${dir}:empty`]);

    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
    const v1 = index.manifests.find(
      (d: { annotations: Record<string, string> }) =>
        d.annotations['org.opencontainers.image.ref.name'] === 'v1',
    );

    const image = await openOciLayout(dir, { tag: 'v1' });
    expect(await image.digest()).toBe(v1.digest);
    const layers = await image.layers();
    expect(layers).toHaveLength(1);
    const layer = layers[0]!;
    expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    const tar = await layerTar(layer);
    expect(sha256(tar)).toBe(layer.diffId);
    expect((await tarContents(tar)).get('etc/greeting')).toBe('hello from umoci\n');
    // Every open() is a fresh stream.
    expect(sha256(await readLayer(layer))).toBe(layer.digest);
    expect(sha256(await readLayer(layer))).toBe(layer.digest);

    const empty = await openOciLayout(dir, { tag: 'empty' });
    expect(await empty.layers()).toEqual([]);
  });
});

describe('openOciLayout selection', () => {
  it('picks the platform from a nested index', async () => {
    const { dir, written } = await layout('multi', [
      {
        tag: 'latest',
        images: [
          { platform: { os: 'linux', architecture: 'amd64' }, layers: [await fileTar('arch', 'amd64')] },
          {
            platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
            layers: [await fileTar('arch', 'arm64')],
          },
          {
            platform: { os: 'linux', architecture: 'arm', variant: 'v7' },
            layers: [await fileTar('arch', 'armv7')],
            compression: 'zstd',
          },
        ],
      },
    ]);
    const archOf = async (platform?: string) => {
      const image = await openOciLayout(dir, { tag: 'latest', ...(platform && { platform }) });
      const tar = await layerTar((await image.layers())[0]!);
      return { arch: (await tarContents(tar)).get('arch'), digest: await image.digest() };
    };
    expect(await archOf()).toEqual({ arch: 'amd64', digest: written[0]!.images[0]!.manifestDigest });
    expect(await archOf('linux/arm64')).toEqual({
      arch: 'arm64',
      digest: written[0]!.images[1]!.manifestDigest,
    });
    expect((await archOf('linux/arm/v7')).arch).toBe('armv7');
    // Untagged open works too: the layout holds one entry.
    expect((await (await openOciLayout(dir, { platform: 'linux/arm64/v8' })).config()).architecture).toBe(
      'arm64',
    );

    const error = await openOciLayout(dir, { platform: 'linux/riscv64' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_PLATFORM_NOT_FOUND' });
    expect((error as Error).message).toContain('linux/amd64, linux/arm64, linux/arm/v7');

    const listed = await ociLayoutPlatforms(dir, { tag: 'latest' });
    expect(listed.indexDigest).toBe(written[0]!.indexDigest);
    expect(listed.platforms.map((p) => [p.platform.architecture, p.digest])).toEqual(
      written[0]!.images.map((i, n) => [['amd64', 'arm64', 'arm'][n], i.manifestDigest]),
    );
  });

  it('picks the platform among same-tag entries listed directly in index.json', async () => {
    const { dir } = await layout('flat', [
      {
        tag: 'v2',
        flat: true,
        images: [
          { platform: { os: 'linux', architecture: 'arm64' }, layers: [await fileTar('a', 'arm64')] },
          { platform: { os: 'linux', architecture: 'amd64' }, layers: [await fileTar('a', 'amd64')] },
        ],
      },
    ]);
    const image = await openOciLayout(dir, { tag: 'v2', platform: 'linux/arm64' });
    expect((await image.config()).architecture).toBe('arm64');
    expect((await (await openOciLayout(dir)).config()).architecture).toBe('amd64');
    const listed = await ociLayoutPlatforms(dir, { tag: 'v2' });
    expect(listed.indexDigest).toBeUndefined();
    expect(listed.platforms.map((p) => p.platform.architecture)).toEqual(['arm64', 'amd64']);
  });

  it('lists the tags it has when the tag is wrong or missing', async () => {
    const { dir } = await layout('tags', [
      { tag: '1.0', images: [{ layers: [await fileTar('v', '1')] }] },
      { tag: '2.0', images: [{ layers: [await fileTar('v', '2')] }] },
    ]);
    const wrong = await openOciLayout(dir, { tag: '3.0' }).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'IRB_IMAGE_NOT_FOUND' });
    expect((wrong as Error).message).toContain('"3.0"');
    expect((wrong as Error).message).toContain('1.0, 2.0');
    const missing = await openOciLayout(dir).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'IRB_TAG_REQUIRED' });
    expect((missing as Error).message).toContain(`oci:${dir}:TAG`);
    const two = await openOciLayout(dir, { tag: '2.0' });
    expect((await tarContents(await layerTar((await two.layers())[0]!))).get('v')).toBe('2');
  });

  it('matches full references written as ref names (buildkit, containerd)', async () => {
    const { dir } = await layout('fullref', [
      { tag: 'docker.io/library/app:1.2', images: [{ layers: [await fileTar('x', 'y')] }] },
    ]);
    for (const tag of ['docker.io/library/app:1.2', 'app:1.2', 'library/app:1.2']) {
      await expect(openOciLayout(dir, { tag })).resolves.toBeDefined();
    }
    await expect(openOciLayout(dir, { tag: 'app:1.3' })).rejects.toMatchObject({
      code: 'IRB_IMAGE_NOT_FOUND',
    });
  });

  it('refuses a single-platform image built for another platform', async () => {
    const { dir } = await layout('arm-only', [
      {
        tag: 't',
        images: [{ platform: { os: 'linux', architecture: 'arm64' }, layers: [await fileTar('a', 'b')] }],
      },
    ]);
    const error = await openOciLayout(dir, { tag: 't' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_PLATFORM_NOT_FOUND' });
    expect((error as Error).message).toContain('linux/arm64');
    await expect(openOciLayout(dir, { tag: 't', platform: 'linux/arm64' })).resolves.toBeDefined();
  });

  it('reads Docker media types (manifest list, docker manifests) in a layout', async () => {
    const { dir } = await layout('docker-types', [
      {
        tag: 'd',
        images: [
          { docker: true, layers: [await fileTar('a', 'amd')] },
          {
            docker: true,
            platform: { os: 'linux', architecture: 'arm64' },
            layers: [await fileTar('a', 'arm')],
          },
        ],
      },
    ]);
    const image = await openOciLayout(dir, { tag: 'd', platform: 'linux/arm64' });
    expect((await image.manifest()).mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect((await tarContents(await layerTar((await image.layers())[0]!))).get('a')).toBe('arm');
  });
});

describe('openOciLayout integrity', () => {
  it('fails the layer stream with a digest error when a blob was altered', async () => {
    const { dir, written } = await layout('corrupt', [
      { tag: 't', images: [{ layers: [await fileTar('f', 'data')] }] },
    ]);
    const layerDigest = written[0]!.images[0]!.layerDigests[0]!;
    const path = join(dir, 'blobs', 'sha256', layerDigest.slice(7));
    const bytes = await readFile(path);
    bytes[bytes.length - 9]! ^= 0xff; // inside the gzip trailer's CRC: same size, different digest
    await writeFile(path, bytes);
    const image = await openOciLayout(dir, { tag: 't' });
    const layer = (await image.layers())[0]!;
    await expect(readLayer(layer)).rejects.toMatchObject({ code: 'IRB_DIGEST_MISMATCH' });
  });

  it('refuses an altered manifest or config before handing out the image', async () => {
    const { dir, written } = await layout('corrupt-config', [
      { tag: 't', images: [{ layers: [await fileTar('f', 'x')] }] },
    ]);
    const configPath = join(dir, 'blobs', 'sha256', written[0]!.images[0]!.configDigest.slice(7));
    const config = await readFile(configPath, 'utf8');
    await writeFile(configPath, config.replace('"amd64"', '"AMD64"'));
    await expect(openOciLayout(dir, { tag: 't' })).rejects.toMatchObject({ code: 'IRB_DIGEST_MISMATCH' });

    const manifestPath = join(dir, 'blobs', 'sha256', written[0]!.images[0]!.manifestDigest.slice(7));
    await writeFile(manifestPath, `${await readFile(manifestPath, 'utf8')} `);
    await expect(openOciLayout(dir, { tag: 't' })).rejects.toMatchObject({ code: 'IRB_SIZE_MISMATCH' });
  });

  it('names a missing blob', async () => {
    const { dir, written } = await layout('missing', [
      { tag: 't', images: [{ layers: [await fileTar('f', 'x')] }] },
    ]);
    const layerDigest = written[0]!.images[0]!.layerDigests[0]!;
    await rm(join(dir, 'blobs', 'sha256', layerDigest.slice(7)));
    const layer = (await (await openOciLayout(dir, { tag: 't' })).layers())[0]!;
    const error = await readLayer(layer).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_BLOB_NOT_FOUND' });
    expect((error as Error).message).toContain(layerDigest);
  });

  it('refuses schema 1 manifests, non-layouts and missing directories clearly', async () => {
    const dir = join(root, 'schema1');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const blob = await writeLayoutBlob(
      dir,
      new TextEncoder().encode(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] })),
    );
    await writeFile(
      join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws', ...blob }],
      }),
    );
    await expect(openOciLayout(dir)).rejects.toMatchObject({ code: 'IRB_MANIFEST_UNSUPPORTED' });

    const plain = join(root, 'plain-dir');
    await mkdir(plain);
    await expect(openOciLayout(plain)).rejects.toMatchObject({ code: 'IRB_SOURCE_INVALID' });
    await expect(openOciLayout(join(root, 'nope'))).rejects.toMatchObject({ code: 'IRB_SOURCE_NOT_FOUND' });
  });

  it('stops when the signal aborts, before opening and while streaming', async () => {
    const big = await buildTar([{ type: 'file', path: 'big', content: 'z'.repeat(4 << 20) }]);
    const { dir } = await layout('abort', [{ tag: 't', images: [{ compression: 'none', layers: [big] }] }]);
    await expect(openOciLayout(dir, { tag: 't', signal: AbortSignal.abort() })).rejects.toThrow();
    const layer = (await (await openOciLayout(dir, { tag: 't' })).layers())[0]!;
    const controller = new AbortController();
    let chunks = 0;
    const reading = (async () => {
      for await (const _chunk of layer.open({ signal: controller.signal })) {
        chunks++;
        controller.abort();
      }
    })();
    await expect(reading).rejects.toMatchObject({ name: 'AbortError' });
    expect(chunks).toBe(1);
  });

  it('follows a symlinked layout directory', async () => {
    const { dir } = await layout('real', [{ tag: 't', images: [{ layers: [await fileTar('f', 'x')] }] }]);
    await symlink(dir, join(root, 'link'));
    await expect(openOciLayout(join(root, 'link'), { tag: 't' })).resolves.toBeDefined();
  });
});
