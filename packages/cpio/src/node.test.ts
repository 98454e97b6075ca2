import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesFromDirectory, fromNodeReadable, toNodeReadable } from './node.ts';
import { readCpio } from './reader.ts';
import { concatStream, readBack } from './test-helpers.ts';
import type { CpioEntry } from './types.ts';
import { packCpio } from './writer.ts';

const isRoot = process.getuid?.() === 0;
let work: string;
let src: string;

async function collect(it: AsyncIterable<CpioEntry>): Promise<CpioEntry[]> {
  const out: CpioEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const show = (p: CpioEntry['path']) =>
  typeof p === 'string' ? p : `bytes:${Buffer.from(p).toString('hex')}`;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'irb-cpio-node-'));
  src = join(work, 'src');
  await mkdir(join(src, 'a/deep'), { recursive: true });
  await mkdir(join(src, 'z'));
  await mkdir(join(src, 'B'));
  await writeFile(join(src, 'a/x'), 'linked\n');
  await link(join(src, 'a/x'), join(src, 'z/y'));
  await link(join(src, 'a/x'), join(src, 'B/w'));
  await writeFile(join(src, 'a/deep/file'), 'deep\n');
  await writeFile(join(src, 'setuid'), '#!/bin/sh\n');
  await chmod(join(src, 'setuid'), 0o4755);
  await symlink('a/x', join(src, 'ln'));
  await writeFile(Buffer.from(`${src}/caf\xe9`, 'latin1'), 'latin1\n');
  await utimes(join(src, 'a/deep/file'), 2_000_000_000, 2_000_000_000);
  spawnSync('mkfifo', [join(src, 'fifo')]);
  if (isRoot) {
    spawnSync('mknod', [join(src, 'console'), 'c', '5', '1']);
    await chown(join(src, 'a/deep/file'), 1234, 5678);
  }
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('entriesFromDirectory', () => {
  it('walks in byte order, parents first, hard links grouped at their last name', async () => {
    const entries = await collect(entriesFromDirectory(src));
    const paths = entries.map((e) => show(e.path));
    // The latin-1 name stays bytes; the link group (B/w, a/x, z/y) sits where z/y is.
    expect(paths).toEqual([
      '.',
      'B',
      'a',
      'a/deep',
      'a/deep/file',
      `bytes:${Buffer.from('caf\xe9', 'latin1').toString('hex')}`,
      ...(isRoot ? ['console'] : []),
      'fifo',
      'ln',
      'setuid',
      'z',
      'B/w',
    ]);
    const group = entries.at(-1)!;
    expect(group).toMatchObject({ type: 'file', path: 'B/w', links: ['a/x', 'z/y'], size: 7 });
    expect(entries.find((e) => e.path === 'setuid')).toMatchObject({ mode: 0o4755 });
    expect(entries.find((e) => e.path === 'ln')).toMatchObject({ type: 'symlink', target: 'a/x' });
    expect(entries.find((e) => e.path === 'fifo')).toMatchObject({ type: 'fifo' });
    expect(entries.find((e) => e.path === 'a/deep/file')).toMatchObject({ mtime: 2_000_000_000 });
    if (isRoot) {
      expect(entries.find((e) => e.path === 'console')).toMatchObject({
        type: 'char',
        rdevMajor: 5,
        rdevMinor: 1,
      });
      expect(entries.find((e) => e.path === 'a/deep/file')).toMatchObject({ uid: 1234, gid: 5678 });
    }
  });

  it('forces owners, clamps mtimes, applies a prefix and a filter', async () => {
    const entries = await collect(
      entriesFromDirectory(src, {
        owner: { uid: 0, gid: 0 },
        clampMtime: 1_000_000_000,
        prefix: 'opt/agent',
        filter: (rel) => rel !== 'a/deep',
      }),
    );
    expect(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime! <= 1_000_000_000)).toBe(true);
    const paths = entries.map((e) => show(e.path));
    expect(paths[0]).toBe('opt/agent');
    expect(paths).toContain('opt/agent/a');
    expect(paths.some((p) => p.includes('deep'))).toBe(false);
    expect(entries.at(-1)).toMatchObject({
      path: 'opt/agent/B/w',
      links: ['opt/agent/a/x', 'opt/agent/z/y'],
    });
    const noRoot = await collect(entriesFromDirectory(src, { includeRoot: false }));
    expect(noRoot[0]!.path).toBe('B');
  });

  it('refuses a missing directory and a bad prefix', async () => {
    await expect(collect(entriesFromDirectory(join(work, 'missing')))).rejects.toMatchObject({
      code: 'IRB_CPIO_DIRECTORY_UNREADABLE',
    });
    await expect(collect(entriesFromDirectory(src, { prefix: '/abs' }))).rejects.toMatchObject({
      code: 'IRB_OPTION_INVALID',
    });
  });

  it('packs to a file through Node streams and GNU cpio extracts the same tree', async () => {
    const out = join(work, 'tree.cpio');
    await pipeline(toNodeReadable(packCpio(entriesFromDirectory(src))), createWriteStream(out));
    // Same tree, same bytes.
    const again = await concatStream(packCpio(entriesFromDirectory(src)));
    expect(Buffer.from(again).equals(await readFile(out))).toBe(true);
    // The non-blocking path (parallel read-ahead) gives the same bytes.
    const viaAsyncIo = await concatStream(packCpio(entriesFromDirectory(src, { syncIo: false })));
    expect(Buffer.from(viaAsyncIo).equals(await readFile(out))).toBe(true);

    const got = await readBack(fromNodeReadable(createReadStream(out)));
    const links = got.filter((e) => e.nlink === 3);
    expect(links.map((e) => [e.name, e.fileSize])).toEqual([
      ['B/w', 0],
      ['a/x', 0],
      ['z/y', 7],
    ]);
    expect(new Set(links.map((e) => e.ino)).size).toBe(1);

    const dest = join(work, 'extracted');
    await mkdir(dest);
    const r = spawnSync('sh', ['-c', `cpio -idm --no-absolute-filenames < '${out}'`], { cwd: dest });
    expect(r.status, String(r.stderr)).toBe(0);
    const [x, y, w] = await Promise.all(['a/x', 'z/y', 'B/w'].map((p) => lstat(join(dest, p))));
    expect(new Set([x!.ino, y!.ino, w!.ino]).size).toBe(1);
    expect(x!.nlink).toBe(3);
    expect(await readFile(join(dest, 'B/w'), 'utf8')).toBe('linked\n');
    expect((await lstat(join(dest, 'setuid'))).mode & 0o7777).toBe(0o4755);
    expect(await readlink(join(dest, 'ln'))).toBe('a/x');
    expect(await readFile(Buffer.from(`${dest}/caf\xe9`, 'latin1'), 'utf8')).toBe('latin1\n');
  });

  it('fails with a size mismatch when a file changes while packing', async () => {
    const dir = join(work, 'changing');
    await mkdir(dir);
    await writeFile(join(dir, 'f'), 'short');
    const entries = entriesFromDirectory(dir);
    async function* grow(): AsyncGenerator<CpioEntry> {
      for await (const e of entries) {
        if (e.path === 'f') await writeFile(join(dir, 'f'), 'much longer now');
        yield e;
      }
    }
    await expect(concatStream(packCpio(grow()))).rejects.toMatchObject({ code: 'IRB_CPIO_SIZE_MISMATCH' });
  });
});

describe('node stream adapters', () => {
  it('refuse text streams', async () => {
    const r = createReadStream(join(src, 'setuid'));
    r.setEncoding('utf8');
    const read = async () => {
      for await (const _ of readCpio(fromNodeReadable(r))) {
        // nothing
      }
    };
    await expect(read()).rejects.toMatchObject({ code: 'IRB_CPIO_INPUT_INVALID' });
  });
});
