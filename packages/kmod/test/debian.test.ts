// Debian 12's 6.1 kernels (amd64 and arm64) as scripts/ensure-env.sh leaves them: the .deb, and
// its lib/modules tree with modules.dep from depmod.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { debModuleSource } from '../src/deb.ts';
import { directoryModuleSource } from '../src/directory.ts';
import { parseModulesDep } from '../src/indexes.ts';
import { moduleFileOf } from '../src/names.ts';
import { resolveModules } from '../src/resolve.ts';
import type { ResolvedModules } from '../src/types.ts';
import { debianKernel, memberBytes, rejection } from './helpers.ts';

const PRESETS = ['net', 'vsock', 'console', 'blk', 'fs'] as const;
const PCI = ['virtio_pci_legacy_dev', 'virtio_pci_modern_dev'];

/** What each preset loads on Debian's 6.1 kernels, in load order. */
const EXPECTED: Record<'amd64' | 'arm64', Record<(typeof PRESETS)[number], string[]>> = {
  amd64: {
    net: [
      'failover',
      'net_failover',
      ...PCI,
      'virtio_ring',
      'virtio',
      'virtio_mmio',
      'virtio_net',
      'virtio_pci',
    ],
    vsock: [
      ...PCI,
      'virtio_ring',
      'virtio',
      'virtio_mmio',
      'virtio_pci',
      'vsock',
      'vmw_vsock_virtio_transport_common',
      'vmw_vsock_virtio_transport',
    ],
    console: [...PCI, 'virtio_ring', 'virtio', 'virtio_console', 'virtio_mmio', 'virtio_pci'],
    blk: [...PCI, 'virtio_ring', 'virtio', 'virtio_blk', 'virtio_mmio', 'virtio_pci'],
    fs: [
      '9pnet',
      'fuse',
      'netfs',
      'fscache',
      '9p',
      'overlay',
      ...PCI,
      'virtio_ring',
      'virtio',
      '9pnet_virtio',
      'virtio_mmio',
      'virtio_pci',
      'virtiofs',
    ],
  },
  // virtio and virtio_ring are built into the arm64 kernel: nothing to load for them.
  arm64: {
    net: ['failover', 'net_failover', 'virtio_mmio', 'virtio_net', ...PCI, 'virtio_pci'],
    vsock: [
      'virtio_mmio',
      ...PCI,
      'virtio_pci',
      'vsock',
      'vmw_vsock_virtio_transport_common',
      'vmw_vsock_virtio_transport',
    ],
    console: ['virtio_console', 'virtio_mmio', ...PCI, 'virtio_pci'],
    blk: ['virtio_blk', 'virtio_mmio', ...PCI, 'virtio_pci'],
    fs: [
      '9pnet',
      '9pnet_virtio',
      'fuse',
      'netfs',
      'fscache',
      '9p',
      'overlay',
      'virtio_mmio',
      ...PCI,
      'virtio_pci',
      'virtiofs',
    ],
  },
};

/** Every module comes after all that modules.dep says it needs, and the set is closed. */
async function expectDepOrder(set: ResolvedModules, tree: string): Promise<void> {
  const dep = parseModulesDep(await readFile(`${tree}/modules.dep`, 'utf8'));
  const needs = new Map(
    dep.map((l) => [moduleFileOf(l.path)?.name, l.deps.map((d) => moduleFileOf(d)?.name)]),
  );
  const position = new Map(set.modules.map((m, i) => [m.name, i]));
  for (const [i, module] of set.modules.entries()) {
    for (const d of needs.get(module.name) ?? []) {
      expect(position.get(d as string), `${d} before ${module.name}`).toBeLessThan(i);
    }
  }
}

describe.each(['amd64', 'arm64'] as const)('Debian 6.1 %s', (arch) => {
  const kernel = debianKernel(arch);

  it.each(PRESETS)(
    'preset %s: the closure from modules.dep, dependencies first, every file with its vermagic',
    async (preset) => {
      const set = await resolveModules(directoryModuleSource(kernel.tree), {
        modules: [preset],
        sourceDateEpoch: 0,
      });
      expect(set.release).toBe(kernel.release);
      expect(set.index).toBe('modules.dep');
      expect(set.modules.map((m) => m.name)).toEqual(EXPECTED[arch][preset]);
      await expectDepOrder(set, kernel.tree);
      // None of the preset modules has a soft dependency on these kernels.
      expect(set.missingSoftdeps).toEqual([]);
      expect(set.modules.every((m) => m.reason !== 'softdep')).toBe(true);
      for (const m of set.modules) {
        expect(m.vermagic.startsWith(`${kernel.release} SMP`), m.vermagic).toBe(true);
        expect(m.release).toBe(kernel.release);
        expect(m.path).toBe(`usr/lib/modules/${m.sourcePath.slice('lib/modules/'.length)}`);
        expect(m.compression).toBe('none');
      }
      expect(set.loadList).toEqual(set.modules.map((m) => `/${m.path}`));
      expect(set.key).toMatch(/^sha256:[0-9a-f]{64}$/);
    },
  );

  it('names a builtin module without complaint, and an unknown one with did-you-mean', async () => {
    const source = directoryModuleSource(kernel.root);
    const builtin = arch === 'arm64' ? 'virtio_ring' : 'unix';
    const set = await resolveModules(source, { modules: [builtin, 'fs-overlay'] });
    expect(set.builtin).toEqual([builtin]);
    expect(set.modules.map((m) => m.name)).toEqual(['overlay']);
    expect(set.requests.map((r) => r.kind)).toEqual(['builtin', 'alias']);
    const e = await rejection(resolveModules(source, { modules: ['net', 'virtio-nett'] }));
    expect(e.code).toBe('IRB_KMOD_MODULE_UNKNOWN');
    expect(e.message).toContain('did you mean virtio_net?');
    expect(e.message).not.toContain('\n');
  });

  it('the .deb (dependencies from each .modinfo) gives the same set, order, key and member bytes as the depmod tree', async () => {
    const words = [...PRESETS];
    const fromTree = await resolveModules(directoryModuleSource(kernel.tree), { modules: words });
    const fromDeb = await resolveModules(debModuleSource(kernel.deb), { modules: words });
    expect(fromDeb.index).toBe('modinfo');
    expect(fromDeb.modules).toEqual(fromTree.modules);
    expect(fromDeb.key).toBe(fromTree.key);
    expect(Buffer.from(await memberBytes(fromDeb)).equals(Buffer.from(await memberBytes(fromTree)))).toBe(
      true,
    );
    // The same holds for the tree itself read module by module.
    const fromModinfo = await resolveModules(directoryModuleSource(kernel.tree), {
      modules: words,
      index: 'modinfo',
    });
    expect(fromModinfo.index).toBe('modinfo');
    expect(fromModinfo.modules).toEqual(fromTree.modules);
  }, 240_000);
});
