// Tar streams, compressed modules, keeping them compressed, and every bad input's one line —
// on trees made from Debian's real amd64 modules (compressed here with gzip, xz and zstd, and
// indexed by the real depmod).
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { debModuleSource } from '../src/deb.ts';
import { directoryModuleSource } from '../src/directory.ts';
import { moduleEntries } from '../src/entries.ts';
import { resolveModules } from '../src/resolve.ts';
import { tarModuleSource } from '../src/tar-source.ts';
import { debianKernel, memberBytes, rejection } from './helpers.ts';

const amd64 = debianKernel('amd64');
const arm64 = debianKernel('arm64');
const R = amd64.release;
/** The net preset's modules on amd64, and how each is stored in the test trees. */
const NET: Record<string, 'xz' | 'zstd' | 'none'> = {
  'kernel/drivers/net/virtio_net.ko': 'xz',
  'kernel/drivers/net/net_failover.ko': 'none',
  'kernel/net/core/failover.ko': 'none',
  'kernel/drivers/virtio/virtio.ko': 'zstd',
  'kernel/drivers/virtio/virtio_ring.ko': 'xz',
  'kernel/drivers/virtio/virtio_pci.ko': 'zstd',
  'kernel/drivers/virtio/virtio_pci_legacy_dev.ko': 'none',
  'kernel/drivers/virtio/virtio_pci_modern_dev.ko': 'none',
  'kernel/drivers/virtio/virtio_mmio.ko': 'none',
};
const SUFFIX = { xz: '.xz', zstd: '.zst', gzip: '.gz', none: '' } as const;

let dir: string;
/** A root with lib/modules/<R> of compressed modules and a modules.dep from depmod. */
let compressedRoot: string;
const sh = (cmd: string, args: string[], cwd?: string) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
const fileStream = (path: string) => () => createReadStream(path) as AsyncIterable<Uint8Array>;

