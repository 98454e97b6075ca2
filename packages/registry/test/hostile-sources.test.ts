import { mkdtemp, open, readFile, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildTar,
  encodeTarHeader,
  fifo,
  layoutBlobPath,
  rewriteLayoutManifest,
  sparseFile,
  writeLayoutBlob,
  writeLayoutIndex,
  writeOciLayout,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDockerArchive } from '../src/sources/docker-archive.ts';
import { ociLayoutPlatforms, openOciLayout } from '../src/sources/oci-layout.ts';
import { readLayer } from '../src/sources/test-helpers.ts';

/*
 * Layouts and archives as an attacker or an unlucky user leaves them: FIFOs, a blob that is a
 * symlink to /dev/zero, sparse files of gigabytes, descriptors with impossible sizes. Each must
 * end at once in one IrbError, having read nothing it was not promised.
 */

const GiB = 2 ** 30;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'irb-hostile-sources-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A one-layer layout whose index.json points straight at its manifest. */
async function layout(name: string) {
  const dir = join(root, name);
  const tar = await buildTar([{ type: 'file', path: 'hello', content: 'hi\n' }]);
  const [entry] = await writeOciLayout(dir, [{ tag: 'v1', images: [{ layers: [tar] }] }]);
  return { dir, image: entry!.images[0]! };
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeDefined();
  return error as { code: string; message: string };
}

describe('oci: layouts that are not regular files, or lie about sizes', () => {
  it('an index.json that is a FIFO is refused at once, not waited on', async () => {
    const { dir } = await layout('fifo-index');
    await fifo(join(dir, 'index.json'));
    const error = await failure(openOciLayout(dir));
    expect(error.code).toBe('IRB_SOURCE_INVALID');
    expect(error.message).toMatch(/^OCI layout file .*\/index\.json is a FIFO, not a regular file/);
  });

  it('listing the platforms of a layout whose nested index is a FIFO refuses it at once', async () => {
    const dir = join(root, 'fifo-nested');
    const tar = await buildTar([{ type: 'file', path: 'hello', content: 'hi\n' }]);
    const [entry] = await writeOciLayout(dir, [
      {
        tag: 'v1',
        images: [{ layers: [tar] }, { platform: { os: 'linux', architecture: 'arm64' }, layers: [tar] }],
      },
    ]);
    await fifo(layoutBlobPath(dir, entry!.indexDigest!));
    const error = await failure(ociLayoutPlatforms(dir, { tag: 'v1' }));
    expect(error.message).toMatch(/^OCI layout blob .* is a FIFO, not a regular file/);
  });

  it('an oci-layout that is a FIFO is refused at once', async () => {
    const { dir } = await layout('fifo-marker');
    await fifo(join(dir, 'oci-layout'));
    expect((await failure(openOciLayout(dir))).message).toMatch(/^OCI layout file .*\/oci-layout is a FIFO/);
  });

  it('a manifest, config or layer blob that is a FIFO is refused at once', async () => {
    for (const which of ['manifestDigest', 'configDigest', 'layer'] as const) {
      const { dir, image } = await layout(`fifo-${which}`);
      const digest = which === 'layer' ? image.layerDigests[0]! : image[which];
      await fifo(layoutBlobPath(dir, digest));
      const opening = openOciLayout(dir);
      const error = await failure(
        which === 'layer' ? opening.then(async (i) => readLayer((await i.layers())[0]!)) : opening,
      );
      expect(error.code).toBe('IRB_SOURCE_INVALID');
      expect(error.message).toContain(
        `OCI layout blob ${layoutBlobPath(dir, digest)} is a FIFO, not a regular file`,
      );
    }
  });

  it('a layer blob that is a symlink to /dev/zero is refused, not read forever', async () => {
    const { dir, image } = await layout('dev-zero');
    const layer = layoutBlobPath(dir, image.layerDigests[0]!);
    await unlink(layer);
    await symlink('/dev/zero', layer);
    const error = await failure(openOciLayout(dir).then(async (i) => readLayer((await i.layers())[0]!)));
    expect(error.code).toBe('IRB_SOURCE_INVALID');
    expect(error.message).toMatch(/is a character device, not a regular file/);
  });

  it('a config whose descriptor claims 3 GiB is refused before it is read (the registry path caps it at 64 MiB)', async () => {
    const { dir, image } = await layout('huge-config');
    await sparseFile(layoutBlobPath(dir, image.configDigest), 3 * GiB);
    await rewriteLayoutManifest(dir, image.manifestDigest, (m) => {
      m.config.size = 3 * GiB;
    });
    const rss = process.memoryUsage().rss;
    const error = await failure(openOciLayout(dir).then((i) => i.config()));
    expect(error.code).toBe('IRB_MANIFEST_INVALID');
    expect(error.message).toMatch(
      /config \(sha256:[0-9a-f]{64}\) claims 3221225472 bytes, over the 64 MiB limit/,
    );
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 2 ** 20);
  });

  it('a blob file larger than its descriptor (a 3 GiB sparse config) is refused without reading it', async () => {
    const { dir, image } = await layout('lying-config');
    await sparseFile(layoutBlobPath(dir, image.configDigest), 3 * GiB);
    const rss = process.memoryUsage().rss;
    const error = await failure(openOciLayout(dir));
    expect(error.code).toBe('IRB_SIZE_MISMATCH');
    expect(error.message).toMatch(/holds 3221225472 bytes, its descriptor says \d+/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 2 ** 20);
  });

  it('descriptor sizes of -1, 1.5 or beyond 2^53 are refused when the manifest is parsed, not when read', async () => {
    for (const size of [-1, 1.5, 2 ** 53 + 2]) {
      const { dir, image } = await layout(`size-${size}`);
      await rewriteLayoutManifest(dir, image.manifestDigest, (m) => {
        m.layers[0]!.size = size;
      });
      const error = await failure(openOciLayout(dir));
      expect(error.code).toBe('IRB_MANIFEST_INVALID');
      expect(error.message).toMatch(/layer 1 has a malformed descriptor/);
    }
  });

  it('a diff_id that is not a digest is refused when the config is parsed', async () => {
    const { dir, image } = await layout('bad-diff-id');
    const config = JSON.parse(await readFile(layoutBlobPath(dir, image.configDigest), 'utf8'));
    config.rootfs.diff_ids = ['sha256:not-hex'];
    const blob = await writeLayoutBlob(dir, new TextEncoder().encode(JSON.stringify(config)));
    await rewriteLayoutManifest(dir, image.manifestDigest, (m) => {
      m.config = { ...m.config, ...blob };
    });
    const error = await failure(openOciLayout(dir));
    expect(error.code).toBe('IRB_MANIFEST_INVALID');
    expect(error.message).toMatch(/config rootfs\.diff_ids: invalid digest "sha256:not-hex"/);
  });

  it('an index.json entry with size -1 is refused when index.json is parsed', async () => {
    const { dir, image } = await layout('index-size');
    const manifest = await readFile(layoutBlobPath(dir, image.manifestDigest));
    await writeLayoutIndex(dir, [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: image.manifestDigest,
        size: manifest.byteLength,
      },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: image.manifestDigest, size: -1 },
    ]);
    const error = await failure(openOciLayout(dir));
    expect(error.code).toBe('IRB_MANIFEST_INVALID');
    expect(error.message).toMatch(/index entry 2 has a malformed descriptor/);
  });
});

