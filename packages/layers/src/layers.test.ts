import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CpioFileEntry } from '@irb/cpio';
import { buildTar, opaque, type TarSpec, whiteout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { byPath, type Emitted, emit, layerOf, MEDIA, pathText } from '../test/helpers.ts';
import { type IndexLayersOptions, indexLayers, parseInjectSpec, type Rootfs } from './index.ts';

/** What a path must look like in the output; `null` = absent. */
type Expect =
  | null
  | {
      type: 'file';
      content?: string;
      mode?: number;
      uid?: number;
      gid?: number;
      mtime?: number;
      nlink?: number;
    }
  | { type: 'directory'; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { type: 'symlink'; target: string }
  | { type: 'char' | 'block'; major: number; minor: number; mode?: number }
  | { type: 'fifo'; mode?: number };

interface Case {
  name: string;
  layers: TarSpec[][];
  options?: IndexLayersOptions;
  expect: Record<string, Expect>;
  /** Also require these to be the only paths (besides `.`). */
  exact?: boolean;
}

const f = (path: string, content = '', extra: Partial<TarSpec> = {}): TarSpec =>
  ({ type: 'file', path, content, ...extra }) as TarSpec;
const d = (path: string, extra: Partial<TarSpec> = {}): TarSpec =>
  ({ type: 'directory', path, ...extra }) as TarSpec;
const sl = (path: string, target: string): TarSpec => ({ type: 'symlink', path, target });
const hl = (path: string, target: string): TarSpec => ({ type: 'link', path, target });

const cases: Case[] = [
  {
    name: 'layers apply base first: the upper layer wins',
    layers: [[d('etc'), f('etc/os', 'base')], [f('etc/os', 'upper')]],
    expect: { etc: { type: 'directory' }, 'etc/os': { type: 'file', content: 'upper' } },
  },
  {
    name: '.wh.NAME deletes a file of a lower layer',
    layers: [[d('a'), f('a/x', 'x'), f('a/y', 'y')], [whiteout('a/x')]],
    expect: { 'a/x': null, 'a/y': { type: 'file', content: 'y' } },
  },
  {
    name: '.wh.NAME deletes a directory and everything below it',
    layers: [[d('a'), d('a/b'), d('a/b/c'), f('a/b/c/deep', '1'), f('a/keep', 'k')], [whiteout('a/b')]],
    expect: { 'a/b': null, 'a/b/c': null, 'a/b/c/deep': null, 'a/keep': { type: 'file', content: 'k' } },
  },
  {
    name: 'a whiteout only hides lower layers: the same layer may add the name before the marker',
    layers: [[f('x', 'old')], [f('x', 'new'), whiteout('x')]],
    expect: { x: { type: 'file', content: 'new' } },
  },
  {
    name: 'a whiteout only hides lower layers: the same layer may add the name after the marker',
    layers: [[f('x', 'old')], [whiteout('x'), f('x', 'new')]],
    expect: { x: { type: 'file', content: 'new' } },
  },
  {
    name: 'opaque marker at the end of the tar hides lower content, keeps what the layer adds',
    layers: [
      [d('d'), f('d/lower1', '1'), d('d/sub'), f('d/sub/lower2', '2'), f('outside', 'o')],
      [d('d'), f('d/mine', 'm'), opaque('d')],
    ],
    expect: {
      'd/lower1': null,
      'd/sub': null,
      'd/sub/lower2': null,
      'd/mine': { type: 'file', content: 'm' },
      outside: { type: 'file', content: 'o' },
    },
  },
  {
    name: 'opaque marker at the start of the tar behaves the same',
    layers: [
      [d('d'), f('d/lower1', '1')],
      [opaque('d'), d('d'), f('d/mine', 'm')],
    ],
    expect: { 'd/lower1': null, 'd/mine': { type: 'file', content: 'm' } },
  },
  {
    name: 'opaque marker without the directory entry keeps the lower directory itself',
    layers: [[d('d', { mode: 0o750, uid: 7 }), f('d/lower', '1')], [opaque('d')]],
    expect: { d: { type: 'directory', mode: 0o750, uid: 7 }, 'd/lower': null },
  },
  {
    name: 'AUFS bookkeeping markers are dropped',
    layers: [[f('a', '1')], [f('.wh..wh.plnk/123.456', ''), f('.wh..wh.aufs', '')]],
    expect: { a: { type: 'file', content: '1' } },
    exact: true,
  },
  {
    name: 'a directory replaced by a file',
    layers: [[d('p'), f('p/child', 'c')], [f('p', 'now a file')]],
    expect: { p: { type: 'file', content: 'now a file' }, 'p/child': null },
  },
  {
    name: 'a directory replaced by a symlink',
    layers: [[d('p'), f('p/child', 'c')], [sl('p', '/elsewhere')]],
    expect: { p: { type: 'symlink', target: '/elsewhere' }, 'p/child': null },
  },
  {
    name: 'a file replaced by a directory',
    layers: [[f('p', 'file')], [d('p', { mode: 0o700 }), f('p/child', 'c')]],
    expect: { p: { type: 'directory', mode: 0o700 }, 'p/child': { type: 'file', content: 'c' } },
  },
  {
    name: 'a symlink replaced by a directory',
    layers: [
      [d('real'), f('real/r', 'r'), sl('p', 'real')],
      [d('p'), f('p/child', 'c')],
    ],
    expect: {
      p: { type: 'directory' },
      'p/child': { type: 'file', content: 'c' },
      'real/r': { type: 'file' },
    },
  },
  {
    name: 'a directory entry over an existing directory updates its metadata and keeps its children',
    layers: [
      [d('p', { mode: 0o755 }), f('p/old', 'o')],
      [d('p', { mode: 0o711, uid: 5, gid: 6, mtime: 1234 })],
    ],
    expect: { p: { type: 'directory', mode: 0o711, uid: 5, gid: 6, mtime: 1234 }, 'p/old': { type: 'file' } },
  },
  {
    name: 'a file re-created after its whiteout',
    layers: [[f('x', 'one')], [whiteout('x')], [f('x', 'three', { mode: 0o600 })]],
    expect: { x: { type: 'file', content: 'three', mode: 0o600 } },
  },
  {
    name: 'a directory re-created after its whiteout (same layer) holds only what is added again',
    layers: [
      [d('d'), f('d/old', 'o'), d('d/olddir')],
      [whiteout('d'), d('d'), f('d/new', 'n')],
    ],
    expect: { 'd/old': null, 'd/olddir': null, 'd/new': { type: 'file', content: 'n' } },
  },
  {
    name: 'a directory re-created after its whiteout (later layer) holds only what is added again',
    layers: [[d('d'), f('d/old', 'o')], [whiteout('d')], [d('d'), f('d/new', 'n')]],
    expect: { 'd/old': null, 'd/new': { type: 'file', content: 'n' } },
  },
  {
    name: 'hard links within a layer share one inode',
    layers: [[f('a', 'data', { mode: 0o4755, uid: 3 }), hl('b', 'a'), hl('c', 'a')]],
    expect: {
      a: { type: 'file', content: 'data', nlink: 3, mode: 0o4755, uid: 3 },
      b: { type: 'file', content: 'data', nlink: 3, mode: 0o4755, uid: 3 },
      c: { type: 'file', nlink: 3 },
    },
  },
  {
    name: 'a hard link to a file of a lower layer shares its inode',
    layers: [[d('bin'), f('bin/tool', 'T')], [hl('bin/alias', 'bin/tool')]],
    expect: { 'bin/tool': { type: 'file', nlink: 2 }, 'bin/alias': { type: 'file', content: 'T', nlink: 2 } },
  },
  {
    name: 'a hard link survives a later whiteout of its first name',
    layers: [[f('a', 'kept'), hl('b', 'a')], [whiteout('a')]],
    expect: { a: null, b: { type: 'file', content: 'kept', nlink: 1 } },
  },
  {
    name: 'a hard link keeps the old content when its target is replaced later',
    layers: [[f('a', 'old'), hl('b', 'a')], [f('a', 'new')]],
    expect: { a: { type: 'file', content: 'new', nlink: 1 }, b: { type: 'file', content: 'old', nlink: 1 } },
  },
  {
    name: 'a hard link named with ./ and a leading / still finds its target',
    layers: [[f('./usr/a', 'x'), hl('/usr/b', './usr/a')]],
    expect: { 'usr/a': { type: 'file', nlink: 2 }, 'usr/b': { type: 'file', nlink: 2 } },
  },
  {
    name: 'symlinks absolute, relative and dangling are kept as written',
    layers: [
      [
        sl('abs', '/usr/bin/python3'),
        sl('rel', '../lib/x'),
        sl('dangling', 'does/not/exist'),
        sl('self', 'self'),
      ],
    ],
    expect: {
      abs: { type: 'symlink', target: '/usr/bin/python3' },
      rel: { type: 'symlink', target: '../lib/x' },
      dangling: { type: 'symlink', target: 'does/not/exist' },
      self: { type: 'symlink', target: 'self' },
    },
  },
  {
    name: 'an entry below a symlinked parent lands where the link points (as umoci/containerd)',
    layers: [[d('usr'), d('usr/lib'), sl('lib', 'usr/lib')], [f('lib/libc.so', 'c')]],
    expect: {
      'usr/lib/libc.so': { type: 'file', content: 'c' },
      lib: { type: 'symlink', target: 'usr/lib' },
    },
  },
  {
    name: 'a symlinked parent pointing outside the root is resolved inside it',
    layers: [
      [sl('evil', '../../../../tmp'), sl('abs', '/etc')],
      [f('evil/pwn', 'p'), f('abs/passwd', 'root')],
    ],
    expect: {
      'tmp/pwn': { type: 'file', content: 'p' },
      'etc/passwd': { type: 'file', content: 'root' },
      evil: { type: 'symlink', target: '../../../../tmp' },
    },
  },
  {
    name: 'devices and FIFOs keep numbers and modes',
    layers: [
      [
        d('dev'),
        { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
        { type: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
        { type: 'block', path: 'dev/vda', major: 254, minor: 0, mode: 0o660, gid: 6 },
        { type: 'fifo', path: 'run/initctl', mode: 0o600 },
      ],
    ],
    expect: {
      'dev/console': { type: 'char', major: 5, minor: 1, mode: 0o600 },
      'dev/null': { type: 'char', major: 1, minor: 3, mode: 0o666 },
      'dev/vda': { type: 'block', major: 254, minor: 0, mode: 0o660 },
      'run/initctl': { type: 'fifo', mode: 0o600 },
    },
  },
  {
    name: 'owners (also PAX uid/gid beyond the octal field), setuid/setgid/sticky, mtimes',
    layers: [
      [
        f('suid', 's', { mode: 0o4755, uid: 0, gid: 0, mtime: 1_600_000_000 }),
        f('sgid', 'g', { mode: 0o2711, gid: 50 }),
        d('tmp', { mode: 0o1777 }),
        f('big', 'b', { uid: 3_000_000, gid: 4_000_000_000, mode: 0o640 }),
        f('nobody', 'n', { uid: 65534, gid: 65534, mtime: 4_000_000_000 }),
      ],
    ],
    expect: {
      suid: { type: 'file', mode: 0o4755, mtime: 1_600_000_000 },
      sgid: { type: 'file', mode: 0o2711, gid: 50 },
      tmp: { type: 'directory', mode: 0o1777 },
      big: { type: 'file', uid: 3_000_000, gid: 4_000_000_000, mode: 0o640 },
      nobody: { type: 'file', uid: 65534, gid: 65534, mtime: 4_000_000_000 },
    },
  },
  {
    name: 'sourceDateEpoch clamps later mtimes and leaves earlier ones',
    layers: [[f('new', 'n', { mtime: 2_000_000_000 }), f('old', 'o', { mtime: 1000 })]],
    options: { sourceDateEpoch: 1_700_000_000 },
    expect: { new: { type: 'file', mtime: 1_700_000_000 }, old: { type: 'file', mtime: 1000 } },
  },
  {
    name: 'PAX long names and long link names',
    layers: [
      [
        f(`${'p'.repeat(120)}/${'q'.repeat(150)}`, 'long'),
        sl('ls', `/${'t'.repeat(200)}`),
        hl('hl', `${'p'.repeat(120)}/${'q'.repeat(150)}`),
      ],
    ],
    expect: {
      [`${'p'.repeat(120)}/${'q'.repeat(150)}`]: { type: 'file', content: 'long', nlink: 2 },
      ls: { type: 'symlink', target: `/${'t'.repeat(200)}` },
      hl: { type: 'file', content: 'long', nlink: 2 },
    },
  },
  {
    name: 'GNU long names and long link names',
    layers: [
      [
        { type: 'file', path: `g/${'n'.repeat(180)}`, content: 'gnu', longNames: 'gnu' },
        { type: 'symlink', path: `g/${'s'.repeat(130)}`, target: `../${'t'.repeat(150)}`, longNames: 'gnu' },
        { type: 'link', path: `g/${'h'.repeat(120)}`, target: `g/${'n'.repeat(180)}`, longNames: 'gnu' },
      ],
    ],
    expect: {
      [`g/${'n'.repeat(180)}`]: { type: 'file', content: 'gnu', nlink: 2 },
      [`g/${'s'.repeat(130)}`]: { type: 'symlink', target: `../${'t'.repeat(150)}` },
      [`g/${'h'.repeat(120)}`]: { type: 'file', content: 'gnu', nlink: 2 },
    },
  },
  {
    name: 'paths ./, .. and a leading / are normalized inside the root',
    layers: [[f('./dot', '1'), f('/abs', '2'), f('../up', '3'), f('a/../../../b', '4'), f('x//y/./z', '5')]],
    expect: {
      dot: { type: 'file', content: '1' },
      abs: { type: 'file', content: '2' },
      up: { type: 'file', content: '3' },
      b: { type: 'file', content: '4' },
      'x/y/z': { type: 'file', content: '5' },
    },
  },
  {
    name: 'missing parents are synthesized (0755, root)',
    layers: [[f('deep/er/file', 'x', { uid: 9 })]],
    expect: {
      deep: { type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      'deep/er': { type: 'directory', mode: 0o755, uid: 0 },
      'deep/er/file': { type: 'file', uid: 9 },
    },
    exact: true,
  },
  {
    name: 'exclude globs: with and without leading /, *, ** and ?, directories with their contents',
    layers: [
      [
        d('usr/share/doc/pkg'),
        f('usr/share/doc/pkg/README', 'r'),
        f('usr/share/man1', 'm'),
        f('usr/lib/a.pyc', 'c'),
        f('usr/lib/deep/b.pyc', 'c'),
        f('usr/lib/keep.py', 'k'),
        f('var/cache/x1', '1'),
        f('var/cache/x22', '2'),
      ],
    ],
    options: { exclude: ['/usr/share/doc', 'usr/share/man?', '**/*.pyc', 'var/cache/x?'] },
    expect: {
      'usr/share/doc': null,
      'usr/share/doc/pkg/README': null,
      'usr/share/man1': null,
      'usr/lib/a.pyc': null,
      'usr/lib/deep/b.pyc': null,
      'usr/lib/keep.py': { type: 'file' },
      'var/cache/x1': null,
      'var/cache/x22': { type: 'file' },
    },
  },
];

async function build(layers: TarSpec[][], options?: IndexLayersOptions): Promise<Rootfs> {
  const blobs = await Promise.all(layers.map((specs) => buildTar(specs)));
  return indexLayers(
    blobs.map((blob) => layerOf(blob)),
    options,
  );
}

function check(path: string, want: Expect, output: Map<string, Emitted>, rootfs: Rootfs): void {
  const got = output.get(path);
  const info = rootfs.lookup(path);
  if (want === null) {
    expect(got, `${path} must be absent`).toBeUndefined();
    expect(info).toBeUndefined();
    return;
  }
  expect(got, `${path} must be present`).toBeDefined();
  const entry = got!.entry;
  expect(entry.type).toBe(want.type);
  expect(info?.type).toBe(want.type);
  if ('mode' in want && want.mode !== undefined) expect(entry.mode).toBe(want.mode);
  if ('uid' in want && want.uid !== undefined) expect(entry.uid).toBe(want.uid);
  if ('gid' in want && want.gid !== undefined) expect(entry.gid).toBe(want.gid);
  if ('mtime' in want && want.mtime !== undefined) expect(entry.mtime).toBe(want.mtime);
  if (want.type === 'file') {
    if (want.content !== undefined) expect(got!.body?.toString()).toBe(want.content);
    if (want.nlink !== undefined) {
      expect(1 + ((entry as CpioFileEntry).links?.length ?? 0)).toBe(want.nlink);
      expect(info?.nlink).toBe(want.nlink);
    }
  }
  if (want.type === 'symlink' && entry.type === 'symlink') expect(entry.target).toBe(want.target);
  if ((want.type === 'char' || want.type === 'block') && (entry.type === 'char' || entry.type === 'block')) {
    expect([entry.rdevMajor, entry.rdevMinor]).toEqual([want.major, want.minor]);
    expect([info?.rdevMajor, info?.rdevMinor]).toEqual([want.major, want.minor]);
  }
}

describe('layer semantics (real tar layers)', () => {
  test.each(cases)('$name', async ({ layers, options, expect: expected, exact }) => {
    const rootfs = await build(layers, options);
    const emitted = await emit(rootfs);
    const output = byPath(emitted);
    for (const [path, want] of Object.entries(expected)) check(path, want, output, rootfs);
    if (exact) {
      expect([...output.keys()].filter((p) => p !== '.').sort()).toEqual(
        Object.entries(expected)
          .filter(([, want]) => want !== null)
          .map(([path]) => path)
          .sort(),
      );
    }
  });
});

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

describe('inject', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-layers-inject-'));
    await writeFile(join(dir, 'agent'), 'AGENT');
    await mkdir(join(dir, 'tree', 'sub'), { recursive: true });
    await writeFile(join(dir, 'tree', 'one'), '1');
    await writeFile(join(dir, 'tree', 'sub', 'two'), '22');
    await symlink('one', join(dir, 'tree', 'link'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('bytes and host files after all layers: 0755, parents created, replacing a file and a directory', async () => {
    const rootfs = await build([[f('init', 'old init'), d('opt/agent'), f('opt/agent/stale', 's')]]);
    rootfs.inject('/init', { bytes: new TextEncoder().encode('#!/bin/sh\n') });
    rootfs.inject('/opt/agent', { hostPath: join(dir, 'agent') });
    rootfs.inject(
      'new/parents/file',
      { bytes: new Uint8Array([1, 2]) },
      { mode: 0o600, uid: 1000, gid: 1000, mtime: 5 },
    );
    const output = byPath(await emit(rootfs));
    expect(output.get('init')?.entry).toMatchObject({ type: 'file', mode: 0o755, uid: 0, gid: 0 });
    expect(output.get('init')?.body?.toString()).toBe('#!/bin/sh\n');
    expect(output.get('opt/agent')?.body?.toString()).toBe('AGENT');
    expect(output.get('opt/agent')?.entry.mode).toBe(0o755);
    expect(output.get('opt/agent/stale')).toBeUndefined();
    expect(output.get('new/parents')?.entry).toMatchObject({
      type: 'directory',
      mode: 0o755,
      uid: 0,
      gid: 0,
    });
    expect(output.get('new/parents/file')?.entry).toMatchObject({
      mode: 0o600,
      uid: 1000,
      gid: 1000,
      mtime: 5,
    });
  });

  test('injectHostPath copies a directory tree and follows symlinked parents inside the image', async () => {
    const rootfs = await build([
      [d('usr/bin'), sl('bin', 'usr/bin'), d('etc/conf'), f('etc/conf/image', 'i')],
    ]);
    await rootfs.injectHostPath(join(dir, 'agent'), '/bin/');
    await rootfs.injectHostPath(join(dir, 'tree'), '/etc/conf');
    const output = byPath(await emit(rootfs));
    expect(output.get('usr/bin/agent')?.body?.toString()).toBe('AGENT');
    expect(output.get('etc/conf/image')?.body?.toString()).toBe('i');
    expect(output.get('etc/conf/one')?.body?.toString()).toBe('1');
    expect(output.get('etc/conf/sub/two')?.body?.toString()).toBe('22');
    expect(output.get('etc/conf/link')?.entry).toMatchObject({ type: 'symlink', target: 'one' });
  });

  test('a host file that changes size before it is streamed fails clearly', async () => {
    const path = join(dir, 'changing');
    await writeFile(path, 'short');
    const rootfs = await build([[f('x', 'x')]]);
    rootfs.inject('/changing', { hostPath: path });
    await writeFile(path, 'much longer now');
    await expect(emit(rootfs)).rejects.toMatchObject({ code: 'IRB_INJECT_CHANGED' });
  });

  test('parseInjectSpec splits SRC:DEST and refuses anything else', () => {
    expect(parseInjectSpec('./agent:/usr/bin/agent')).toEqual({ src: './agent', dest: '/usr/bin/agent' });
    expect(parseInjectSpec('/tmp/a:b:/x')).toEqual({ src: '/tmp/a:b', dest: '/x' });
    for (const bad of ['agent', ':/x', 'agent:']) {
      expect(() => parseInjectSpec(bad)).toThrow(
        expect.objectContaining({ code: 'IRB_INJECT_SPEC_INVALID' }),
      );
    }
  });

  test('missing or special host sources fail clearly', async () => {
    const rootfs = await build([[f('x', 'x')]]);
    expect(() => rootfs.inject('/a', { hostPath: join(dir, 'nope') })).toThrow(
      expect.objectContaining({ code: 'IRB_INJECT_SOURCE_UNREADABLE' }),
    );
    expect(() => rootfs.inject('/a', { hostPath: dir })).toThrow(
      expect.objectContaining({ code: 'IRB_INJECT_SOURCE_UNREADABLE' }),
    );
    expect(() => rootfs.inject('/', { bytes: new Uint8Array() })).toThrow(
      expect.objectContaining({ code: 'IRB_INJECT_DEST_INVALID' }),
    );
    await expect(rootfs.injectHostPath('/dev/null', '/null')).rejects.toMatchObject({
      code: 'IRB_INJECT_SOURCE_UNREADABLE',
    });
    expect(() => rootfs.inject('/x/below', { bytes: new Uint8Array(1) })).toThrow(
      expect.objectContaining({ code: 'IRB_INJECT_DEST_INVALID' }),
    );
  });
});

describe('readFile', () => {
  test('reads a file through hard links, symlinks and whiteouts from the right layer', async () => {
    const rootfs = await build([
      [
        f('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'),
        hl('etc/passwd-', 'etc/passwd'),
        f('big', 'x'.repeat(100)),
      ],
      [whiteout('etc/passwd'), sl('etc/alt', 'passwd-'), f('etc/other', 'o')],
    ]);
    rootfs.inject('/injected', { bytes: new TextEncoder().encode('inj') });
    const text = async (path: string) => {
      const bytes = await rootfs.readFile(path);
      return bytes && new TextDecoder().decode(bytes);
    };
    expect(await text('/etc/passwd-')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(await text('/etc/alt')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(await text('/etc/other')).toBe('o');
    expect(await text('/injected')).toBe('inj');
    expect(await text('/etc/passwd')).toBeUndefined();
    expect(await text('/etc')).toBeUndefined();
    await expect(rootfs.readFile('/big', { maxBytes: 10 })).rejects.toMatchObject({
      code: 'IRB_LAYER_FILE_TOO_LARGE',
    });
  });

  test('readHead reads the first bytes of a file of any size, from a layer, an injection or a host file', async () => {
    const rootfs = await build([
      [f('big', `\x7fELF${'x'.repeat(100_000)}`), sl('link', 'big'), f('small', 'ab')],
    ]);
    rootfs.inject('/injected', { bytes: new TextEncoder().encode('#!/bin/sh\necho') });
    const head = async (path: string, length: number) => {
      const bytes = await rootfs.readHead(path, length);
      return bytes && new TextDecoder().decode(bytes);
    };
    expect(await head('/link', 6)).toBe('\x7fELFxx');
    expect(await head('/small', 20)).toBe('ab');
    expect(await head('/injected', 9)).toBe('#!/bin/sh');
    expect(await head('/missing', 4)).toBeUndefined();
    expect(await rootfs.readHead('/big', 0)).toEqual(new Uint8Array(0));
  });
});
