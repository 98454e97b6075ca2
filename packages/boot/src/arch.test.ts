import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { elfArch, elfHeader, hostArch, initramfsArch, initramfsInitElf } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-boot-arch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The first 20 bytes of a little-endian 64-bit ELF header with this e_machine. */
function elf(machine: number): Uint8Array {
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  h[16] = 2; // ET_EXEC
  h[18] = machine & 0xff;
  h[19] = machine >> 8;
  return h;
}

async function cpio(entries: CpioEntry[]): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of packCpio(entries)) chunks.push(c);
  return Buffer.concat(chunks);
}

const file = (path: string, body: Uint8Array): CpioEntry => ({
  type: 'file',
  path,
  mode: 0o755,
  size: body.length,
  body,
});
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('elfArch', () => {
  it('reads e_machine of x86_64 and aarch64 ELF files, and nothing else', () => {
    expect(elfArch(elf(62))).toBe('x86_64');
    expect(elfArch(elf(183))).toBe('aarch64');
    expect(elfArch(elf(40))).toBeUndefined(); // 32-bit ARM
    expect(elfArch(text('#!/bin/sh\n'))).toBeUndefined();
    expect(elfArch(new Uint8Array(4))).toBeUndefined();
  });

  it('tells machine, class and byte order of any ELF header', () => {
    expect(elfHeader(elf(243))).toEqual({ machine: 243, bits: 64, littleEndian: true });
    const big = elf(22);
    big[4] = 1;
    big[5] = 2;
    big[18] = 0;
    big[19] = 22;
    expect(elfHeader(big)).toEqual({ machine: 22, bits: 32, littleEndian: false });
    expect(elfHeader(text('#!/bin/sh\n'.padEnd(20)))).toBeUndefined();
  });

  it('knows the host', () => {
    expect(hostArch()).toBe(process.arch === 'arm64' ? 'aarch64' : 'x86_64');
  });
});

describe('initramfsArch', () => {
  it('reads /init of a plain archive, following symlinks and a script interpreter', async () => {
    const plain = join(dir, 'plain.cpio');
    await writeFile(plain, await cpio([file('init', elf(183))]));
    expect(await initramfsArch(plain)).toBe('aarch64');

    const script = join(dir, 'script.cpio');
    await writeFile(
      script,
      await cpio([
        { type: 'directory', path: 'bin', mode: 0o755 },
        { type: 'directory', path: 'usr', mode: 0o755 },
        { type: 'directory', path: 'usr/bin', mode: 0o755 },
        file('usr/bin/busybox', elf(62)),
        { type: 'symlink', path: 'bin/sh', mode: 0o777, target: '../usr/bin/busybox' },
        { type: 'symlink', path: 'init', mode: 0o777, target: 'sbin/real-init' },
        { type: 'directory', path: 'sbin', mode: 0o755 },
        file('sbin/real-init', text('#! /bin/sh -e\necho hi\n')),
      ]),
    );
    expect(await initramfsArch(script)).toBe('x86_64');
  });

  it('reads gzip and zstd members and lets a later /init replace an earlier one, as the kernel does', async () => {
    const base = gzipSync(await cpio([file('init', elf(62)), file('bin/x', new Uint8Array(10_000))]));
    const overlay = zstdCompressSync(await cpio([file('init', elf(183))]));
    const path = join(dir, 'two.cpio');
    // Members may be separated by zero padding.
    await writeFile(path, Buffer.concat([base, new Uint8Array(3), overlay]));
    expect(await initramfsArch(path)).toBe('aarch64');
    const gzOnly = join(dir, 'gz.cpio');
    await writeFile(gzOnly, base);
    expect(await initramfsArch(gzOnly)).toBe('x86_64');
  });

  it("reads lz4 members in the kernel's legacy format (lz4 -l), ended by a zero word or by the data's end", async () => {
    // Compressible and larger than one 8 MiB block: several blocks, matches that overlap.
    const filler = new Uint8Array(9 * 1024 * 1024).map((_, i) => (i % 7919) & 0xff);
    const archive = await cpio([file('bin/filler', filler), file('init', elf(243))]);
    const lz4 = spawnSync('lz4', ['-l', '-c'], { input: archive, maxBuffer: 64 * 1024 * 1024 });
    expect(lz4.status, String(lz4.stderr)).toBe(0);
    const path = join(dir, 'lz4.cpio');
    await writeFile(path, lz4.stdout);
    expect(await initramfsInitElf(path)).toEqual({ machine: 243, bits: 64, littleEndian: true });
    // A zero word, then a gzip member with the /init that wins.
    const later = gzipSync(await cpio([file('init', elf(183))]));
    await writeFile(path, Buffer.concat([lz4.stdout, new Uint8Array(4), later]));
    expect(await initramfsArch(path)).toBe('aarch64');
  });

  it('gives what was read before the damage, as the kernel unpacks up to it', async () => {
    const base = gzipSync(await cpio([file('init', elf(183))]));
    const path = join(dir, 'damaged.cpio');
    await writeFile(path, Buffer.concat([base, text('junk, not a member')]));
    expect(await initramfsArch(path)).toBe('aarch64');
    // A member cut short: the entries before the cut stand.
    const plain = await cpio([file('init', elf(62)), file('bin/x', new Uint8Array(10_000))]);
    await writeFile(path, plain.subarray(0, plain.length - 5000));
    expect(await initramfsArch(path)).toBe('x86_64');
  });

  it('says undefined when it cannot tell', async () => {
    const none = join(dir, 'none.cpio');
    await writeFile(none, await cpio([file('bin/sh', elf(62))]));
    expect(await initramfsArch(none)).toBeUndefined();
    const garbage = join(dir, 'garbage');
    await writeFile(garbage, text('not an archive at all'));
    expect(await initramfsArch(garbage)).toBeUndefined();
    expect(await initramfsArch(join(dir, 'missing'))).toBeUndefined();
  });
});
