// Boots archives made only with @irb/cpio's packCpio and @irb/compress in a real Linux kernel
// under QEMU: the kernel is the reader that matters most. (These tests live here because
// @irb/boot depends on @irb/compress: from there they would make a circle of packages.)
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type CompressionFormat,
  type CompressOptions,
  compress,
  memberJoint,
  trailerMember,
} from '@irb/compress';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootInitramfs, findKernel } from '../src/index.ts';

const BOOT_TIMEOUT = 240_000;
let dir: string;
let kernel: string;
let busybox: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-compress-boot-'));
  kernel = await findKernel();
  busybox = await readFile('/bin/busybox');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const file = (path: string, body: string | Uint8Array, mode: number, uid = 0, gid = 0): CpioEntry => {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { type: 'file', path, mode, uid, gid, size: bytes.length, body: bytes };
};

/** A minimal root: busybox, a few applet links, /dev/console, and an /init printing `marker`. */
function baseEntries(marker: string): CpioEntry[] {
  const init = [
    '#!/bin/sh',
    'mount -t proc proc /proc',
    // What the guest sees of a file with an owner and setuid bit from the archive.
    'echo "IRB-STAT $(stat -c %u:%g:%a /etc/owned) $(cat /etc/owned)"',
    '[ -f /etc/extra ] && echo "IRB-EXTRA $(cat /etc/extra)"',
    `echo ${marker}`,
    'poweroff -f',
    '',
  ].join('\n');
  return [
    { type: 'directory', path: 'bin', mode: 0o755 },
    file('bin/busybox', busybox, 0o755),
    ...['sh', 'mount', 'echo', 'stat', 'cat', 'poweroff'].map(
      (name): CpioEntry => ({ type: 'symlink', path: `bin/${name}`, mode: 0o777, target: 'busybox' }),
    ),
    { type: 'directory', path: 'dev', mode: 0o755 },
    { type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { type: 'directory', path: 'etc', mode: 0o755 },
    file('etc/owned', 'owned-by-1234', 0o4755, 1234, 5678),
    { type: 'directory', path: 'proc', mode: 0o755 },
    file('init', init, 0o755),
  ];
}

async function writeMember(
  path: string,
  entries: CpioEntry[],
  format: CompressionFormat,
  options: Partial<CompressOptions> & Parameters<typeof packCpio>[1] = {},
): Promise<void> {
  const { trailer, device, ...compression } = options;
  const cpio = packCpio(entries, {
    ...(trailer !== undefined ? { trailer } : {}),
    ...(device ? { device } : {}),
  });
  await pipeline(
    Readable.from(format === 'none' ? cpio : compress(cpio, { format, ...compression })),
    createWriteStream(path, { flags: 'a' }),
  );
}

async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  await pipeline(Readable.from([bytes]), createWriteStream(path, { flags: 'a' }));
}

async function boot(initramfs: string, marker: string) {
  const result = await bootInitramfs({
    kernel,
    initramfs,
    memoryMb: 256,
    timeoutMs: BOOT_TIMEOUT - 20_000,
    expect: marker,
  });
  const context = `${result.command.join(' ')}\n--- console ---\n${result.output.slice(-3000)}\n--- stderr ---\n${result.stderr}`;
  expect(result.panicked, context).toBe(false);
  expect(result.timedOut, context).toBe(false);
  expect(result.ok, context).toBe(true);
  // The marker line itself, not only the text somewhere in a kernel message.
  expect(result.output.split('\n').map((l) => l.trim())).toContain(marker);
  expect(result.output).toContain('IRB-STAT 1234:5678:4755 owned-by-1234');
  return result;
}