async function makeTree(
  root: string,
  compress: (path: string) => 'xz' | 'zstd' | 'gzip' | 'none',
  depmod: boolean,
) {
  const tree = join(root, 'lib', 'modules', R);
  for (const [path] of Object.entries(NET)) {
    await mkdir(dirname(join(tree, path)), { recursive: true });
    await cp(join(amd64.tree, path), join(tree, path));
    const how = compress(path);
    // The kernel's own way: xz with CRC32 and a 1 MiB dictionary (scripts/Makefile.modinst).
    if (how === 'xz') sh('xz', ['--check=crc32', '--lzma2=dict=1MiB', join(tree, path)]);
    if (how === 'zstd') sh('zstd', ['-q', '--rm', join(tree, path)]);
    if (how === 'gzip') sh('gzip', ['-n', join(tree, path)]);
  }
  for (const name of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order'])
    await cp(join(amd64.tree, name), join(tree, name));
  if (depmod) sh('depmod', ['-b', root, R]);
  return tree;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-kmod-sources-'));
  compressedRoot = join(dir, 'compressed');
  await makeTree(compressedRoot, (p) => NET[p] as 'xz' | 'zstd' | 'none', true);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('compressed modules and tar streams', () => {
  it('decompresses .ko.xz and .ko.zst at build time: the member is the one of the plain tree', async () => {
    const plain = await resolveModules(directoryModuleSource(amd64.tree), { modules: ['net'] });
    const packed = await resolveModules(directoryModuleSource(compressedRoot), { modules: ['net'] });
    expect(packed.modules.map((m) => m.sourcePath.slice(`lib/modules/${R}/`.length))).toEqual(
      plain.modules.map(
        (m) =>
          `${m.sourcePath.slice(`lib/modules/${R}/`.length)}${SUFFIX[NET[m.sourcePath.slice(`lib/modules/${R}/`.length)] ?? 'none']}`,
      ),
    );
    expect(packed.modules.map(({ sourcePath, ...m }) => m)).toEqual(
      plain.modules.map(({ sourcePath, ...m }) => m),
    );
    expect(packed.key).toBe(plain.key);
    expect(Buffer.from(await memberBytes(packed)).equals(Buffer.from(await memberBytes(plain)))).toBe(true);
  });

  it.each([
    ['tar.xz, modules .ko.xz inside (LinuxKit-style kernel.tar)', ['-cJf']],
    ['tar.zst', ['--zstd', '-cf']],
    ['tar.gz', ['-czf']],
    ['plain tar', ['-cf']],
  ])('reads a %s in one pass, keeping what it meets', async (_what, flags) => {
    const tar = join(dir, `tree-${flags.join('')}.tar`);
    sh('tar', ['-C', compressedRoot, ...flags, tar, 'lib']);
    const source = tarModuleSource({ open: fileStream(tar), label: 'kernel.tar' });
    const set = await resolveModules(source, { modules: ['net'] });
    const plain = await resolveModules(directoryModuleSource(amd64.tree), { modules: ['net'] });
    expect(set.index).toBe('modules.dep');
    expect(set.key).toBe(plain.key);
    expect(Buffer.from(await memberBytes(set)).equals(Buffer.from(await memberBytes(plain)))).toBe(true);
  });

  it('reads a tree below a root in the tar, and without modules.dep derives it from .modinfo (gzip modules too)', async () => {
    const root = join(dir, 'gz');
    await makeTree(
      join(root, 'rootfs'),
      (p) => (p.endsWith('virtio.ko') ? 'gzip' : (NET[p] as 'xz' | 'zstd' | 'none')),
      false,
    );
    const tar = join(dir, 'rootfs.tar');
    sh('tar', ['-C', root, '-cf', tar, 'rootfs']);
    const set = await resolveModules(
      tarModuleSource({ open: fileStream(tar), label: 'layer', root: 'rootfs' }),
      {
        modules: ['net'],
      },
    );
    expect(set.index).toBe('modinfo');
    const plain = await resolveModules(directoryModuleSource(amd64.tree), { modules: ['net'] });
    expect(set.key).toBe(plain.key);
    // A directory without modules.dep is an error unless asked to read every module.
    const e = await rejection(
      resolveModules(directoryModuleSource(join(root, 'rootfs')), { modules: ['net'] }),
    );
    expect(e.code).toBe('IRB_KMOD_INDEX_MISSING');
    expect(e.message).toMatch(
      /has no modules\.dep for 6\.1\.0-57-amd64 \(depmod did not run\); run depmod -b <root> 6\.1\.0-57-amd64/,
    );
    const derived = await resolveModules(directoryModuleSource(join(root, 'rootfs')), {
      modules: ['net'],
      index: 'modinfo',
    });
    expect(derived.key).toBe(plain.key);
  });

  it('keeps modules compressed only where the kernel decompresses them itself', async () => {
    const kept = await resolveModules(directoryModuleSource(compressedRoot), {
      modules: ['net'],
      compressed: 'keep',
    });
    const net = kept.modules.find((m) => m.name === 'virtio_net');
    expect(net).toMatchObject({
      compression: 'xz',
      path: `usr/lib/modules/${R}/kernel/drivers/net/virtio_net.ko.xz`,
    });
    expect(net?.size).toBe(
      (await readFile(join(compressedRoot, 'lib/modules', R, 'kernel/drivers/net/virtio_net.ko.xz'))).length,
    );
    expect(kept.warnings).toEqual([
      `kept xz, zstd-compressed modules without boot/config-${R} to confirm that the kernel decompresses them (CONFIG_MODULE_DECOMPRESS)`,
    ]);
    const plain = await resolveModules(directoryModuleSource(compressedRoot), { modules: ['net'] });
    expect(kept.key).not.toBe(plain.key);

    await mkdir(join(compressedRoot, 'boot'), { recursive: true });
    const config = join(compressedRoot, 'boot', `config-${R}`);
    try {
      // Debian's own config: CONFIG_MODULE_COMPRESS_NONE, so no CONFIG_MODULE_DECOMPRESS.
      await writeFile(config, 'CONFIG_MODULE_COMPRESS_NONE=y\n# CONFIG_MODULE_COMPRESS_XZ is not set\n');
      const e = await rejection(
        resolveModules(directoryModuleSource(compressedRoot), { modules: ['net'], compressed: 'keep' }),
      );
      expect(e.code).toBe('IRB_KMOD_COMPRESSION_UNSUPPORTED');
      expect(e.message).toContain(`kernel ${R} cannot load xz-compressed modules itself`);
      // The kernel decompresses one algorithm: xz here, so the zstd modules cannot stay.
      await writeFile(config, 'CONFIG_MODULE_DECOMPRESS=y\nCONFIG_MODULE_COMPRESS_XZ=y\n');
      const zstd = await rejection(
        resolveModules(directoryModuleSource(compressedRoot), { modules: ['net'], compressed: 'keep' }),
      );
      expect(zstd.message).toContain(
        'cannot load zstd-compressed modules itself (it needs CONFIG_MODULE_DECOMPRESS=y and CONFIG_MODULE_COMPRESS_ZSTD=y)',
      );
      const xzOnly = await resolveModules(directoryModuleSource(compressedRoot), {
        modules: ['virtio_ring'],
        compressed: 'keep',
      });
      expect(xzOnly.modules.map((m) => [m.name, m.compression])).toEqual([['virtio_ring', 'xz']]);
      expect(xzOnly.warnings).toEqual([]);
    } finally {
      await rm(join(compressedRoot, 'boot'), { recursive: true });
    }
  });
});

describe('bad input, one line each', () => {
  it('several releases: the caller picks one; a release that is not there lists those that are', async () => {
    const root = join(dir, 'two');
    await cp(compressedRoot, root, { recursive: true });
    await cp(join(root, 'lib/modules', R), join(root, 'lib/modules', '9.9.9-other'), { recursive: true });
    const several = await rejection(resolveModules(directoryModuleSource(root), { modules: ['net'] }));
    expect(several.code).toBe('IRB_KMOD_RELEASE_REQUIRED');
    expect(several.message).toBe(
      `${root} holds modules of several kernel releases (${R}, 9.9.9-other); choose one with the release option`,
    );
    const tar = join(dir, 'two.tar');
    sh('tar', ['-C', root, '-cf', tar, 'lib']);
    const none = await rejection(
      resolveModules(tarModuleSource({ open: fileStream(tar), label: 'two.tar' }), {
        modules: ['net'],
        release: '1.0',
      }),
    );
    expect(none.code).toBe('IRB_KMOD_RELEASE_NOT_FOUND');
    expect(none.message).toBe(
      `two.tar has no modules of release 1.0; it has ${R}, 9.9.9-other — choose one of them`,
    );
    const picked = await resolveModules(directoryModuleSource(root), { modules: ['net'], release: R });
    expect(picked.release).toBe(R);
  });

  it('a module modules.dep names is missing from the tree', async () => {
    const root = join(dir, 'missing');
    await cp(compressedRoot, root, { recursive: true });
    await rm(join(root, 'lib/modules', R, 'kernel/net/core/failover.ko'));
    const e = await rejection(resolveModules(directoryModuleSource(root), { modules: ['net'] }));
    expect(e.code).toBe('IRB_KMOD_FILE_MISSING');
    expect(e.message).toMatch(
      /modules\.dep names lib\/modules\/6\.1\.0-57-amd64\/kernel\/net\/core\/failover\.ko \(failover\), which the tree lacks/,
    );
  });

  it("a module built for another release than its tree's", async () => {
    const root = join(dir, 'foreign');
    await cp(compressedRoot, root, { recursive: true });
    await cp(
      join(arm64.tree, 'kernel/drivers/net/net_failover.ko'),
      join(root, 'lib/modules', R, 'kernel/drivers/net/net_failover.ko'),
    );
    const e = await rejection(resolveModules(directoryModuleSource(root), { modules: ['net'] }));
    expect(e.code).toBe('IRB_KMOD_RELEASE_MISMATCH');
    expect(e.message).toContain(
      `kernel/drivers/net/net_failover.ko was built for ${arm64.release}, not ${R}`,
    );
  });

  it('damaged and mislabelled module files, and sources that hold no tree', async () => {
    const root = join(dir, 'damaged');
    await cp(compressedRoot, root, { recursive: true });
    const xz = join(root, 'lib/modules', R, 'kernel/drivers/net/virtio_net.ko.xz');
    const bytes = await readFile(xz);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] as number) ^ 0xff;
    await writeFile(xz, bytes);
    const e = await rejection(resolveModules(directoryModuleSource(root), { modules: ['net'] }));
    expect(e.code).toBe('IRB_XZ_CORRUPT');
    expect(e.message).toContain('kernel/drivers/net/virtio_net.ko.xz: the xz data is damaged');
    await writeFile(xz, 'not a module');
    expect(
      (await rejection(resolveModules(directoryModuleSource(root), { modules: ['net'] }))).message,
    ).toContain('is named for xz but holds uncompressed data');
    await writeFile(xz, await readFile(join(amd64.tree, 'modules.order')));
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const none = await rejection(resolveModules(directoryModuleSource(empty), { modules: ['net'] }));
    expect(none.code).toBe('IRB_KMOD_SOURCE_INVALID');
    expect(none.message).toMatch(/holds no kernel module tree/);
    const notDeb = await rejection(
      resolveModules(debModuleSource(join(amd64.tree, 'modules.dep')), { modules: ['net'] }),
    );
    expect(notDeb.code).toBe('IRB_KMOD_SOURCE_INVALID');
    expect(notDeb.message).toBe(
      'modules.dep: not a Debian package (no ar header); give a kernel package (linux-image-….deb) as downloaded, e.g. by apt-get download',
    );
    const gone = await rejection(
      resolveModules(debModuleSource(join(dir, 'gone.deb')), { modules: ['net'] }),
    );
    expect(gone.code).toBe('IRB_KMOD_SOURCE_INVALID');
    expect(gone.message).toBe(`${join(dir, 'gone.deb')} does not exist; give the path of a kernel .deb`);
    const list = await rejection(resolveModules(directoryModuleSource(amd64.tree), { modules: [' '] }));
    expect(list.code).toBe('IRB_OPTION_INVALID');
  });

  it('a stream that changed between resolving and packing', async () => {
    // In name order net_failover.ko passes before virtio_net.ko.xz asks for it: it is not kept,
    // and packing reads it again.
    const tarA = join(dir, 'a.tar');
    sh('tar', ['-C', compressedRoot, '--sort=name', '-cf', tarA, 'lib']);
    let tar = tarA;
    const set = await resolveModules(
      tarModuleSource({ open: () => fileStream(tar)(), label: 'kernel.tar' }),
      { modules: ['net'] },
    );
    const root = join(dir, 'changed');
    await cp(compressedRoot, root, { recursive: true });
    await cp(
      join(amd64.tree, 'kernel/drivers/net/virtio_net.ko'),
      join(root, 'lib/modules', R, 'kernel/drivers/net/net_failover.ko'),
    );
    tar = join(dir, 'b.tar');
    sh('tar', ['-C', root, '--sort=name', '-cf', tar, 'lib']);
    const e = await rejection(memberBytes(set));
    expect(e.code).toBe('IRB_KMOD_SOURCE_CHANGED');
    expect(e.message).toBe(
      `kernel.tar: lib/modules/${R}/kernel/drivers/net/net_failover.ko changed since the module set was resolved; resolve it again`,
    );
  });
});

