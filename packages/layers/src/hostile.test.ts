import { buildTar, encodeTarHeader, type TarSpec, whiteout } from '@irb/test-utils';
import { describe, expect, test } from 'vitest';
import { byPath, emit, f, layerOf, MEDIA } from '../test/helpers.ts';
import { type IndexLayersOptions, indexLayers, type LayerSource } from './index.ts';

const enc = new TextEncoder();

/** A raw header member (header block + data + padding). */
function rawMember(fields: Parameters<typeof encodeTarHeader>[0], data = new Uint8Array(0)): TarSpec {
  const pad = (512 - (data.byteLength % 512)) % 512;
  const bytes = new Uint8Array(512 + data.byteLength + pad);
  bytes.set(encodeTarHeader(fields), 0);
  bytes.set(data, 512);
  return { type: 'raw', bytes };
}

const header = (name: string, extra: Partial<Parameters<typeof encodeTarHeader>[0]> = {}) => ({
  name: enc.encode(name),
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtime: 0,
  typeflag: '0',
  ...extra,
});

async function indexBlobs(
  blobs: Uint8Array[],
  mediaType: string = MEDIA.tar,
  options: IndexLayersOptions = {},
) {
  return indexLayers(
    blobs.map((blob) => layerOf(blob, mediaType)),
    options,
  );
}

async function indexSpecs(...layers: TarSpec[][]) {
  return indexBlobs(await Promise.all(layers.map((specs) => buildTar(specs))));
}