describe('boot in QEMU', () => {
  for (const format of ['gzip', 'zstd', 'lz4', 'none'] as const) {
    it(
      `boots a ${format} initramfs`,
      async () => {
        const path = join(dir, `initramfs-${format}`);
        const marker = `IRB-BOOT-OK-${format}`;
        await writeMember(path, baseEntries(marker), format);
        await boot(path, marker);
      },
      BOOT_TIMEOUT,
    );
  }

  it(
    'boots a concatenated initramfs: gzip member, then a zstd member adding a file',
    async () => {
      const path = join(dir, 'initramfs-concat');
      const marker = 'IRB-BOOT-OK-concat';
      await writeMember(path, baseEntries(marker), 'gzip');
      await writeMember(path, [file('etc/extra', 'from-the-second-member', 0o644)], 'zstd');
      const result = await boot(path, marker);
      expect(result.output).toContain('IRB-EXTRA from-the-second-member');
    },
    BOOT_TIMEOUT,
  );

  it(
    'boots an lz4 member followed by a gzip member: the joint (a zero word) is where the kernel stops the lz4 one',
    async () => {
      const path = join(dir, 'initramfs-lz4-concat');
      const marker = 'IRB-BOOT-OK-lz4-concat';
      // Over 8 MiB, so the lz4 member has two blocks.
      const filler = new Uint8Array(9 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
      await writeMember(path, [...baseEntries(marker), file('etc/filler', filler, 0o644)], 'lz4');
      await writeBytes(path, memberJoint('lz4', 'gzip', (await readFile(path)).length));
      await writeMember(path, [file('etc/extra', 'after-the-lz4-member', 0o644)], 'gzip');
      const result = await boot(path, marker);
      expect(result.output).toContain('IRB-EXTRA after-the-lz4-member');
      expect(result.output).not.toMatch(/Initramfs unpacking failed/);
    },
    BOOT_TIMEOUT,
  );

  it(
    'shows why the joint is there: without it the kernel reads the next member as lz4 blocks',
    async () => {
      const path = join(dir, 'initramfs-lz4-bare');
      const marker = 'IRB-BOOT-OK-lz4-bare';
      await writeMember(path, baseEntries(marker), 'lz4');
      await writeMember(path, [file('etc/extra', 'never-unpacked', 0o644)], 'gzip');
      const result = await bootInitramfs({
        kernel,
        initramfs: path,
        memoryMb: 256,
        timeoutMs: BOOT_TIMEOUT - 20_000,
        expect: marker,
      });
      expect(result.output).toMatch(/Initramfs unpacking failed/);
      expect(result.output).not.toContain('IRB-EXTRA never-unpacked');
    },
    BOOT_TIMEOUT,
  );

  it(
    "boots irb's layout: members without trailers across every change of compression, then the trailer member; hard links stay apart by device",
    async () => {
      const path = join(dir, 'initramfs-layout');
      const marker = 'IRB-BOOT-OK-layout';
      // Hard-linked pairs with the same inode number (1, the first of each member): in
      // members with their own device numbers, and in one that reuses the base's (0:0).
      const pair = (name: string, body: string): CpioEntry => {
        const bytes = new TextEncoder().encode(body);
        return {
          type: 'file',
          path: `${name}1`,
          mode: 0o644,
          size: bytes.length,
          body: bytes,
          links: [`${name}2`],
        };
      };
      const init = [
        '#!/bin/sh',
        'mount -t proc proc /proc',
        'echo "IRB-STAT $(stat -c %u:%g:%a /etc/owned) $(cat /etc/owned)"',
        'for n in a b c d; do echo "IRB-LINK $n $(cat /"$n"1) $(cat /"$n"2) $(stat -c %h /"$n"1)"; done',
        'echo "IRB-EXTRA $(cat /etc/extra)"',
        `echo ${marker}`,
        'poweroff -f',
        '',
      ].join('\n');
      const members: Array<[CpioEntry[], CompressionFormat, number]> = [
        [[pair('a', 'from-a'), ...baseEntries(marker).filter((e) => e.path !== 'init')], 'lz4', 0],
        [[pair('b', 'from-b')], 'gzip', 1],
        [[pair('c', 'from-c')], 'none', 2],
        [[pair('d', 'from-d')], 'zstd', 0],
        [[file('etc/extra', 'last-member', 0o644)], 'none', 4],
        [[file('init', init, 0o755)], 'lz4', 5],
      ];
      let previous: CompressionFormat | undefined;
      for (const [entries, format, minor] of members) {
        if (previous) await writeBytes(path, memberJoint(previous, format, (await readFile(path)).length));
        await writeMember(path, entries, format, { trailer: false, device: { major: 0, minor } });
        previous = format;
      }
      await writeBytes(path, trailerMember('lz4'));
      const result = await boot(path, marker);
      expect(result.output).toContain('IRB-EXTRA last-member');
      expect(result.output).not.toMatch(/Initramfs unpacking failed/);
      for (const n of ['b', 'c']) expect(result.output).toContain(`IRB-LINK ${n} from-${n} from-${n} 2`);
      // The same device and inode as the base's pair: the kernel links d1 to a1, and the body
      // meant for d2 lands in that one file. What a device per member prevents.
      expect(result.output).toContain('IRB-LINK d from-d from-d 4');
      expect(result.output).toMatch(/IRB-LINK a from-d from-d 4/);
    },
    BOOT_TIMEOUT,
  );
});