describe('the modules member', () => {
  it('is parents first in byte order, root-owned, with the mtime of SOURCE_DATE_EPOCH, and the same bytes every time', async () => {
    const previous = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    let set: Awaited<ReturnType<typeof resolveModules>>;
    try {
      set = await resolveModules(directoryModuleSource(compressedRoot), { modules: ['net'] });
    } finally {
      if (previous === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = previous;
    }
    expect(set.mtime).toBe(1_700_000_000);
    const entries = [];
    for await (const e of moduleEntries(set)) entries.push(e);
    expect(entries.slice(0, 5).map((e) => [e.type, e.path, e.mode])).toEqual([
      ['directory', 'usr', 0o755],
      ['directory', 'usr/lib', 0o755],
      ['directory', 'usr/lib/modules', 0o755],
      ['directory', `usr/lib/modules/${R}`, 0o755],
      ['directory', `usr/lib/modules/${R}/kernel`, 0o755],
    ]);
    expect(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime === 1_700_000_000)).toBe(true);
    const bytes = await memberBytes(set);
    expect(Buffer.from(await memberBytes(set)).equals(Buffer.from(bytes))).toBe(true);
    // GNU cpio reads it: every directory before what it holds, every module once.
    const listing = execFileSync('cpio', ['-it', '--quiet'], { input: bytes }).toString().trim().split('\n');
    expect(listing).toEqual(entries.map((e) => e.path));
    for (const [i, path] of listing.entries()) {
      const parent = path.slice(0, path.lastIndexOf('/'));
      if (parent !== '') expect(listing.indexOf(parent)).toBeLessThan(i);
    }
    expect(listing.filter((p) => p.endsWith('.ko'))).toEqual([...set.modules.map((m) => m.path)].sort());
    const other = await resolveModules(directoryModuleSource(compressedRoot), {
      modules: ['net'],
      prefix: '/lib/modules/',
    });
    expect(other.loadList[0]).toBe(`/lib/modules/${R}/kernel/net/core/failover.ko`);
  });
});
