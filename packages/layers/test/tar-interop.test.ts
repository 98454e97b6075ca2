import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { indexLayers } from '../src/index.ts';
import { byPath, emit, layerOf } from './helpers.ts';

/*
 * Layers written by the real archivers (GNU tar in gnu/posix formats with every sparse
 * version, bsdtar pax) must come out exactly like the files they were made from: names that
 * are not UTF-8, long names and link targets, hard links, sparse files, big owners.
 */

const run = promisify(execFile);
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const latinName = Buffer.from('caf\xe9-\xff', 'latin1');
const longDir = `${'d'.repeat(120)}/${'e'.repeat(120)}`;
const longTarget = `/${'t'.repeat(180)}/target`;
const SPARSE_SIZE = 3 * 1024 * 1024 + 77;

let dir: string;
let src: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-layers-interop-'));
  src = join(dir, 'src');
  await mkdir(join(src, longDir), { recursive: true });
  await writeFile(join(src, 'plain'), 'plain text\n');
  await writeFile(Buffer.concat([Buffer.from(`${src}/`), latinName]), 'latin-1 name');
  await writeFile(join(src, longDir, 'file'), 'deep');
  await symlink(longTarget, join(src, 'longlink'));
  await link(join(src, 'plain'), join(src, longDir, 'hardlink-to-plain'));
  await writeFile(join(src, 'suid'), '#!/bin/sh\n');
  await chmod(join(src, 'suid'), 0o4755);
  const handle = await open(join(src, 'sparse'), 'w');
  await handle.truncate(SPARSE_SIZE);
  await handle.write(Buffer.alloc(4096, 0x61), 0, 4096, 65_536);
  await handle.write(Buffer.alloc(10_000, 0x62), 0, 10_000, 1_048_576);
  await handle.write(Buffer.from('end'), 0, 3, SPARSE_SIZE - 3);
  await handle.close();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const archivers: Array<[string, string, string[]]> = [
  ['GNU tar, gnu format, sparse', 'tar', ['--format=gnu', '--sparse']],
  ['GNU tar, posix format, sparse 1.0', 'tar', ['--format=posix', '--sparse', '--sparse-version=1.0']],
  ['GNU tar, posix format, sparse 0.1', 'tar', ['--format=posix', '--sparse', '--sparse-version=0.1']],
  ['GNU tar, posix format, sparse 0.0', 'tar', ['--format=posix', '--sparse', '--sparse-version=0.0']],
  ['bsdtar, pax format', 'bsdtar', ['--format=pax', '--read-sparse']],
];

describe('layers written by real archivers', () => {
  test.each(archivers)('%s', async (_name, tool, flags) => {
    const out = join(dir, `${tool}-${flags.join('').replace(/\W/g, '')}.tar`);
    const owner =
      tool === 'tar' ? ['--owner=3000000', '--group=42', '--numeric-owner'] : ['--uid=3000000', '--gid=42'];
    await run(tool, ['-c', '-f', out, ...flags, ...owner, '-C', src, '.']);
    const rootfs = await indexLayers([layerOf(new Uint8Array(await readFile(out)), undefined, 65_536)]);
    const output = byPath(await emit(rootfs));

    expect(output.get('plain')?.body?.toString()).toBe('plain text\n');
    expect(output.get('plain')?.entry).toMatchObject({ uid: 3_000_000, gid: 42 });
    expect(rootfs.lookup('plain')?.nlink).toBe(2);
    expect(output.get(`${longDir}/hardlink-to-plain`)?.body?.toString()).toBe('plain text\n');
    expect(output.get(`${longDir}/file`)?.body?.toString()).toBe('deep');
    expect(output.get('longlink')?.entry).toMatchObject({ type: 'symlink', target: longTarget });
    expect(output.get('suid')?.entry.mode).toBe(0o4755);

    const latin = output.get(`bytes:${latinName.toString('hex')}`);
    expect(latin?.entry.path).toEqual(new Uint8Array(latinName));
    expect(latin?.body?.toString()).toBe('latin-1 name');

    const sparse = output.get('sparse');
    expect(sparse?.entry).toMatchObject({ type: 'file', size: SPARSE_SIZE });
    expect(sha(sparse?.body as Buffer)).toBe(sha(await readFile(join(src, 'sparse'))));
  });
});
