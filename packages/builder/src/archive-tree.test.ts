import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { compress } from '@irb/compress';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { listCache, pruneCache } from '@irb/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveTree, readArchiveTree, treeFileBytes } from './archive-tree.ts';
import { SETTLED_MS } from './file-identity.ts';
import type { InitramfsCompression } from './types.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-archive-tree-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function* listed(entries: CpioEntry[]): AsyncGenerator<CpioEntry> {
  yield* entries;
}

/** An archive of members back to back, each packed and compressed on its own (NUL padding between, as irb writes them). */
async function archive(name: string, members: Array<[InitramfsCompression, CpioEntry[]]>): Promise<string> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for (const [format, entries] of members) {
    const pad = new Uint8Array(4 + ((4 - (length % 4)) % 4));
    parts.push(pad);
    length += pad.length;
    const packed = packCpio(listed(entries));
    for await (const c of format === 'none' ? packed : compress(packed, { format })) {
      parts.push(c);
      length += c.length;
    }
  }
  const path = join(dir, name);
  await writeFile(path, Buffer.concat(parts.slice(1)));
  return path;
}

const file = (path: string, extra: Partial<CpioEntry> = {}): CpioEntry =>
  ({
    type: 'file',
    path,
    mode: 0o644,
    size: path.length,
    body: new TextEncoder().encode(path),
    ...extra,
  }) as CpioEntry;
const directory = (path: string, mode = 0o755): CpioEntry => ({ type: 'directory', path, mode });
const symlink = (path: string, target: string): CpioEntry => ({ type: 'symlink', path, target, mode: 0o777 });

describe('readArchiveTree', () => {
  it('applies the members in order as the kernel does', async () => {
    const path = await archive('rules', [
      [
        'gzip',
        [
          directory('usr'),
          directory('usr/bin'),
          symlink('bin', 'usr/bin'),
          directory('tmp', 0o1777),
          directory('etc'),
          file('etc/motd', { links: ['etc/motd.copy'] }),
          file('etc/hosts'),
          directory('empty'),
          symlink('lnk', '/usr'),
          directory('srv', 0o750),
        ],
      ],
      [
        'zstd',
        [
          // Through BASE's symlink: the directory lands in usr/bin.
          directory('bin/tools', 0o700),
          // A directory over a directory takes its mode.
          directory('tmp', 0o755),
          // No parent: the kernel cannot create it.
          file('missing/parent/f'),
          directory('missing/dir'),
          // A symlink over a non-empty directory: rmdir fails, the entry is skipped.
          symlink('etc', 'elsewhere'),
          // A file over an empty directory replaces it; a directory over a symlink replaces the link.
          file('empty'),
          directory('lnk', 0o711),
          // A symlink over a file replaces it.
          symlink('etc/hosts', '/etc/hosts.real'),
        ],
      ],
      ['lz4', [file('etc/motd', { mode: 0o600 }), directory('etc/motd.d')]],
    ]);
    const nodes = await readArchiveTree(path);
    expect(Object.fromEntries([...nodes].sort(([a], [b]) => (a < b ? -1 : 1)))).toEqual({
      bin: { type: 'symlink', mode: 0o777, target: 'usr/bin' },
      etc: { type: 'directory', mode: 0o755 },
      'etc/hosts': { type: 'symlink', mode: 0o777, target: '/etc/hosts.real' },
      // Written in place by a later member: still the inode etc/motd.copy names too.
      'etc/motd': { type: 'file', mode: 0o600, linked: true },
      'etc/motd.copy': { type: 'file', mode: 0o644, linked: true },
      'etc/motd.d': { type: 'directory', mode: 0o755 },
      lnk: { type: 'directory', mode: 0o711 },
      srv: { type: 'directory', mode: 0o750 },
      tmp: { type: 'directory', mode: 0o755 },
      usr: { type: 'directory', mode: 0o755 },
      'usr/bin': { type: 'directory', mode: 0o755 },
      'usr/bin/tools': { type: 'directory', mode: 0o700 },
    });
  });
});

