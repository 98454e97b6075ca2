// Kernel modules in a build and an append: the modules member between the image and the overlay,
// cached once for every image, the same bytes from each kind of source (a /lib/modules
// directory, Debian's kernel .deb, an image with /lib/modules, LinuxKit's kernel.tar in an
// image), the keys, the overrides and the network in what the archive runs, and each bad input
// in one line with no output left behind. Debian's real amd64 modules, a real registry.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findKernel } from '@irb/boot';
import { directoryModuleSource, resolveModules } from '@irb/kmod';
import {
  buildImage,
  buildTar,
  kernelModulesDir,
  pushImage,
  type StartedRegistry,
  startRegistry,
  type TarSpec,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ArchiveEntry,
  appendOverlay,
  archiveConfig,
  type BuildProgressEvent,
  InitramfsBuilder,
  listArchive,
} from '../src/index.ts';

let registry: StartedRegistry;
let dir: string;
let modulesDir: string;
let release: string;
let merged: string;
let plain: string;
let debianKernel: string;
let linuxkitKernel: string;
let deb: string | undefined;

const DEPMOD = [
  'modules.dep',
  'modules.alias',
  'modules.softdep',
  'modules.builtin',
  'modules.builtin.modinfo',
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-modules-'));
  registry = await startRegistry();
  const kernel = await findKernel();
  ({ dir: modulesDir, release } = await kernelModulesDir(kernel));
  const cache = join(
    process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache'),
    'irb',
    'kernel',
  );
  deb = (await readdir(cache)).filter(
    (n) => n.startsWith(`linux-image-${release}_`) && n.endsWith('.deb'),
  )[0];
  if (deb) deb = join(cache, deb);

  const passwd = 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n';
  const image = async (name: string, entries: TarSpec[], runtime: Record<string, unknown>) => {
    await pushImage(registry, name, 'v1', buildImage({ layers: [await buildTar(entries)], runtime }));
    return `${registry.host}/${name}:v1`;
  };
  merged = await image(
    'lib/merged',
    [
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/bin/' },
      { type: 'directory', path: 'usr/lib/' },
      { type: 'file', path: 'usr/bin/agent', content: 'agent', mode: 0o755 },
      { type: 'symlink', path: 'bin', target: 'usr/bin' },
      { type: 'symlink', path: 'lib', target: 'usr/lib' },
      { type: 'file', path: 'etc/passwd', content: passwd },
      { type: 'file', path: 'etc/group', content: 'root:x:0:\napp:x:1000:\n' },
    ],
    { Entrypoint: ['/bin/agent'], Cmd: ['--serve'], Env: ['PATH=/usr/bin:/bin', 'MODE=image'] },
  );
  plain = await image(
    'lib/plain',
    [
      { type: 'file', path: 'app', content: 'another program', mode: 0o755 },
      { type: 'file', path: 'etc/passwd', content: passwd },
    ],
    { Cmd: ['/app'] },
  );

  // The tree the `net` preset needs, as Debian's kernel package lays it out: the depmod files and
  // the modules of the closure (resolved from the real tree).
  const set = await resolveModules(directoryModuleSource(modulesDir), { modules: ['net'] });
  const files = [
    ...DEPMOD.filter((n) => existsSync(join(modulesDir, n))),
    ...set.modules.map((m) => m.sourcePath.slice(`lib/modules/${release}/`.length)),
  ];
  const tree = async (prefix: string): Promise<TarSpec[]> =>
    Promise.all(
      files.map(async (f) => ({
        type: 'file' as const,
        path: `${prefix}${release}/${f}`,
        content: new Uint8Array(await readFile(join(modulesDir, f))),
      })),
    );
  // Merged /usr, as an image `FROM debian` with linux-image-amd64 installed.
  debianKernel = await image(
    'kernel/debian',
    [{ type: 'symlink', path: 'lib', target: 'usr/lib' }, ...(await tree('usr/lib/modules/'))],
    {},
  );
  linuxkitKernel = await image(
    'kernel/linuxkit',
    [
      { type: 'file', path: 'kernel', content: 'a bzImage would be here' },
      { type: 'file', path: 'kernel.tar', content: await buildTar(await tree('lib/modules/')) },
    ],
    {},
  );
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The entries of an archive by member. */
async function members(path: string): Promise<ArchiveEntry[][]> {
  const out: ArchiveEntry[][] = [];
  for await (const e of listArchive(path)) {
    out[e.member] ??= [];
    out[e.member]?.push(e);
  }
  return out;
}

const outputEntries = async (cacheDir: string, ext: string) =>
  (await readdir(join(cacheDir, 'output'))).filter((n) => n.endsWith(`.${ext}`));

describe('kernel modules in a build', () => {
  it('go into a member of their own, device 0:1, between the image and the overlay; the init loads them', async () => {
    const cacheDir = join(dir, 'cache-layout');
    const out = join(dir, 'layout.cpio.zst');
    const summary = await new InitramfsBuilder({
      image: merged,
      compression: 'zstd',
      cacheDir,
      kernelModules: modulesDir,
      modules: ['net'],
      net: '10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3',
    }).build(out);
    const [base, mods, overlay, more] = await members(out);
    expect(more).toBeUndefined();
    expect(base?.some((e) => e.name === 'usr/bin/agent')).toBe(true);
    expect(mods?.every((e) => e.devMajor === 0 && e.devMinor === 1)).toBe(true);
    expect(overlay?.every((e) => e.devMajor === 0 && e.devMinor === 2)).toBe(true);
    // usr/lib/modules, not lib/modules: a `lib` directory would replace the image's lib -> usr/lib.
    expect(mods?.filter((e) => e.type === 'file').map((e) => `/${e.name}`)).toEqual(
      [...(summary.modules?.loadList ?? [])].sort(),
    );
    expect(mods?.some((e) => e.name === 'lib' || e.name.startsWith('lib/'))).toBe(false);
    expect(summary.modules).toMatchObject({ release, key: expect.stringMatching(/^sha256:/) });
    expect(summary.modules?.names).toContain('virtio_net');
    expect(summary.modules?.names).toContain('virtio_pci');
    expect(summary.net).toBe('10.0.2.15::10.0.2.2:255.255.255.0:::off:10.0.2.3');
    const config = await archiveConfig(out);
    expect(config).toMatchObject({
      init: 'static',
      entrypoint: ['/bin/agent'],
      cmd: ['--serve'],
      modules: summary.modules?.loadList,
      net: summary.net,
      jobs: [],
    });
  });

  it('is stored once, whatever the image: a second image reuses the member; an unchanged rebuild reads no module', async () => {
    const cacheDir = join(dir, 'cache-shared');
    const options = { compression: 'zstd' as const, cacheDir, kernelModules: modulesDir, modules: ['net'] };
    const a = join(dir, 'a.cpio.zst');
    const b = join(dir, 'b.cpio.zst');
    const sa = await new InitramfsBuilder({ image: merged, ...options }).build(a);
    const sb = await new InitramfsBuilder({ image: plain, ...options }).build(b);
    expect(sb.modules?.key).toBe(sa.modules?.key);
    expect(await outputEntries(cacheDir, 'base')).toHaveLength(2);
    const stored = await outputEntries(cacheDir, 'modules');
    expect(stored).toHaveLength(1);
    // The member's bytes are in both archives, as stored.
    const member = await readFile(join(cacheDir, 'output', stored[0] as string));
    expect((await readFile(a)).indexOf(member)).toBeGreaterThan(0);
    expect((await readFile(b)).indexOf(member)).toBeGreaterThan(0);
    // The modules' source is trusted unchanged from its record: an unchanged rebuild is as cheap as before.
    expect(await outputEntries(cacheDir, 'kmod')).toHaveLength(1);
    const again = join(dir, 'a-again.cpio.zst');
    await new InitramfsBuilder({ image: merged, ...options }).build(again);
    expect(Buffer.compare(await readFile(a), await readFile(again))).toBe(0);
  });

  it('a changed override, network or module set reuses the cached base; the program reflects the overrides', async () => {
    const cacheDir = join(dir, 'cache-overrides');
    const build = async (name: string, more: Record<string, unknown>) => {
      const events: BuildProgressEvent['type'][] = [];
      const out = join(dir, name);
      const summary = await new InitramfsBuilder({
        image: merged,
        compression: 'lz4',
        cacheDir,
        kernelModules: modulesDir,
        modules: ['net'],
        onProgress: (e) => events.push(e.type),
        ...more,
      }).build(out);
      return { out, summary, indexed: events.includes('index') };
    };
    const first = await build('o1.cpio.lz4', { env: ['JOB=1'] });
    expect(first.indexed).toBe(true);
    const second = await build('o2.cpio.lz4', {
      env: ['JOB=2', 'MODE=agent'],
      entrypoint: '/usr/bin/agent',
      cmd: ['--interpreter', 'python3'],
      workdir: '/work',
      user: 'app',
      net: '10.0.2.15/24',
    });
    expect(second.indexed).toBe(false);
    const third = await build('o3.cpio.lz4', { modules: ['net', 'vsock'] });
    expect(third.indexed).toBe(false);
    expect(await outputEntries(cacheDir, 'base')).toHaveLength(1);
    expect(await outputEntries(cacheDir, 'modules')).toHaveLength(2);
    expect(third.summary.modules?.names).toContain('vmw_vsock_virtio_transport');
    expect(second.summary.command).toEqual(['/usr/bin/agent', '--interpreter', 'python3']);
    expect(await archiveConfig(second.out)).toMatchObject({
      entrypoint: ['/usr/bin/agent'],
      cmd: ['--interpreter', 'python3'],
      env: ['PATH=/usr/bin:/bin', 'MODE=agent', 'JOB=2', 'HOSTNAME=irb', 'HOME=/home/app'],
      workingDir: '/work',
      user: '1000:1000',
      net: '10.0.2.15:::255.255.255.0:::off',
    });
    // The WorkingDir the image lacks is made, in the overlay.
    const [, , overlay] = await members(second.out);
    expect(overlay?.some((e) => e.name === 'work' && e.type === 'directory')).toBe(true);
  });

  it('the shell init carries the same modules, network and overrides (its helper loads and applies them)', async () => {
    const sh = `${registry.host}/lib/sh:v1`;
    await pushImage(
      registry,
      'lib/sh',
      'v1',
      buildImage({
        layers: [
          await buildTar([
            { type: 'file', path: 'bin/busybox', content: 'busybox', mode: 0o755 },
            { type: 'symlink', path: 'bin/sh', target: 'busybox' },
            { type: 'symlink', path: 'bin/mount', target: 'busybox' },
            { type: 'file', path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
          ]),
        ],
        runtime: { Cmd: ['/bin/sh', '-c', 'true'] },
      }),
    );
    const out = join(dir, 'sh.cpio.gz');
    const summary = await new InitramfsBuilder({
      image: sh,
      initKind: 'sh',
      cacheDir: join(dir, 'cache-sh'),
      kernelModules: modulesDir,
      modules: ['net'],
      net: '10.0.2.15/24',
      entrypoint: '/bin/busybox',
      cmd: ['httpd', '-f'],
      env: ['JOB=sh'],
    }).build(out);
    expect(summary.initKind).toBe('sh');
    expect(await archiveConfig(out)).toMatchObject({
      init: 'sh',
      initArch: 'x86_64',
      entrypoint: ['/bin/busybox'],
      cmd: ['httpd', '-f'],
      env: expect.arrayContaining(['JOB=sh']),
      modules: summary.modules?.loadList,
      net: '10.0.2.15:::255.255.255.0:::off',
    });
  });

  it('the same member bytes from the directory, the .deb, an image with /lib/modules and a LinuxKit image', async () => {
    const sources = [modulesDir, debianKernel, linuxkitKernel, ...(deb ? [deb] : [])];
    const outputs: Buffer[] = [];
    const keys: Array<string | undefined> = [];
    for (const [i, kernelModules] of sources.entries()) {
      const out = join(dir, `source-${i}.cpio.gz`);
      // A cache of its own each time, so that every source is read.
      const summary = await new InitramfsBuilder({
        image: merged,
        cacheDir: join(dir, `cache-source-${i}`),
        kernelModules,
        modules: ['net'],
      }).build(out);
      outputs.push(await readFile(out));
      keys.push(summary.modules?.key);
    }
    expect(deb, 'scripts/ensure-env.sh keeps the kernel .deb beside the tree').toBeDefined();
    for (const [i, bytes] of outputs.entries()) {
      expect(keys[i], sources[i]).toBe(keys[0]);
      expect(Buffer.compare(bytes, outputs[0] as Buffer), sources[i]).toBe(0);
    }
  }, 300_000);

  it('refuses bad input in one line and leaves no output', async () => {
    const noDep = join(dir, 'nodep', release);
    await mkdir(join(noDep, 'kernel'), { recursive: true });
    await copyFile(join(modulesDir, 'kernel/drivers/net/virtio_net.ko'), join(noDep, 'kernel/virtio_net.ko'));
    const agent = join(dir, 'agent-file');
    await writeFile(agent, '#!/bin/sh\n');
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [
        { kernelModules: modulesDir, modules: ['virtio_nett'] },
        'IRB_KMOD_MODULE_UNKNOWN',
        /virtio_nett.*virtio_net/,
      ],
      [{ kernelModules: noDep, modules: ['net'] }, 'IRB_KMOD_INDEX_MISSING', /depmod/],
      [
        { kernelModules: join(dir, 'missing'), modules: ['net'] },
        'IRB_KMOD_SOURCE_INVALID',
        /does not exist/,
      ],
      [{ modules: ['net'] }, 'IRB_OPTION_INVALID', /`modules` needs `kernelModules`/],
      [{ net: '10.0.2.15' }, 'IRB_NET_INVALID', /10\.0\.2\.15/],
      [{ env: ['JOB'] }, 'IRB_ENV_INVALID', /--env "JOB"/],
      [{ init: agent, env: ['JOB=1'] }, 'IRB_OPTION_INVALID', /need the generated \/init/],
    ];
    for (const [more, code, message] of cases) {
      const out = join(dir, 'refused.cpio.gz');
      const error = await new InitramfsBuilder({
        image: merged,
        cacheDir: join(dir, 'cache-refused'),
        ...more,
      })
        .build(out)
        .catch((e) => e);
      expect(error.code, JSON.stringify(more)).toBe(code);
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain('\n');
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe('kernel modules, the network and overrides in an append', () => {
  it('adds a modules member and a job file; BASE is copied as is', async () => {
    const cacheDir = join(dir, 'cache-append');
    const base = join(dir, 'base.cpio.zst');
    await new InitramfsBuilder({ image: merged, compression: 'zstd', cacheDir }).build(base);
    const out = join(dir, 'appended.cpio.zst');
    const summary = await appendOverlay(base, [], {
      output: out,
      cacheDir,
      env: ['JOB=42'],
      cmd: ['--job', '42'],
      kernelModules: modulesDir,
      modules: ['net'],
      net: '10.0.2.15/24,gw=10.0.2.2',
    });
    const baseBytes = await readFile(base);
    const outBytes = await readFile(out);
    expect(summary.job).toBe(`/irb/job.d/${String(summary.baseBytes).padStart(20, '0')}.conf`);
    expect(
      Buffer.compare(outBytes.subarray(0, summary.baseBytes), baseBytes.subarray(0, summary.baseBytes)),
    ).toBe(0);
    const [, , mods, job] = await members(out);
    // Each appended member's device number is its offset (major 1).
    expect(mods?.every((e) => e.devMajor === 1)).toBe(true);
    expect(mods?.filter((e) => e.type === 'file').map((e) => `/${e.name}`)).toEqual(
      [...(summary.modules?.loadList ?? [])].sort(),
    );
    // BASE has /irb: only job.d and the file are emitted.
    expect(job?.map((e) => `${e.type} ${e.name} ${e.mode.toString(8)}`)).toEqual([
      'directory irb/job.d 755',
      `file ${summary.job?.slice(1)} 600`,
    ]);
    expect(await archiveConfig(out)).toMatchObject({
      entrypoint: ['/bin/agent'],
      cmd: ['--job', '42'],
      env: ['PATH=/usr/bin:/bin', 'MODE=image', 'HOSTNAME=irb', 'HOME=/root', 'JOB=42'],
      modules: summary.modules?.loadList,
      net: '10.0.2.15::10.0.2.2:255.255.255.0:::off',
      jobs: [{ path: summary.job, cmd: ['--job', '42'], env: ['JOB=42'] }],
    });
  });

  it("refuses a job for an archive whose /init is not irb's, and an init beside overrides", async () => {
    const init = join(dir, 'my-init');
    await writeFile(init, '#!/bin/sh\nexec /app\n');
    const base = join(dir, 'custom-init.cpio.gz');
    await new InitramfsBuilder({ image: plain, init, cacheDir: join(dir, 'cache-custom') }).build(base);
    const out = join(dir, 'custom-appended.cpio.gz');
    const error = await appendOverlay(base, [], { output: out, env: ['JOB=1'], cache: false }).catch(
      (e) => e,
    );
    expect(error.code).toBe('IRB_OPTION_INVALID');
    expect(error.message).toMatch(/has no \/irb directory, so its \/init is not irb's generated init/);
    expect(existsSync(out)).toBe(false);
    const both = await appendOverlay(base, [], { output: out, init, user: 'app', cache: false }).catch(
      (e) => e,
    );
    expect(both.code).toBe('IRB_OPTION_INVALID');
    expect(existsSync(out)).toBe(false);
  });
});
