import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareKernelVersions,
  defaultKernelDirs,
  findKernel,
  hostArch,
  inspectKernel,
  kernelImageFormat,
} from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-boot-kernel-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('findKernel', () => {
  it('takes IRB_KERNEL first and refuses an unreadable one', async () => {
    const k = join(dir, 'my-kernel');
    await writeFile(k, 'x');
    expect(await findKernel({ env: { IRB_KERNEL: k }, searchDirs: [] })).toBe(k);
    await expect(findKernel({ env: { IRB_KERNEL: join(dir, 'missing') } })).rejects.toMatchObject({
      code: 'IRB_BOOT_KERNEL_NOT_FOUND',
      message: expect.stringContaining('IRB_KERNEL='),
    });
  });

  it('picks the newest vmlinuz-* of the first directory that has one', async () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    await mkdir(a);
    await mkdir(b);
    for (const v of ['6.1.0-9-amd64', '6.1.0-28-amd64', '5.10.0-30-amd64'])
      await writeFile(join(b, `vmlinuz-${v}`), v);
    await writeFile(join(b, 'config-6.9.0'), 'not a kernel');
    expect(await findKernel({ env: {}, searchDirs: [a, join(dir, 'none'), b] })).toBe(
      join(b, 'vmlinuz-6.1.0-28-amd64'),
    );
    await writeFile(join(a, 'vmlinuz-4.19.0'), 'old');
    expect(await findKernel({ env: {}, searchDirs: [a, b] })).toBe(join(a, 'vmlinuz-4.19.0'));
  });

  it('skips kernels it cannot read and says how to get one', async () => {
    const c = join(dir, 'c');
    await mkdir(c);
    await writeFile(join(c, 'vmlinuz-9.9'), 'x');
    await chmod(join(c, 'vmlinuz-9.9'), 0);
    const readableToUs = process.getuid?.() === 0; // root reads mode-0 files
    if (readableToUs) expect(await findKernel({ env: {}, searchDirs: [c] })).toBe(join(c, 'vmlinuz-9.9'));
    else
      await expect(findKernel({ env: {}, searchDirs: [c] })).rejects.toMatchObject({
        code: 'IRB_BOOT_KERNEL_NOT_FOUND',
      });
    await expect(findKernel({ env: {}, searchDirs: [join(dir, 'empty')] })).rejects.toThrow(/ensure-env\.sh/);
    // The hint also serves whoever installed irb from npm, who has no scripts/ directory.
    await expect(findKernel({ env: {}, searchDirs: [join(dir, 'empty')] })).rejects.toThrow(
      /installed from npm: a distribution kernel, e\.g\. the linux-image-(amd64|arm64) package's \/boot\/vmlinuz-\*/,
    );
  });

  it('looks in /boot, then the irb cache (XDG_CACHE_HOME respected)', () => {
    expect(defaultKernelDirs({ HOME: '/home/u' })).toEqual(['/boot', '/home/u/.cache/irb/kernel/boot']);
    expect(defaultKernelDirs({ HOME: '/home/u', XDG_CACHE_HOME: '/c' })).toEqual([
      '/boot',
      '/c/irb/kernel/boot',
    ]);
  });

  it('keeps a cache directory per architecture, /boot only for the host', () => {
    const other = hostArch() === 'x86_64' ? 'aarch64' : 'x86_64';
    const dirFor = (arch: string): string => (arch === 'x86_64' ? 'kernel' : `kernel-${arch}`);
    expect(defaultKernelDirs({ HOME: '/h' }, hostArch())).toEqual([
      '/boot',
      `/h/.cache/irb/${dirFor(hostArch())}/boot`,
    ]);
    expect(defaultKernelDirs({ HOME: '/h' }, other)).toEqual([`/h/.cache/irb/${dirFor(other)}/boot`]);
  });

  it('takes IRB_KERNEL_<ARCH> first; IRB_KERNEL only for the host architecture', async () => {
    const k = join(dir, 'arm-kernel');
    await writeFile(k, 'x');
    const h = join(dir, 'host-kernel');
    await writeFile(h, 'x');
    expect(await findKernel({ arch: 'aarch64', env: { IRB_KERNEL_AARCH64: k, IRB_KERNEL: h } })).toBe(k);
    expect(await findKernel({ arch: 'x86_64', env: { IRB_KERNEL_X86_64: k, IRB_KERNEL: h } })).toBe(k);
    expect(await findKernel({ arch: hostArch(), env: { IRB_KERNEL: h } })).toBe(h);
    const other = hostArch() === 'x86_64' ? 'aarch64' : 'x86_64';
    await expect(
      findKernel({ arch: other, env: { IRB_KERNEL: h }, searchDirs: [join(dir, 'empty')] }),
    ).rejects.toThrow(`set IRB_KERNEL_${other.toUpperCase()}=`);
  });

  it('orders versions like sort -V', () => {
    const sorted = ['6.1.0-28-amd64', '6.1.0-9-amd64', '6.10.1', '6.2', '5.10.0-30-amd64'].sort(
      compareKernelVersions,
    );
    expect(sorted).toEqual(['5.10.0-30-amd64', '6.1.0-9-amd64', '6.1.0-28-amd64', '6.2', '6.10.1']);
  });
});

