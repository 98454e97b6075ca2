import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildTar, writeOciLayout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDockerArchive } from '../src/sources/docker-archive.ts';
import { indexTar } from '../src/sources/tar-index.ts';
import { layerTar, readLayer, run, sha256, tarContents } from '../src/sources/test-helpers.ts';

let root: string;
let layoutDir: string;
let layoutDiffIds: string[];
/** A docker-archive written by skopeo (legacy docker save layout, symlinked layer.tar files). */
let skopeoArchive: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'irb-docker-archive-'));
  layoutDir = join(root, 'layout');
  const written = await writeOciLayout(layoutDir, [
    {
      tag: 'v1',
      images: [
        {
          layers: [
            await buildTar([
              { type: 'directory', path: 'etc' },
              { type: 'file', path: 'etc/os-release', content: 'ID=irb\n' },
            ]),
            await buildTar([{ type: 'file', path: 'etc/motd', content: 'second layer\n' }]),
          ],
        },
      ],
    },
    {
      tag: 'arm',
      images: [
        {
          platform: { os: 'linux', architecture: 'arm64' },
          layers: [await buildTar([{ type: 'file', path: 'a', content: 'b' }])],
        },
      ],
    },
  ]);
  layoutDiffIds = written[0]!.images[0]!.diffIds;
  skopeoArchive = join(root, 'skopeo.tar');
  await run('skopeo', [
    'copy',
    '--quiet',
    `oci:${layoutDir}:v1`,
    `docker-archive:${skopeoArchive}:example/app:v1`,
  ]);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('openDockerArchive on skopeo output (legacy docker save layout)', () => {
  it('streams each layer from its byte range, verified against the config diff_ids', async () => {
    const image = await openDockerArchive(skopeoArchive);
    const layers = await image.layers();
    expect(layers.map((l) => l.diffId)).toEqual(layoutDiffIds);
    // docker save stores uncompressed layers, so the blob digest is the diff_id.
    expect(layers.map((l) => l.digest)).toEqual(layoutDiffIds);
    expect(layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.docker.image.rootfs.diff.tar',
      'application/vnd.docker.image.rootfs.diff.tar',
    ]);
    const first = await tarContents(await readLayer(layers[0]!));
    expect(first.get('etc/os-release')).toBe('ID=irb\n');
    const second = await tarContents(await layerTar(layers[1]!));
    expect(second.get('etc/motd')).toBe('second layer\n');
    expect(sha256(await readLayer(layers[1]!))).toBe(layers[1]!.diffId);

    const manifest = await image.manifest();
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(manifest.layers.map((l) => l.size)).toEqual(
      await Promise.all(layers.map(async (l) => (await readLayer(l)).byteLength)),
    );
    expect(await image.digest()).toBe(sha256(new TextEncoder().encode(JSON.stringify(manifest))));
    expect((await image.config()).rootfs.diff_ids).toEqual(layoutDiffIds);
  });

  it('indexes member offsets that match what GNU tar extracts', async () => {
    const index = await indexTar(skopeoArchive);
    const manifestJson = JSON.parse(
      (await run('tar', ['-xOf', skopeoArchive, 'manifest.json'], { encoding: 'utf8' })).stdout,
    );
    const m = index.resolve('manifest.json')!;
    expect(JSON.parse(Buffer.from(await index.read(m)).toString('utf8'))).toEqual(manifestJson);
    // skopeo writes <id>/layer.tar as symlinks to <hex>.tar: they resolve to the real member.
    const links = [...index.members.values()].filter((x) => x.type === 'symlink');
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) expect(index.resolve(link.name)?.type).toBe('file');
  });

  it('selects by RepoTags written either way, and lists them when the tag is wrong', async () => {
    for (const tag of ['example/app:v1', 'docker.io/example/app:v1', '@0']) {
      await expect(openDockerArchive(skopeoArchive, { tag })).resolves.toBeDefined();
    }
    const error = await openDockerArchive(skopeoArchive, { tag: 'example/app:v2' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_IMAGE_NOT_FOUND' });
    expect((error as Error).message).toContain('docker.io/example/app:v1');
    await expect(openDockerArchive(skopeoArchive, { tag: '@1' })).rejects.toMatchObject({
      code: 'IRB_IMAGE_NOT_FOUND',
    });
  });

  it('refuses an image for another platform', async () => {
    const file = join(root, 'arm.tar');
    await run('skopeo', ['copy', '--quiet', `oci:${layoutDir}:arm`, `docker-archive:${file}:example/arm:1`]);
    await expect(openDockerArchive(file)).rejects.toMatchObject({ code: 'IRB_PLATFORM_NOT_FOUND' });
    const image = await openDockerArchive(file, { platform: 'linux/arm64' });
    expect((await image.config()).architecture).toBe('arm64');
  });

  it('fails a layer stream whose bytes were altered inside the archive', async () => {
    const file = join(root, 'corrupt.tar');
    await writeFile(file, await readFile(skopeoArchive));
    const index = await indexTar(file);
    const image = await openDockerArchive(file);
    const layer = (await image.layers())[0]!;
    const entries = JSON.parse(
      Buffer.from(await index.read(index.resolve('manifest.json')!)).toString('utf8'),
    );
    const member = index.resolve(entries[0].Layers[0])!;
    expect(member.size).toBe(layer.size);
    // Flip a byte inside the first layer's byte range: same size, different content.
    const handle = await open(file, 'r+');
    const at = member.offset + 600;
    const byte = new Uint8Array(1);
    await handle.read(byte, 0, 1, at);
    byte[0]! ^= 0x20;
    await handle.write(byte, 0, 1, at);
    await handle.close();
    await expect(readLayer(layer)).rejects.toMatchObject({ code: 'IRB_DIGEST_MISMATCH' });
  });

  it('explains compressed, missing and non-docker archives', async () => {
    const gz = join(root, 'archive.tar.gz');
    await writeFile(gz, gzipSync(await readFile(skopeoArchive)));
    const error = await openDockerArchive(gz).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IRB_SOURCE_INVALID' });
    expect((error as Error).message).toContain('gunzip');
    await expect(openDockerArchive(join(root, 'nope.tar'))).rejects.toMatchObject({
      code: 'IRB_SOURCE_NOT_FOUND',
    });
    const plain = join(root, 'plain.tar');
    await writeFile(plain, await buildTar([{ type: 'file', path: 'hello', content: 'x' }]));
    await expect(openDockerArchive(plain)).rejects.toMatchObject({ code: 'IRB_SOURCE_INVALID' });
    const truncated = join(root, 'truncated.tar');
    const bytes = await readFile(skopeoArchive);
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2) + 100));
    await expect(openDockerArchive(truncated)).rejects.toMatchObject({ code: 'IRB_SOURCE_INVALID' });
  });
});