describe('docker-archive: archives that are not regular files, or hold oversized documents', () => {
  it('an archive that is a FIFO or a symlink to /dev/zero is refused at once', async () => {
    const pipe = join(root, 'fifo.tar');
    await fifo(pipe);
    expect(await failure(openDockerArchive(pipe))).toMatchObject({
      code: 'IRB_SOURCE_INVALID',
      message: expect.stringMatching(/^docker archive .*fifo\.tar is a FIFO, not a regular file/),
    });
    const zero = join(root, 'zero.tar');
    await symlink('/dev/zero', zero);
    expect((await failure(openDockerArchive(zero))).message).toMatch(/is a character device/);
  });

  it('a 65 MiB config member is refused before it is read', async () => {
    const file = join(root, 'huge-config.tar');
    const head = await buildTar(
      [
        {
          type: 'file',
          path: 'manifest.json',
          content: JSON.stringify([{ Config: 'c.json', RepoTags: [], Layers: [] }]),
        },
      ],
      { end: false },
    );
    const size = 65 * 2 ** 20;
    const header = encodeTarHeader({
      name: new TextEncoder().encode('c.json'),
      mode: 0o644,
      uid: 0,
      gid: 0,
      size,
      mtime: 0,
      typeflag: '0',
    });
    // The member's data is a hole: the archive takes a few KiB of disk.
    const out = await open(file, 'w');
    await out.write(head, 0, head.byteLength, 0);
    await out.write(header, 0, header.byteLength, head.byteLength);
    await out.write(new Uint8Array(1024), 0, 1024, head.byteLength + 512 + size);
    await out.close();
    const error = await failure(openDockerArchive(file));
    expect(error.code).toBe('IRB_MANIFEST_INVALID');
    expect(error.message).toMatch(/config c\.json in .* is 68157440 bytes, over the 64 MiB limit/);
  });
});
