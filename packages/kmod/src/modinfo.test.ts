import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { debianKernel } from '../test/helpers.ts';
import { modinfoRecords, readModinfo, releaseOfVermagic } from './modinfo.ts';
import { aliasMatches, moduleFileOf, nearest, normalizeAlias } from './names.ts';

/** A minimal ELF relocatable with a `.shstrtab` and a `.modinfo` section, of any class and byte order. */
function elf(is64: boolean, little: boolean, modinfo: string): Uint8Array {
  const names = new TextEncoder().encode('\0.shstrtab\0.modinfo\0');
  const info = new TextEncoder().encode(modinfo);
  const ehsize = is64 ? 64 : 52;
  const shentsize = is64 ? 64 : 40;
  const namesAt = ehsize;
  const infoAt = namesAt + names.length;
  const shoff = (infoAt + info.length + 7) & ~7;
  const bytes = new Uint8Array(shoff + 3 * shentsize);
  const view = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, little ? 1 : 2, 1]);
  const word = (at: number, v: number) =>
    is64 ? view.setBigUint64(at, BigInt(v), little) : view.setUint32(at, v, little);
  word(is64 ? 0x28 : 0x20, shoff);
  view.setUint16(is64 ? 0x3a : 0x2e, shentsize, little);
  view.setUint16(is64 ? 0x3c : 0x30, 3, little);
  view.setUint16(is64 ? 0x3e : 0x32, 1, little);
  bytes.set(names, namesAt);
  bytes.set(info, infoAt);
  const section = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * shentsize;
    view.setUint32(at, name, little);
    word(at + (is64 ? 24 : 16), offset);
    word(at + (is64 ? 32 : 20), size);
  };
  section(1, 1, namesAt, names.length);
  section(2, 11, infoAt, info.length);
  return bytes;
}

describe('.modinfo', () => {
  it.each([
    [true, true],
    [true, false],
    [false, true],
    [false, false],
  ])('reads ELF%s (64-bit: %s, little-endian: %s)', (is64, little) => {
    const bytes = elf(
      is64,
      little,
      'alias=fs-overlay\0depends=virtio,virtio-ring\0\0\0softdep=pre: crc32c post: x\0vermagic=6.1.0 SMP \0name=over-lay\0',
    );
    expect(readModinfo(bytes, 'm.ko')).toEqual({
      name: 'over_lay',
      vermagic: '6.1.0 SMP ',
      depends: ['virtio', 'virtio_ring'],
      aliases: ['fs_overlay'],
      softdeps: { pre: ['crc32c'], post: ['x'] },
    });
  });

  it("reads a real module of Debian's amd64 and arm64 kernels", async () => {
    for (const arch of ['amd64', 'arm64'] as const) {
      const kernel = debianKernel(arch);
      const info = readModinfo(
        await readFile(`${kernel.tree}/kernel/drivers/net/virtio_net.ko`),
        'virtio_net.ko',
      );
      expect(info.name).toBe('virtio_net');
      expect(releaseOfVermagic(info.vermagic ?? '')).toBe(kernel.release);
      expect(info.depends).toEqual(
        arch === 'amd64' ? ['virtio_ring', 'virtio', 'net_failover'] : ['net_failover'],
      );
      expect(info.aliases).toContain('virtio:d00000001v*');
    }
  });

  it('refuses what is not a module, naming it', () => {
    expect(() => modinfoRecords(new TextEncoder().encode('#!/bin/sh\n'.repeat(10)), 'x.ko')).toThrow(
      "x.ko: not an ELF file; the module file is damaged or not a kernel module — take the module tree from the kernel's own package",
    );
    const noInfo = elf(true, true, 'x=y\0');
    noInfo[noInfo.indexOf(0x6d, 60)] = 0x4d; // ".modinfo" → ".Modinfo"
    expect(() => modinfoRecords(noInfo, 'y.ko')).toThrow(/y\.ko: no \.modinfo section/);
  });
});

describe('names and aliases', () => {
  it('knows module files and their compression', () => {
    expect(moduleFileOf('kernel/drivers/char/hw_random/virtio-rng.ko.xz')).toEqual({
      name: 'virtio_rng',
      compression: 'xz',
    });
    expect(moduleFileOf('a/b.ko.zst')).toEqual({ name: 'b', compression: 'zstd' });
    expect(moduleFileOf('a/b.ko.gz')).toEqual({ name: 'b', compression: 'gzip' });
    expect(moduleFileOf('a/b.ko')).toEqual({ name: 'b', compression: 'none' });
    expect(moduleFileOf('modules.dep')).toBeUndefined();
    expect(moduleFileOf('a/b.ko.bz2')).toBeUndefined();
  });

  it('normalizes aliases outside brackets and matches them like fnmatch', () => {
    expect(normalizeAlias('fs-overlay')).toBe('fs_overlay');
    expect(normalizeAlias('of:N*T*Cfoo-bar[a-z]-x')).toBe('of:N*T*Cfoo_bar[a-z]_x');
    expect(aliasMatches('virtio:d00000001v*', 'virtio:d00000001v00001AF4')).toBe(true);
    expect(aliasMatches('pci:v*d[0-9]??x', 'pci:vABd7QQx')).toBe(true);
    expect(aliasMatches('pci:v*d[!0-9]x', 'pci:vABd7x')).toBe(false);
    expect(aliasMatches('a*b*c', 'aXXbYYc')).toBe(true);
    expect(aliasMatches('a*b*c', 'aXXbYY')).toBe(false);
    expect(aliasMatches('a\\*', 'a*')).toBe(true);
    expect(aliasMatches('a\\*', 'ab')).toBe(false);
  });

  it('suggests the nearest names', () => {
    const names = ['virtio_net', 'virtio_input', 'virtio_mem', 'vsock', 'net_failover'];
    expect(nearest('virtio-nett', names)).toEqual(['virtio_net']);
    expect(nearest('vsok', names)).toEqual(['vsock']);
    expect(nearest('failover', names)).toEqual(['net_failover']);
    expect(nearest('zzzzzz', names)).toEqual([]);
  });
});
