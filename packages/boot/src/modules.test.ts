import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ArchiveModule,
  bootInitramfs,
  checkModuleReleases,
  checkNetDriver,
  inspectInitramfs,
  kernelModulesDir,
} from './index.ts';
import { moduleName } from './modules.ts';

const cache = process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache');
const X86 = '6.1.0-57-amd64';
const x86Modules = join(cache, 'irb', 'kernel', 'lib', 'modules', X86);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-boot-modules-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
/** The parts of a module file the checks read: an ELF start and a .modinfo string. */
const ko = (vermagic: string): Uint8Array =>
  text(`\x7fELF\x02\x01\x01\0padding\0license=GPL\0vermagic=${vermagic}\0name=x\0`);
const file = (path: string, body: Uint8Array): CpioEntry => ({
  type: 'file',
  path,
  mode: 0o644,
  size: body.length,
  body,
});

async function cpio(entries: CpioEntry[]): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of packCpio(entries)) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('inspectInitramfs', () => {
  it('lists modules under lib/modules and usr/lib/modules with their vermagic, through every compression', async () => {
    const gzip = await cpio([
      file(
        `lib/modules/${X86}/kernel/drivers/net/virtio_net.ko`,
        ko(`${X86} SMP preempt mod_unload modversions`),
      ),
      file(`lib/modules/${X86}/modules.dep`, text('')),
      file('lib/modules/README.ko', text('not under a release')),
    ]);
    const zstd = await cpio([
      file(`usr/lib/modules/${X86}/kernel/net/core/failover.ko.gz`, gzipSync(ko(`${X86} SMP`))),
    ]);
    const plain = join(dir, 'lz4-member.cpio');
    await writeFile(
      plain,
      await cpio([
        file(`lib/modules/${X86}/extra/virtio-pci.ko.zst`, zstdCompressSync(ko(`${X86} SMP`))),
        file(`lib/modules/${X86}/extra/vsock.ko.xz`, text('xz data irb does not read')),
      ]),
    );
    // The kernel's lz4 format, from the real lz4 tool.
    const lz4 = execFileSync('lz4', ['-l', '-c', plain]);
    const archive = join(dir, 'modules.cpio');
    await writeFile(archive, Buffer.concat([gzipSync(gzip), zstdCompressSync(zstd), new Uint8Array(4), lz4]));
    const info = await inspectInitramfs(archive);
    expect(info.modules.map((m) => [m.name, m.release, m.vermagic?.split(' ')[0]])).toEqual([
      ['virtio_net', X86, X86],
      ['failover', X86, X86],
      ['virtio_pci', X86, X86],
      ['vsock', X86, undefined],
    ]);
    expect(info.arch).toBeUndefined();
  });

  it('reads the vermagic of a real Debian module, and a later entry replaces an earlier one', async () => {
    const body = new Uint8Array(await readFile(join(x86Modules, 'kernel/drivers/net/virtio_net.ko')));
    const path = `lib/modules/${X86}/kernel/drivers/net/virtio_net.ko`;
    const archive = join(dir, 'real.cpio');
    await writeFile(
      archive,
      Buffer.concat([
        await cpio([file(path, body)]),
        await cpio([{ type: 'symlink', path, mode: 0o777, target: 'x' }]),
      ]),
    );
    expect((await inspectInitramfs(archive)).modules).toEqual([]);
    await writeFile(archive, await cpio([file(path, body)]));
    const [module] = (await inspectInitramfs(archive)).modules;
    expect(module?.vermagic).toMatch(new RegExp(`^${X86} SMP`));
  });

  it('finds a vermagic in the second 8 MiB block of an lz4 stream, after long and overlapping matches', async () => {
    // A module of 9 MiB whose vermagic sits in the second block, after text that compresses
    // into long and overlapping matches.
    const body = new Uint8Array(9 * 1024 * 1024 + 64);
    let at = 0;
    for (let i = 0; at < body.length - 128; i++) {
      const line = text(`${'a'.repeat(i % 97)}line ${i} ${(i * 7919) % 1000}\n`);
      body.set(line, at);
      at += line.length;
    }
    body.set(ko('6.1.0-42-amd64 SMP'), body.length - 64);
    const plain = join(dir, 'big.cpio');
    await writeFile(plain, await cpio([file(`lib/modules/${X86}/big.ko`, body)]));
    const archive = join(dir, 'big.cpio.lz4');
    const lz4 = execFileSync('lz4', ['-l', '-c', plain], { maxBuffer: 64 * 1024 * 1024 });
    await writeFile(archive, lz4);
    const [module] = (await inspectInitramfs(archive)).modules;
    expect(module?.vermagic).toBe('6.1.0-42-amd64 SMP');
  });
});

