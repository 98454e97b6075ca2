// Files injected after the layers (bytes, host files and trees), and files read back from the
// rootfs.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { whiteout } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { build, byPath, d, emit, f, hl, sl } from '../test/helpers.ts';
import { parseInjectSpec } from './index.ts';

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