describe('archiveTree', () => {
  const base = [directory('usr'), directory('usr/bin'), symlink('bin', 'usr/bin')];

  it('keeps what it read in the output cache: the same file is not hashed again, a copy is hashed but not decoded', async () => {
    const cacheDir = join(dir, 'cache');
    const output = join(cacheDir, 'output');
    const path = await archive('cached', [['gzip', base]]);
    // A record made right after the file changed is not trusted (file times tick coarsely).
    await sleep(SETTLED_MS + 20);
    expect((await archiveTree(path, { cacheDir }))('bin')?.type).toBe('symlink');
    const names = await readdir(output);
    expect(names.map((n) => n.slice(65)).sort()).toEqual(['aid', 'atree']);
    const aid = join(output, names.find((n) => n.endsWith('.aid')) as string);
    const record = JSON.parse(await readFile(aid, 'utf8'));
    // Point the record at another stored tree: an unchanged file takes it without hashing.
    const fake = 'f'.repeat(64);
    await writeFile(join(output, `${fake}.atree`), treeFileBytes(Buffer.from('d755\0proof\0\0')));
    await writeFile(aid, JSON.stringify({ ...record, digest: fake }));
    expect((await archiveTree(path, { cacheDir }))('proof')?.type).toBe('directory');
    // A copy (another inode) is hashed: its content's tree is found, not read again.
    const copiedTree = treeFileBytes(Buffer.from('d700\0copied\0\0'));
    await writeFile(join(output, `${record.digest}.atree`), copiedTree);
    const copy = join(dir, 'copy');
    await copyFile(path, copy);
    const copied = await archiveTree(copy, { cacheDir });
    expect(copied('copied')).toEqual({ type: 'directory', mode: 0o700 });
    // A damaged tree is read again from the archive: one whose records no longer match the
    // digest in its header (a mode flipped, the records still well-formed), and garbage.
    const flipped = Buffer.from(copiedTree);
    flipped[flipped.indexOf('d700')! + 2] = '5'.charCodeAt(0);
    await writeFile(join(output, `${record.digest}.atree`), flipped);
    const notTrusted = await archiveTree(join(dir, 'copy'), { cacheDir });
    expect(notTrusted('copied')).toBeUndefined();
    expect(notTrusted('usr/bin')?.type).toBe('directory');
    await writeFile(join(output, `${record.digest}.atree`), 'garbage');
    const reread = await archiveTree(join(dir, 'copy'), { cacheDir });
    expect(reread('copied')).toBeUndefined();
    expect(reread('usr/bin')?.type).toBe('directory');
    // `irb cache ls` counts them as output entries; a prune removes them.
    const listed = (await listCache(cacheDir)).filter((e) => e.kind === 'output');
    // Two trees (the archive's and the one planted above), two files seen.
    expect(listed.map((e) => e.path.split('.').pop()).sort()).toEqual(['aid', 'aid', 'atree', 'atree']);
    await pruneCache(cacheDir, { maxBytes: 0 });
    expect(await readdir(output)).toEqual([]);
  });

  it('reads a changed file again', async () => {
    const cacheDir = join(dir, 'changed');
    const path = await archive('changed', [['zstd', base]]);
    await sleep(SETTLED_MS + 20);
    expect((await archiveTree(path, { cacheDir }))('srv')).toBeUndefined();
    await rm(path);
    await archive('changed', [['zstd', [...base, directory('srv', 0o750)]]]);
    expect((await archiveTree(path, { cacheDir }))('srv')).toEqual({ type: 'directory', mode: 0o750 });
  });

  it('stores nothing with `cache: false`', async () => {
    const cacheDir = join(dir, 'off');
    const path = await archive('off', [['none', base]]);
    expect((await archiveTree(path, { cacheDir, cache: false }))('usr')?.type).toBe('directory');
    await expect(readdir(join(dir, 'off'))).rejects.toThrow();
  });
});