describe('checkModuleReleases', () => {
  const kernel = { path: '/boot/vmlinuz-6.1.0-57-amd64', release: X86 };
  const module = (release: string, vermagic?: string): ArchiveModule => ({
    path: `lib/modules/${release}/kernel/drivers/net/virtio_net.ko`,
    release,
    name: 'virtio_net',
    ...(vermagic ? { vermagic } : {}),
  });

  it('accepts no modules, or modules of the kernel release', () => {
    checkModuleReleases([], kernel);
    checkModuleReleases([module(X86, `${X86} SMP`), module('5.10.0-1-amd64', '5.10.0-1-amd64 SMP')], kernel);
    checkModuleReleases([module(X86)], kernel);
  });

  it('refuses modules of another release, naming both', () => {
    expect(() => checkModuleReleases([module('6.1.0-57-arm64')], kernel)).toThrow(
      expect.objectContaining({
        code: 'IRB_BOOT_MODULES_MISMATCH',
        message: `the archive's kernel modules are for 6.1.0-57-arm64 (lib/modules/6.1.0-57-arm64/) but the kernel /boot/vmlinuz-6.1.0-57-amd64 is ${X86}; boot the kernel they were built for, or rebuild the archive with the modules of ${X86}`,
      }),
    );
  });

  it('bootInitramfs checks the initramfsInfo a caller read, without reading the archive again', async () => {
    // An archive without modules, described as one with modules of another release: the
    // description is what is checked, before QEMU starts.
    const archive = join(dir, 'described.cpio');
    await writeFile(archive, await cpio([file('hello', text('hi'))]));
    const described = { modules: [module('6.1.0-57-arm64')] };
    await expect(
      bootInitramfs({
        kernel: join(cache, 'irb', 'kernel', 'boot', `vmlinuz-${X86}`),
        initramfs: archive,
        arch: 'auto',
        initramfsInfo: described,
      }),
    ).rejects.toMatchObject({ code: 'IRB_BOOT_MODULES_MISMATCH' });
    expect((await inspectInitramfs(archive)).modules).toEqual([]);
  });

  it("refuses a module whose vermagic names another release, even in the kernel's directory", () => {
    expect(() => checkModuleReleases([module(X86, '6.1.0-99-amd64 SMP preempt')], kernel)).toThrow(
      `the archive's module lib/modules/${X86}/kernel/drivers/net/virtio_net.ko was built for 6.1.0-99-amd64 (its vermagic) but the kernel /boot/vmlinuz-6.1.0-57-amd64 is ${X86}`,
    );
  });
});

describe('checkNetDriver', () => {
  const carried = (name: string): ArchiveModule => ({
    path: `lib/modules/${X86}/${name}.ko`,
    release: X86,
    name,
  });

  it("finds Debian's module tree beside the kernel, and /lib/modules only with modules.builtin", async () => {
    const kernel = { path: join(cache, 'irb', 'kernel', 'boot', `vmlinuz-${X86}`), release: X86 };
    expect(await kernelModulesDir(kernel)).toBe(
      join(cache, 'irb', 'kernel', 'boot', '..', 'lib', 'modules', X86),
    );
    expect(await kernelModulesDir({ path: '/nowhere/vmlinuz', release: '0.0-none' })).toBeUndefined();
    expect(await kernelModulesDir(kernel, dir)).toBeUndefined();
  });

  it('refuses when virtio_net or its transport is neither built in nor carried, naming them', async () => {
    const kernel = { path: join(cache, 'irb', 'kernel', 'boot', `vmlinuz-${X86}`), release: X86 };
    await expect(checkNetDriver([], kernel, 'pc')).rejects.toMatchObject({
      code: 'IRB_BOOT_NET_DRIVER_MISSING',
      message: `the guest would have no network: kernel ${X86} has virtio_net and virtio_pci as modules, not built in, and the archive lacks them under lib/modules/${X86}/; add virtio_net, virtio_pci (irb build --kernel-modules … --modules net)`,
    });
    await expect(checkNetDriver([carried('virtio_net')], kernel, 'microvm')).rejects.toThrow(
      /has virtio_mmio as modules.*lacks it/,
    );
    await checkNetDriver([carried('virtio_net'), carried('virtio_pci')], kernel, 'pc');
  });

  it('takes what modules.builtin lists as present, and checks nothing without it', async () => {
    const tree = join(dir, 'lib', 'modules', '9.9.9-test');
    await mkdir(tree, { recursive: true });
    await writeFile(
      join(tree, 'modules.builtin'),
      'kernel/drivers/net/virtio_net.ko\nkernel/drivers/virtio/virtio-pci.ko\n',
    );
    await checkNetDriver([], { path: join(dir, 'boot', 'vmlinuz-9.9.9-test'), release: '9.9.9-test' }, 'pc');
    await checkNetDriver([], { path: '/nowhere/vmlinuz', release: '9.9.9-none' }, 'pc');
    expect(moduleName('kernel/drivers/virtio/virtio-pci.ko.zst')).toBe('virtio_pci');
  });
});