describe('openDockerArchive on the docker 25+ layout (OCI layout inside docker save)', () => {
  it('keeps the real manifest and its digest, and picks among several images', async () => {
    const dir = join(root, 'docker25');
    const written = await writeOciLayout(dir, [
      {
        tag: 'one',
        images: [
          {
            compression: 'none',
            layers: [await buildTar([{ type: 'file', path: 'which', content: 'one' }])],
          },
        ],
      },
      {
        tag: 'two',
        images: [
          {
            compression: 'gzip',
            layers: [
              await buildTar([{ type: 'file', path: 'which', content: 'two' }]),
              await buildTar([{ type: 'file', path: 'more', content: '2' }]),
            ],
          },
        ],
      },
    ]);
    const blob = (digest: string) => `blobs/sha256/${digest.slice(7)}`;
    const manifestJson = written.map((w, i) => ({
      Config: blob(w.images[0]!.configDigest),
      RepoTags: [i === 0 ? 'app:one' : 'registry.example:5000/team/app:two'],
      Layers: w.images[0]!.layerDigests.map(blob),
    }));
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifestJson));
    const file = join(root, 'docker25.tar');
    await run('tar', ['-cf', file, '-C', dir, 'blobs', 'oci-layout', 'index.json', 'manifest.json']);

    await expect(openDockerArchive(file)).rejects.toMatchObject({ code: 'IRB_TAG_REQUIRED' });

    const one = await openDockerArchive(file, { tag: 'app:one' });
    expect(await one.digest()).toBe(written[0]!.images[0]!.manifestDigest);
    expect((await one.manifest()).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');

    const two = await openDockerArchive(file, { tag: 'registry.example:5000/team/app:two' });
    expect(await two.digest()).toBe(written[1]!.images[0]!.manifestDigest);
    const layers = await two.layers();
    expect(layers.map((l) => l.digest)).toEqual(written[1]!.images[0]!.layerDigests);
    expect(layers.map((l) => l.mediaType)).toEqual([
      'application/vnd.oci.image.layer.v1.tar+gzip',
      'application/vnd.oci.image.layer.v1.tar+gzip',
    ]);
    expect((await tarContents(await layerTar(layers[0]!))).get('which')).toBe('two');
    expect(sha256(await layerTar(layers[1]!))).toBe(layers[1]!.diffId);
  });

  it('computes digests for compressed legacy layers that carry no digest in their name', async () => {
    const dir = join(root, 'legacy-gz');
    const written = await writeOciLayout(dir, [
      { tag: 'x', images: [{ layers: [await buildTar([{ type: 'file', path: 'z', content: 'zz' }])] }] },
    ]);
    const image = written[0]!.images[0]!;
    await run('mkdir', ['-p', join(dir, 'abc')]);
    await run('cp', [join(dir, 'blobs/sha256', image.layerDigests[0]!.slice(7)), join(dir, 'abc/layer.tar')]);
    await run('cp', [
      join(dir, 'blobs/sha256', image.configDigest.slice(7)),
      join(dir, `${image.configDigest.slice(7)}.json`),
    ]);
    await writeFile(
      join(dir, 'manifest.json'),
      JSON.stringify([
        { Config: `${image.configDigest.slice(7)}.json`, RepoTags: ['x:1'], Layers: ['abc/layer.tar'] },
      ]),
    );
    const file = join(root, 'legacy-gz.tar');
    await run('tar', ['-cf', file, '-C', dir, 'manifest.json', `${image.configDigest.slice(7)}.json`, 'abc']);
    const layer = (await (await openDockerArchive(file)).layers())[0]!;
    expect(layer.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
    expect(layer.digest).toBe(image.layerDigests[0]);
    expect(layer.diffId).toBe(image.diffIds[0]);
  });
});