describe('broken and hostile layers fail with a clear IrbError (or a clamped, safe result)', () => {
  test('corrupt gzip', async () => {
    const blob = await buildTar([f('a', 'x'.repeat(10_000))], { compression: 'gzip' });
    const bad = blob.slice();
    for (let i = 20; i < 60; i++) bad[i] = (bad[i] ?? 0) ^ 0x5a;
    await expect(indexBlobs([bad], MEDIA.gzip)).rejects.toMatchObject({
      code: expect.stringMatching(/^IRB_GZIP_/),
    });
  });

  test('truncated gzip', async () => {
    const blob = await buildTar([f('a', 'random'.repeat(5000))], { compression: 'gzip' });
    await expect(indexBlobs([blob.subarray(0, blob.byteLength >> 1)], MEDIA.gzip)).rejects.toMatchObject({
      code: expect.stringMatching(/^IRB_GZIP_/),
    });
  });

  test('corrupt zstd', async () => {
    const blob = await buildTar([f('a', 'x'.repeat(10_000))], { compression: 'zstd' });
    const bad = blob.slice();
    for (let i = 12; i < bad.byteLength - 4; i++) bad[i] = (bad[i] ?? 0) ^ 0xa5;
    await expect(indexBlobs([bad], MEDIA.zstd)).rejects.toMatchObject({
      code: expect.stringMatching(/^IRB_ZSTD_/),
    });
  });

  // Found by the fuzz harness: a name with a newline split the error message in two.
  test('a name with control characters stays on the one line of the error', async () => {
    const failure = await indexSpecs([{ type: 'link', path: '\nx/\x1b[0', target: 'missing' }]).catch(
      (e) => e,
    );
    expect(failure).toMatchObject({ code: 'IRB_LAYER_LINK_INVALID' });
    expect(failure.message).toContain('/\\nx/\\x1b[0');
    expect(failure.message).not.toMatch(/[\n\x1b]/);
  });

  test('a tar truncated inside a body', async () => {
    const blob = await buildTar([f('a', 'x'.repeat(4000))], { end: false });
    await expect(indexBlobs([blob.subarray(0, 1500)])).rejects.toMatchObject({ code: 'IRB_LAYER_TRUNCATED' });
  });

  test('a tar truncated inside a header', async () => {
    const blob = await buildTar([f('a', 'x'), f('b', 'y')], { end: false });
    await expect(indexBlobs([blob.subarray(0, 1024 + 200)])).rejects.toMatchObject({
      code: 'IRB_LAYER_TRUNCATED',
    });
  });

  test('a tar that stops at a member boundary without end blocks is accepted (as Go reads it)', async () => {
    const blob = await buildTar([f('a', 'x')], { end: false });
    const output = byPath(await emit(await indexBlobs([blob])));
    expect(output.get('a')?.body?.toString()).toBe('x');
  });

  test('an absurd size field (1 TiB, base-256) is a truncation, not a hang', async () => {
    const blob = await buildTar([rawMember(header('huge', { size: 2 ** 40 }), enc.encode('tiny'))]);
    await expect(indexBlobs([blob], MEDIA.tar, { maxUnpackedBytes: Infinity })).rejects.toMatchObject({
      code: 'IRB_LAYER_TRUNCATED',
    });
    // Under the default limit, the claim alone is too much to unpack: refused as it is applied.
    await expect(indexBlobs([blob])).rejects.toMatchObject({ code: 'IRB_LAYER_UNPACKED_TOO_LARGE' });
  });

  test('a PAX size beyond 2^53 is refused', async () => {
    const blob = await buildTar([f('a', 'x', { pax: { size: '99999999999999999999999' } })]);
    await expect(indexBlobs([blob])).rejects.toMatchObject({ code: 'IRB_LAYER_CORRUPT' });
  });

  test('a 1 GiB PAX header is refused before it is read', async () => {
    const blob = await buildTar([rawMember(header('PaxHeader', { typeflag: 'x', size: 2 ** 30 }))], {
      end: false,
    });
    await expect(indexBlobs([blob])).rejects.toMatchObject({
      code: 'IRB_LAYER_CORRUPT',
      message: expect.stringContaining('absurdly large'),
    });
  });

  test('a negative size (base-256) is refused', async () => {
    const block = encodeTarHeader(header('neg', { size: -5 }));
    await expect(indexBlobs([await buildTar([{ type: 'raw', bytes: block }])])).rejects.toMatchObject({
      code: 'IRB_LAYER_CORRUPT',
    });
  });

  test('a NUL inside a PAX path or linkpath is refused, naming the layer and offset, not cut', async () => {
    // Cut at the NUL, the two names below would be one file: etc/passwd.
    const nul = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
    for (const [key, spec] of [
      ['path', f('x', 'evil', { pax: { path: nul('etc/passwd\0.bak') } })],
      ['linkpath', { type: 'symlink', path: 'l', target: 't', pax: { linkpath: nul('etc/passwd\0x') } }],
    ] as const) {
      const blob = await buildTar([f('etc/passwd', 'root'), spec as TarSpec]);
      await expect(indexBlobs([blob])).rejects.toMatchObject({
        code: 'IRB_LAYER_CORRUPT',
        message: expect.stringMatching(
          new RegExp(
            `^layer 1/1 \\(sha256:[0-9a-f]{12}\\): PAX ${key} contains a NUL byte, which no name can hold \\(tar offset 1024\\)`,
          ),
        ),
      });
    }
  });

  test('a bad header checksum', async () => {
    const blob = await buildTar([rawMember(header('a', { checksum: 1234 }))]);
    await expect(indexBlobs([blob])).rejects.toMatchObject({
      code: 'IRB_LAYER_CORRUPT',
      message: expect.stringContaining('checksum'),
    });
  });

  test('bytes that are not a tar at all', async () => {
    const garbage = new Uint8Array(4096).map((_, i) => (i * 7919) % 251);
    await expect(indexBlobs([garbage])).rejects.toMatchObject({ code: 'IRB_LAYER_CORRUPT' });
  });

  test('an unknown member type', async () => {
    const blob = await buildTar([rawMember(header('weird', { typeflag: 'Z' }))]);
    await expect(indexBlobs([blob])).rejects.toMatchObject({ code: 'IRB_LAYER_UNSUPPORTED_ENTRY' });
  });

  test('traversal in names is clamped inside the root and counted', async () => {
    const rootfs = await indexSpecs([
      f('../../../../etc/passwd', 'clamped'),
      f('/../x', 'x'),
      { type: 'symlink', path: '../../link', target: '../../../../etc/shadow' },
    ]);
    const output = byPath(await emit(rootfs));
    expect(output.get('etc/passwd')?.body?.toString()).toBe('clamped');
    expect(output.get('x')?.body?.toString()).toBe('x');
    // A symlink target is data: kept as written, never resolved at build time.
    expect(output.get('link')?.entry).toMatchObject({ type: 'symlink', target: '../../../../etc/shadow' });
    expect(rootfs.stats.clampedPaths).toBe(3);
  });

  test('a hard link pointing outside the root is resolved inside it', async () => {
    const rootfs = await indexSpecs([
      f('etc/shadow', 'secret'),
      { type: 'link', path: 'copy', target: '../../../etc/shadow' },
    ]);
    const output = byPath(await emit(rootfs));
    expect(output.get('copy')?.body?.toString()).toBe('secret');
    expect(rootfs.lookup('/copy')?.nlink).toBe(2);
    expect(rootfs.stats.clampedPaths).toBe(1);
  });

  test('a hard link to a missing name or to a directory', async () => {
    await expect(indexSpecs([{ type: 'link', path: 'l', target: 'nowhere' }])).rejects.toMatchObject({
      code: 'IRB_LAYER_LINK_INVALID',
    });
    await expect(
      indexSpecs([
        { type: 'directory', path: 'd' },
        { type: 'link', path: 'l', target: 'd' },
      ]),
    ).rejects.toMatchObject({
      code: 'IRB_LAYER_LINK_INVALID',
      message: expect.stringContaining('directory'),
    });
  });

  test('whiteouts of .. and . are refused', async () => {
    for (const marker of ['a/.wh...', 'a/.wh..']) {
      await expect(indexSpecs([f('a/x', 'x')], [f(marker)])).rejects.toMatchObject({
        code: 'IRB_LAYER_WHITEOUT_INVALID',
      });
    }
  });

  test('an entry below a whiteout marker is refused', async () => {
    await expect(indexSpecs([f('.wh.dir/child', 'x')])).rejects.toMatchObject({
      code: 'IRB_LAYER_WHITEOUT_INVALID',
    });
  });

  test('a whiteout of a name that does not exist, or below a file, changes nothing', async () => {
    const rootfs = await indexSpecs([f('file', 'x')], [whiteout('missing'), whiteout('file/below')]);
    expect(
      byPath(await emit(rootfs))
        .get('file')
        ?.body?.toString(),
    ).toBe('x');
  });

  test('a symlink loop in a parent path', async () => {
    await expect(
      indexSpecs(
        [
          { type: 'symlink', path: 'a', target: 'b' },
          { type: 'symlink', path: 'b', target: 'a' },
        ],
        [f('a/x', 'x')],
      ),
    ).rejects.toMatchObject({ code: 'IRB_LAYER_SYMLINK_LOOP' });
  });

  test('a member that would turn the root into a file', async () => {
    await expect(indexSpecs([f('.', 'x')])).rejects.toMatchObject({ code: 'IRB_LAYER_ROOT_INVALID' });
    await expect(indexSpecs([{ type: 'symlink', path: '../', target: '/tmp' }])).rejects.toMatchObject({
      code: 'IRB_LAYER_ROOT_INVALID',
    });
  });

  test('a member below a file is refused (as container runtimes do)', async () => {
    await expect(indexSpecs([f('a', 'file')], [f('a/b', 'x')])).rejects.toMatchObject({
      code: 'IRB_LAYER_NOT_A_DIRECTORY',
    });
  });

  test('a file of 4 GiB or more is refused naming the file; the same file whited out later is fine', async () => {
    const huge: TarSpec = {
      type: 'sparse',
      path: 'var/lib/huge.img',
      size: 5 * 2 ** 30,
      chunks: [{ offset: 0, data: new Uint8Array(512).fill(1) }],
    };
    await expect(indexSpecs([huge])).rejects.toMatchObject({
      code: 'IRB_LAYER_FILE_TOO_LARGE',
      message: expect.stringContaining('/var/lib/huge.img'),
    });
    const rootfs = await indexSpecs([huge], [whiteout('var/lib/huge.img')]);
    expect(rootfs.lookup('/var/lib/huge.img')).toBeUndefined();
  });

  test('4 GiB - 1 is the largest file accepted', async () => {
    const sparse = (size: number): TarSpec => ({
      type: 'sparse',
      path: 'edge',
      size,
      chunks: [{ offset: 0, data: new Uint8Array(512).fill(1) }],
    });
    expect((await indexSpecs([sparse(2 ** 32 - 1)])).lookup('/edge')?.size).toBe(2 ** 32 - 1);
    await expect(indexSpecs([sparse(2 ** 32)])).rejects.toMatchObject({ code: 'IRB_LAYER_FILE_TOO_LARGE' });
  });

  test('the deepest tree the kernel accepts (2 000+ levels) neither overflows nor stalls', async () => {
    const deep = Array.from({ length: 2040 }, () => 'a').join('/');
    const rootfs = await indexSpecs([f(`${deep}/leaf`, 'x')]);
    const emitted = await emit(rootfs);
    expect(emitted).toHaveLength(2042);
    expect(emitted[emitted.length - 1]?.body?.toString()).toBe('x');
  });

  test('names and symlink targets longer than the kernel accepts', async () => {
    const long = Array.from({ length: 30 }, () => 'x'.repeat(200)).join('/');
    await expect(indexSpecs([f(long, 'x')])).rejects.toMatchObject({ code: 'IRB_LAYER_NAME_TOO_LONG' });
    await expect(indexSpecs([{ type: 'symlink', path: 'l', target: long }])).rejects.toMatchObject({
      code: 'IRB_LAYER_NAME_TOO_LONG',
    });
  });

  test('an inconsistent sparse map', async () => {
    const blob = await buildTar([
      { type: 'sparse', path: 's', size: 100, chunks: [{ offset: 200, data: new Uint8Array(512) }] },
    ]);
    await expect(indexBlobs([blob])).rejects.toMatchObject({ code: 'IRB_LAYER_SPARSE_INVALID' });
  });

  test('a blob that changes between the index pass and entries()', async () => {
    const first = await buildTar([f('a', 'one')]);
    const second = await buildTar([{ type: 'directory', path: 'a' }]);
    let opens = 0;
    const layer: LayerSource = {
      digest: 'sha256:0000',
      mediaType: MEDIA.tar,
      size: first.byteLength,
      open: () =>
        (async function* () {
          yield opens++ === 0 ? first : second;
        })(),
    };
    const rootfs = await indexLayers([layer]);
    await expect(emit(rootfs)).rejects.toMatchObject({ code: 'IRB_LAYER_CHANGED' });
  });

  test('errors name the layer', async () => {
    const good = await buildTar([f('a', 'a')]);
    const bad = await buildTar([rawMember(header('b', { checksum: 1 }))]);
    await expect(indexBlobs([good, bad])).rejects.toMatchObject({
      message: expect.stringMatching(/^layer 2\/2 \(sha256:/),
    });
  });
});
