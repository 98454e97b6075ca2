// The rootfs's output: order, hard links, determinism, bodies, names, sparse files, xattrs,
// stats, keep, progress, abort; and layer blobs in each compression.
import type { CpioFileEntry } from '@irb/cpio';
import { buildTar, type TarSpec, whiteout } from '@irb/test-utils';
import { describe, expect, test } from 'vitest';
import { build, byPath, d, emit, f, hl, layerOf, MEDIA, pathText, sl } from '../test/helpers.ts';
import { indexLayers } from './index.ts';

describe('output shape', () => {
  test('hard-linked data is emitted once, on one entry carrying every name', async () => {
    const rootfs = await build([[f('a', 'payload'), hl('b', 'a')], [hl('c', 'b')]]);
    const emitted = await emit(rootfs);
    const files = emitted.filter((item) => item.entry.type === 'file');
    expect(files).toHaveLength(1);
    expect(files[0]?.path).toBe('a');
    expect((files[0]!.entry as CpioFileEntry).links).toEqual(['b', 'c']);
    expect(files[0]?.body?.toString()).toBe('payload');
    expect(rootfs.stats).toMatchObject({ files: 1, hardlinks: 2, uncompressedBytes: 7 });
  });

  test('directories, symlinks and devices come first in byte order, then bodies in layer and tar order', async () => {
    const rootfs = await build([
      [f('z', 'z1'), d('b'), f('b/y', 'y'), sl('a', 'z')],
      [f('m', 'm'), f('c', 'c'), { type: 'fifo', path: 'b/fifo' }],
    ]);
    const emitted = await emit(rootfs);
    expect(emitted.map((item) => item.path)).toEqual(['.', 'a', 'b', 'b/fifo', 'z', 'b/y', 'm', 'c']);
  });

  test('the root directory comes first and carries the metadata of the ./ entry', async () => {
    const rootfs = await build([[d('./', { mode: 0o700, mtime: 99 }), f('x', '')]]);
    const [first] = await emit(rootfs);
    expect(first?.entry).toMatchObject({ type: 'directory', path: '.', mode: 0o700, mtime: 99 });
  });

  test('the same layers give identical entries twice (determinism)', async () => {
    const layers = [
      [d('etc'), f('etc/a', 'a'), hl('etc/b', 'etc/a'), sl('l', 'etc')],
      [f('etc/c', 'c'), whiteout('etc/a')],
    ];
    const one = await emit(await build(layers));
    const two = await emit(await build(layers));
    expect(two.map((item) => [item.entry, item.body])).toEqual(one.map((item) => [item.entry, item.body]));
  });

  test('each layer blob is reopened at most once by entries(), and not at all when it has no surviving body', async () => {
    const blobs = await Promise.all([
      buildTar([f('a', 'a'), f('b', 'b')]),
      buildTar([f('a', 'A'), f('b', 'B'), f('empty', '')]),
    ]);
    const layers = blobs.map((blob) => layerOf(blob));
    const rootfs = await indexLayers(layers);
    expect(layers.map((layer) => layer.opens)).toEqual([1, 1]);
    await emit(rootfs);
    expect(layers.map((layer) => layer.opens)).toEqual([1, 2]);
  });

  test('unread bodies are skipped safely when the consumer only looks at headers', async () => {
    const rootfs = await build([[f('a', 'x'.repeat(5000)), f('b', 'y'.repeat(3000))]]);
    const paths: string[] = [];
    for await (const entry of rootfs.entries()) paths.push(pathText(entry.path));
    expect(paths).toEqual(['.', 'a', 'b']);
  });

  test('names that are not UTF-8 are carried byte-exact as Uint8Array paths', async () => {
    const latin = new Uint8Array([0x63, 0x61, 0x66, 0xe9]); // "café" in latin-1
    const rootfs = await build([
      [
        { type: 'file', path: latin, content: 'x' },
        { type: 'symlink', path: 'to-latin', target: latin },
        {
          type: 'file',
          path: new Uint8Array([...new TextEncoder().encode('dir/'), 0xff, 0xfe]),
          content: 'y',
        },
      ],
    ]);
    const emitted = await emit(rootfs);
    const file = emitted.find((item) => item.path === 'bytes:636166e9');
    expect(file?.entry.path).toEqual(latin);
    expect(file?.body?.toString()).toBe('x');
    const link = emitted.find((item) => item.path === 'to-latin');
    expect(link?.entry.type === 'symlink' && link.entry.target).toEqual(latin);
    expect(
      emitted.some((item) => item.path === `bytes:${Buffer.from('dir/\xff\xfe', 'latin1').toString('hex')}`),
    ).toBe(true);
    expect(rootfs.lookup(latin)?.type).toBe('file');
  });

  test('GNU sparse files are expanded', async () => {
    const block = (byte: number) => new Uint8Array(512).fill(byte);
    const tail = new Uint8Array(100).fill(0x5a);
    const rootfs = await build([
      [
        {
          type: 'sparse',
          path: 'sparse',
          size: 200_000,
          chunks: [
            { offset: 4096, data: block(0x41) },
            { offset: 10_000, data: block(0x42) },
            { offset: 20_000, data: block(0x43) },
            { offset: 30_000, data: block(0x44) },
            { offset: 40_000, data: block(0x45) },
            { offset: 150_000, data: tail },
          ],
        },
        f('after', 'still in sync'),
      ],
    ]);
    const output = byPath(await emit(rootfs));
    const body = output.get('sparse')?.body as Buffer;
    const expected = Buffer.alloc(200_000);
    expected.fill(0x41, 4096, 4096 + 512);
    expected.fill(0x42, 10_000, 10_512);
    expected.fill(0x43, 20_000, 20_512);
    expected.fill(0x44, 30_000, 30_512);
    expected.fill(0x45, 40_000, 40_512);
    expected.fill(0x5a, 150_000, 150_100);
    expect(body.equals(expected)).toBe(true);
    expect(output.get('after')?.body?.toString()).toBe('still in sync');
  });

  test('xattrs are reported as lost, per path', async () => {
    const capability = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const rootfs = await build([
      [
        f('bin/ping', 'p', { mode: 0o755, xattrs: { 'security.capability': capability } }),
        f('plain', 'x'),
        d('srv', { xattrs: { 'user.a': 'x', 'trusted.b': 'y' } }),
      ],
    ]);
    expect(rootfs.stats.lostXattrs).toEqual([
      { path: '/bin/ping', keys: ['security.capability'] },
      { path: '/srv', keys: ['user.a', 'trusted.b'] },
    ]);
    expect(rootfs.lookup('/bin/ping')?.xattrs).toEqual(['security.capability']);
  });

  test('xattrs of files removed by later layers are not reported', async () => {
    const rootfs = await build([[f('x', 'x', { xattrs: { 'user.k': 'v' } })], [whiteout('x')]]);
    expect(rootfs.stats.lostXattrs).toEqual([]);
  });

  test('stats count entries, kinds, excluded paths and clamped names', async () => {
    const rootfs = await build(
      [
        [
          d('a'),
          f('a/1', 'abc'),
          hl('a/2', 'a/1'),
          sl('s', 'a'),
          f('../../escape', 'e'),
          d('doc'),
          f('doc/x', 'x'),
        ],
      ],
      { exclude: ['doc'] },
    );
    expect(rootfs.stats).toMatchObject({
      entries: 6, // ., a, a/1, a/2, s, escape
      files: 2,
      directories: 2,
      hardlinks: 1,
      excluded: 2,
      uncompressedBytes: 4,
      clampedPaths: 1,
    });
    const emitted = await emit(rootfs);
    const names = emitted.reduce(
      (n, item) => n + 1 + (item.entry.type === 'file' ? (item.entry.links?.length ?? 0) : 0),
      0,
    );
    expect(names).toBe(rootfs.stats.entries);
  });

  test('keep: removes what the filter refuses, deepest first; directories with something left stay', async () => {
    const seen: string[] = [];
    const rootfs = await build(
      [
        [
          d('usr/bin'),
          f('usr/bin/python', 'py'),
          hl('usr/bin/python3', 'usr/bin/python'),
          f('usr/bin/perl', 'pl'),
          sl('usr/bin/py', 'python3'),
          d('usr/share/doc'),
          f('usr/share/doc/README', 'r'),
          d('empty'),
        ],
      ],
      {
        keep: (e) => {
          seen.push(`${e.type}:${e.path}`);
          return ['/usr/bin/python3', '/usr/bin/py', '/empty'].includes(e.path);
        },
      },
    );
    // Children are judged before their directory; the root is never asked.
    expect(seen.indexOf('file:/usr/share/doc/README')).toBeLessThan(seen.indexOf('directory:/usr/share/doc'));
    expect(seen).not.toContain('directory:/usr/bin');
    expect(rootfs.lookup('/usr/bin/python3')?.type).toBe('file');
    expect(rootfs.lookup('/usr/bin/python')).toBeUndefined();
    expect(rootfs.lookup('/usr/bin/perl')).toBeUndefined();
    expect(rootfs.lookup('/usr/share')).toBeUndefined();
    expect(rootfs.lookup('/empty')?.type).toBe('directory');
    expect(rootfs.stats).toMatchObject({ filtered: 5, hardlinks: 0, files: 1 });
    // The kept name of a hard-linked file carries the body.
    expect(new TextDecoder().decode(await rootfs.readFile('/usr/bin/py'))).toBe('py');
    const emitted = await emit(rootfs);
    const python3 = emitted.find((item) => item.entry.path === 'usr/bin/python3');
    expect(python3?.entry).toMatchObject({ type: 'file', size: 2 });
  });

  test('onProgress reports every layer while indexing and emitting', async () => {
    const events: string[] = [];
    const blobs = await Promise.all([buildTar([f('a', 'a')]), buildTar([f('b', 'b')])]);
    const rootfs = await indexLayers(
      blobs.map((blob) => layerOf(blob)),
      { onProgress: (event) => event.done && events.push(`${event.phase}:${event.layer}/${event.layers}`) },
    );
    await emit(rootfs);
    expect(events).toEqual(['index:0/2', 'index:1/2', 'emit:0/2', 'emit:1/2']);
  });

  test('an aborted signal stops indexing and emitting', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const blob = await buildTar([f('a', 'a')]);
    await expect(indexLayers([layerOf(blob)], { signal: controller.signal })).rejects.toThrow('stop');
    const rootfs = await indexLayers([layerOf(blob)]);
    await expect(async () => {
      for await (const _ of rootfs.entries({ signal: controller.signal })) {
        // nothing: the first step throws
      }
    }).rejects.toThrow('stop');
  });
});

describe('compression of layer blobs', () => {
  const specs: TarSpec[] = [d('etc'), f('etc/hostname', 'irb')];
  test.each([
    ['plain, by media type', 'none', MEDIA.tar],
    ['gzip, by media type', 'gzip', MEDIA.gzip],
    ['gzip, Docker media type', 'gzip', MEDIA.docker],
    ['zstd, by media type', 'zstd', MEDIA.zstd],
    ['gzip, by magic bytes', 'gzip', MEDIA.unknown],
    ['zstd, by magic bytes', 'zstd', MEDIA.unknown],
    ['plain, by magic bytes', 'none', MEDIA.unknown],
  ] as const)('%s', async (_name, compression, mediaType) => {
    const blob = await buildTar(specs, { compression });
    const rootfs = await indexLayers([layerOf(blob, mediaType, 97)]);
    const output = byPath(await emit(rootfs));
    expect(output.get('etc/hostname')?.body?.toString()).toBe('irb');
  });
});
