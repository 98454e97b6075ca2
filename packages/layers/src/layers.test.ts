// Layer semantics against a table of cases: whiteouts, opaque directories, links, owners,
// devices, paths.
import type { CpioFileEntry } from '@irb/cpio';
import { opaque, type TarSpec, whiteout } from '@irb/test-utils';
import { describe, expect, test } from 'vitest';
import { build, byPath, d, type Emitted, emit, f, hl, sl } from '../test/helpers.ts';
import type { IndexLayersOptions, Rootfs } from './index.ts';

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