describe('kernelImageFormat', () => {
  const image = async (name: string, marks: Array<[number, string]>, size = 4096): Promise<string> => {
    const bytes = Buffer.alloc(size);
    for (const [offset, text] of marks) bytes.write(text, offset, 'latin1');
    const path = join(dir, name);
    await writeFile(path, bytes);
    return path;
  };

  it('recognises the kernel images QEMU boots from their headers', async () => {
    expect(await kernelImageFormat(await findKernel())).toBe('bzImage');
    expect(
      await kernelImageFormat(
        await image('bz', [
          [0, 'MZ'],
          [0x202, 'HdrS'],
        ]),
      ),
    ).toBe('bzImage');
    expect(await kernelImageFormat(await image('Image', [[0x38, 'ARM\x64']]))).toBe('arm64-image');
    expect(
      await kernelImageFormat(
        await image('zboot', [
          [0, 'MZ'],
          [4, 'zimg'],
        ]),
      ),
    ).toBe('efi-zboot');
    expect(await kernelImageFormat(await image('vmlinux', [[0, '\x7fELF']]))).toBe('elf');
    expect(await kernelImageFormat(await image('Image.gz', [[0, '\x1f\x8b\x08']]))).toBe('gzip-image');
  });

  it('says undefined for anything else, short files included', async () => {
    expect(await kernelImageFormat(await image('text', [[0, 'hello, I am not a kernel']]))).toBeUndefined();
    expect(await kernelImageFormat(await image('pe', [[0, 'MZ']]))).toBeUndefined();
    expect(await kernelImageFormat(await image('short', [[0, 'MZ']], 0x100))).toBeUndefined();
    expect(await kernelImageFormat(await image('empty', [], 0))).toBeUndefined();
  });
});

describe('inspectKernel', () => {
  const release = (path: string): string => basename(path).replace(/^vmlinuz-/, '');

  it("reads a bzImage's architecture and release from its setup header", async () => {
    const kernel = await findKernel({ arch: 'x86_64' });
    expect(await inspectKernel(kernel)).toEqual({
      format: 'bzImage',
      arch: 'x86_64',
      release: release(kernel),
    });
    // Without the 64-bit entry flag (a 32-bit kernel) the architecture is not claimed.
    const head = new Uint8Array(await readFile(kernel)).slice(0, 65 * 512);
    head[0x236] = (head[0x236] ?? 0) & ~1;
    const path = join(dir, 'bzImage-32');
    await writeFile(path, head);
    expect(await inspectKernel(path)).toEqual({ format: 'bzImage', release: release(kernel) });
  });

  it('reads an arm64 Image, plain and gzip-compressed, from its magic and banner', async () => {
    const kernel = await findKernel({ arch: 'aarch64' });
    const info = await inspectKernel(kernel);
    expect(info).toMatchObject({ arch: 'aarch64', release: release(kernel) });
    expect(['arm64-image', 'gzip-image', 'efi-zboot']).toContain(info?.format);
    const image = info?.format === 'gzip-image' ? gunzipSync(await readFile(kernel)) : await readFile(kernel);
    const gz = join(dir, 'Image.gz');
    await writeFile(gz, gzipSync(image, { level: 1 }));
    expect(await inspectKernel(gz)).toEqual({
      format: 'gzip-image',
      arch: 'aarch64',
      release: release(kernel),
    });
  });

  it("reads an EFI zboot image's PE machine and the banner of its payload", async () => {
    const inner = Buffer.alloc(4096);
    inner.write('ARM\x64', 0x38, 'latin1');
    inner.write(
      'Linux version %s (%s)\0Linux version 6.6.0-zboot-arm64 (builder@host) #1 SMP\0',
      0x400,
      'latin1',
    );
    const payload = gzipSync(inner);
    const header = Buffer.alloc(0x200);
    header.write('MZ', 0, 'latin1');
    header.write('zimg', 4, 'latin1');
    header.writeUInt32LE(0x200, 8);
    header.writeUInt32LE(payload.length, 12);
    header.write('gzip', 24, 'latin1');
    header.writeUInt32LE(0x80, 0x3c);
    header.write('PE\0\0', 0x80, 'latin1');
    header.writeUInt16LE(0xaa64, 0x84);
    const path = join(dir, 'vmlinuz.efi');
    await writeFile(path, Buffer.concat([header, payload]));
    expect(await inspectKernel(path)).toEqual({
      format: 'efi-zboot',
      arch: 'aarch64',
      release: '6.6.0-zboot-arm64',
    });
  });

  it("reads an ELF's machine, and nothing from a file that is no kernel", async () => {
    expect(await inspectKernel('/bin/busybox')).toEqual({ format: 'elf', arch: hostArch() });
    const path = join(dir, 'not-a-kernel');
    await writeFile(path, 'hello');
    expect(await inspectKernel(path)).toBeUndefined();
  });
});
