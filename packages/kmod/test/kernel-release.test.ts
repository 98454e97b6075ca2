// Kernel images' releases: Debian's x86 bzImage, its arm64 Image, and that Image gzip-compressed
// (what some arm64 distributions ship as vmlinuz) or wrapped as an EFI zboot image.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkKernelRelease, kernelRelease } from '../src/kernel-release.ts';
import { debianKernel, rejection } from './helpers.ts';

const amd64 = debianKernel('amd64');
const arm64 = debianKernel('arm64');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-kmod-kernel-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kernelRelease', () => {
  it('reads the version string a bzImage setup header points to', async () => {
    expect(await kernelRelease(amd64.vmlinuz)).toBe(amd64.release);
  });

  it('finds the banner in an arm64 Image, plain or gzip-compressed', async () => {
    expect(await kernelRelease(arm64.vmlinuz)).toBe(arm64.release);
    const gz = join(dir, 'vmlinuz.gz');
    await pipeline(createReadStream(arm64.vmlinuz), createGzip({ level: 1 }), createWriteStream(gz));
    expect(await kernelRelease(gz)).toBe(arm64.release);
  });

  it('decompresses the payload of an EFI zboot image', async () => {
    // zboot-header.S: "MZ", "zimg" at 4, payload offset and size at 8 and 12, the compression at 24.
    const payload = gzipSync(
      Buffer.concat([
        Buffer.alloc(100_000, 7),
        Buffer.from('%s version %s\0Linux version 6.6.6-zboot (x@y) #1\0'),
      ]),
    );
    const header = Buffer.alloc(512);
    header.write('MZ', 0);
    header.write('zimg', 4);
    header.writeUInt32LE(512, 8);
    header.writeUInt32LE(payload.length, 12);
    header.write('gzip', 24);
    const path = join(dir, 'zboot.efi');
    await writeFile(path, Buffer.concat([header, payload]));
    expect(await kernelRelease(path)).toBe('6.6.6-zboot');
    header.write('lzma\0', 24);
    await writeFile(path, Buffer.concat([header, payload]));
    expect((await rejection(kernelRelease(path))).message).toContain(
      'an EFI zboot image with a lzma payload',
    );
  });

  it('refuses what is no kernel image', async () => {
    const e = await rejection(kernelRelease(join(amd64.tree, 'modules.dep')));
    expect(e.code).toBe('IRB_BOOT_KERNEL_INVALID');
    expect((await rejection(kernelRelease(join(dir, 'nothing')))).code).toBe('IRB_BOOT_KERNEL_NOT_FOUND');
    const head = Buffer.from(await readFile(arm64.vmlinuz)).subarray(0, 4096);
    await writeFile(join(dir, 'cut'), head);
    expect((await rejection(kernelRelease(join(dir, 'cut')))).message).toContain(
      'no "Linux version" banner found',
    );
  });
});

describe('checkKernelRelease', () => {
  it('passes for the same release and names both releases otherwise', async () => {
    await checkKernelRelease(amd64.vmlinuz, amd64.release);
    const e = await rejection(checkKernelRelease(amd64.vmlinuz, arm64.release));
    expect(e.code).toBe('IRB_KMOD_RELEASE_MISMATCH');
    expect(e.message).toBe(
      `the archive's kernel modules are for ${arm64.release}, but ${amd64.vmlinuz} is ${amd64.release}; boot a ${arm64.release} kernel or rebuild with the modules of ${amd64.release}`,
    );
  });
});
