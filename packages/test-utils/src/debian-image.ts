import { chown, link, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  aptLayer,
  type DebianImageOptions,
  debootstrapLayer,
  detectDebianMirror,
  newBundle,
  SUITE,
} from './debian-base.ts';
import { buildOnce, logFixture, runLogged } from './fixture-cache.ts';

/**
 * A real distribution image for end-to-end tests and the benchmark: Debian bookworm minbase
 * (debootstrap) + python3 (apt in a chroot) + a hand-made third layer with whiteouts, opaque
 * directories, hard links, a symlink and a non-root owner. Built once as root and cached.
 */

/** Bump when the recipe changes: the cache key includes it, so old builds are never reused. */
const DEBIAN_FIXTURE_VERSION = 'v1';
const TAG = 'bookworm-python3';

/** What the hand-made third layer contains, so tests can assert each case. */
export interface DebianLayer3Contents {
  /** Paths deleted by `.wh.NAME` markers (absolute, as they vanish from the rootfs). */
  whiteouts: string[];
  /** Directories with a `.wh..wh..opq` marker. */
  opaqueDirs: string[];
  /** Paths the opaque directories keep because layer 3 itself adds them. */
  keptInOpaque: string[];
  /** Hard links added in layer 3: `[name, firstName]`. */
  hardLinks: Array<[string, string]>;
  /** A lower-layer hard-link group whose first name is whited out (and re-added as a symlink), if Debian had one. */
  survivingLink?: { removed: string; survivor: string };
  /** A directory owned by uid/gid 1000. */
  userOwnedDir: string;
}

/** The cached Debian + python3 image. */
export interface DebianPythonImage {
  /** OCI image layout directory (`oci-layout`, `index.json`, `blobs/`). */
  layoutDir: string;
  /** Tag inside the layout. */
  tag: string;
  /** `oci:<layoutDir>:<tag>`, an image reference for irb and skopeo. */
  ref: string;
  /** The config's Entrypoint and Cmd: running the image prints {@link DebianPythonImage.marker}. */
  entrypoint: string[];
  cmd: string[];
  /** WorkingDir of the config. */
  workingDir: string;
  /** Env of the config. */
  env: string[];
  /** Printed (with the Python version, cwd and IRB_FIXTURE) by the default command. */
  marker: string;
  /** The script behind the default command, absolute path inside the image. */
  script: string;
  /** Layer 3's special entries. */
  layer3: DebianLayer3Contents;
  /** Debian mirror the image was bootstrapped from. */
  mirror: string;
}

/** Options of {@link ensureDebianPythonImage}. */
export type DebianPythonImageOptions = DebianImageOptions;

const MARKER = 'irb-fixture-python-ok';
const SCRIPT = '/opt/fixture/hello.py';
const ENV = [
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'LANG=C.UTF-8',
  'IRB_FIXTURE=debian-python',
];

async function isHardLinkPair(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.ino === sb.ino && sa.dev === sb.dev && sa.nlink >= 2;
  } catch {
    return false;
  }
}

/**
 * Stages layer 3 and returns the tar member order. The order is deliberate: one opaque marker
 * comes after the entries its own layer adds to that directory, the other before them.
 */
async function stageLayer3(
  stage: string,
  rootfs: string,
): Promise<{ order: string[]; contents: DebianLayer3Contents }> {
  const dirs = [
    'etc',
    'opt',
    'opt/fixture',
    'opt/fixture/data',
    'usr',
    'usr/bin',
    'usr/local',
    'usr/local/bin',
    'usr/share',
    'var',
    'var/cache',
    'var/cache/apt',
    'var/cache/apt/archives',
    'var/cache/apt/archives/partial',
    'var/lib',
    'var/lib/apt',
    'var/lib/apt/lists',
    'var/lib/apt/lists/partial',
  ];
  for (const dir of dirs) await mkdir(join(stage, dir), { recursive: true, mode: 0o755 });
  const empty = async (path: string) => writeFile(join(stage, path), '', { mode: 0o644 });

  await writeFile(
    join(stage, 'opt/fixture/hello.py'),
    [
      '#!/usr/bin/env python3',
      'import os, sys',
      `print(f"${MARKER} python={sys.version_info[0]}.{sys.version_info[1]} cwd={os.getcwd()} ` +
        `fixture={os.environ.get('IRB_FIXTURE')}", flush=True)`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  await link(join(stage, 'opt/fixture/hello.py'), join(stage, 'opt/fixture/hello-link.py'));
  await link(join(stage, 'opt/fixture/hello.py'), join(stage, 'usr/local/bin/irb-hello'));
  await writeFile(join(stage, 'opt/fixture/data/notes.txt'), 'owned by uid 1000\n', { mode: 0o640 });
  await chown(join(stage, 'opt/fixture/data'), 1000, 1000);
  await chown(join(stage, 'opt/fixture/data/notes.txt'), 1000, 1000);
  await symlink('/usr/bin/python3', join(stage, 'usr/local/bin/python'));

  await empty('etc/.wh.motd');
  await empty('usr/share/.wh.doc');
  await empty('usr/share/.wh.man');
  await empty('var/lib/apt/lists/.wh..wh..opq');
  await empty('var/cache/apt/.wh..wh..opq');

  const order = [
    'etc/',
    'etc/.wh.motd',
    'opt/',
    'opt/fixture/',
    'opt/fixture/hello.py',
    'opt/fixture/hello-link.py',
    'opt/fixture/data/',
    'opt/fixture/data/notes.txt',
    'usr/',
  ];
  const contents: DebianLayer3Contents = {
    whiteouts: ['/etc/motd', '/usr/share/doc', '/usr/share/man'],
    opaqueDirs: ['/var/lib/apt/lists', '/var/cache/apt'],
    keptInOpaque: [
      '/var/lib/apt/lists/partial',
      '/var/cache/apt/archives',
      '/var/cache/apt/archives/partial',
    ],
    hardLinks: [
      ['/opt/fixture/hello-link.py', '/opt/fixture/hello.py'],
      ['/usr/local/bin/irb-hello', '/opt/fixture/hello.py'],
    ],
    userOwnedDir: '/opt/fixture/data',
  };
  // perl-base ships /usr/bin/perl and /usr/bin/perl5.36.0 as one inode; deleting the first
  // name (in tar order) must leave the second with its data. `perl` comes back as a symlink.
  const perls = (await readdir(join(rootfs, 'usr/bin'))).filter((name) => /^perl5\.\d+\.\d+$/.test(name));
  const survivor = perls[0];
  if (survivor && (await isHardLinkPair(join(rootfs, 'usr/bin/perl'), join(rootfs, 'usr/bin', survivor)))) {
    await empty('usr/bin/.wh.perl');
    await symlink(survivor, join(stage, 'usr/bin/perl-replacement'));
    order.push('usr/bin/', 'usr/bin/.wh.perl');
    contents.survivingLink = { removed: '/usr/bin/perl', survivor: `/usr/bin/${survivor}` };
    contents.whiteouts.push('/usr/bin/perl');
  }
  order.push(
    'usr/local/',
    'usr/local/bin/',
    'usr/local/bin/irb-hello',
    'usr/local/bin/python',
    'usr/share/',
    'usr/share/.wh.doc',
    'usr/share/.wh.man',
    'var/',
    'var/cache/',
    'var/cache/apt/',
    'var/cache/apt/.wh..wh..opq',
    'var/cache/apt/archives/',
    'var/cache/apt/archives/partial/',
    'var/lib/',
    'var/lib/apt/',
    'var/lib/apt/lists/',
    'var/lib/apt/lists/partial/',
    'var/lib/apt/lists/.wh..wh..opq',
  );
  return { order, contents };
}

/**
 * Builds (once, cached under {@link fixtureCacheRoot}) and returns the Debian bookworm
 * minbase + python3 OCI layout. Needs root, debootstrap, umoci, GNU tar and the Debian
 * mirror; the first build takes about a minute and logs progress to stderr.
 */
export async function ensureDebianPythonImage(
  options: DebianPythonImageOptions = {},
): Promise<DebianPythonImage> {
  const key = `debian-${SUITE}-python3-${DEBIAN_FIXTURE_VERSION}`;
  const dir = await buildOnce(
    key,
    async (tmp) => {
      if (process.getuid?.() !== 0) {
        throw new Error(
          `fixture ${key} needs root (debootstrap, chroot, device nodes); run the tests as root`,
        );
      }
      const mirror = options.mirror ?? (await detectDebianMirror());
      const signal = options.signal;
      const layout = join(tmp, 'oci');
      const image = `${layout}:${TAG}`;
      const bundle = join(tmp, 'bundle');
      const rootfs = join(bundle, 'rootfs');
      const step = async (what: string, run: () => Promise<void>) => {
        const started = Date.now();
        logFixture(`${key}: ${what}…`);
        await run();
        logFixture(`${key}: ${what} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      };
      await newBundle({ layout, image, bundle, signal });
      await step(`layer 1: debootstrap --variant=minbase ${SUITE} from ${mirror}`, async () => {
        await debootstrapLayer({ rootfs, image, bundle, mirror, signal });
      });
      await step('layer 2: apt-get install python3 (chroot)', async () => {
        // The package lists stay: layer 3 hides them with an opaque directory.
        await aptLayer({ rootfs, image, bundle, packages: ['python3'], dropLists: false, signal });
      });
      let contents: DebianLayer3Contents | undefined;
      await step('layer 3: whiteouts, opaque dirs, hard links (GNU tar)', async () => {
        const stage = join(tmp, 'layer3');
        const staged = await stageLayer3(stage, rootfs);
        contents = staged.contents;
        await writeFile(join(tmp, 'layer3.list'), `${staged.order.join('\n')}\n`);
        await runLogged(
          'tar',
          [
            '--create',
            '--file',
            join(tmp, 'layer3.tar'),
            '--format=gnu',
            '--numeric-owner',
            '--no-recursion',
            '--mtime=@1700000000',
            '-C',
            stage,
            '-T',
            join(tmp, 'layer3.list'),
          ],
          { signal },
        );
        // The perl symlink is staged under another name (its whiteout shares the directory):
        // append it renamed, after the whiteout, as a later layer's replacement would be.
        if (staged.contents.survivingLink) {
          await runLogged(
            'tar',
            [
              '--append',
              '--file',
              join(tmp, 'layer3.tar'),
              '--format=gnu',
              '--numeric-owner',
              '--no-recursion',
              '--mtime=@1700000000',
              '--transform=s,^usr/bin/perl-replacement$,usr/bin/perl,',
              '-C',
              stage,
              'usr/bin/perl-replacement',
            ],
            { signal },
          );
        }
        await runLogged(
          'umoci',
          [
            'raw',
            'add-layer',
            '--history.created_by',
            'cleanup: whiteouts, opaque dirs, hard links',
            '--image',
            image,
            join(tmp, 'layer3.tar'),
          ],
          { signal },
        );
      });
      const configArgs = ['config', '--image', image, '--no-history'];
      configArgs.push(
        '--config.entrypoint',
        'python3',
        '--config.cmd',
        SCRIPT,
        '--config.workingdir',
        '/opt/fixture',
      );
      for (const env of ENV) configArgs.push('--config.env', env);
      await runLogged('umoci', configArgs, { signal });
      await runLogged('umoci', ['gc', '--layout', layout], { signal });
      await rm(bundle, { recursive: true, force: true });
      await rm(join(tmp, 'layer3'), { recursive: true, force: true });
      await rm(join(tmp, 'layer3.tar'), { force: true });
      await rm(join(tmp, 'layer3.list'), { force: true });
      await writeFile(
        join(tmp, 'fixture.json'),
        `${JSON.stringify({ mirror, layer3: contents }, null, 2)}\n`,
      );
    },
    { signal: options.signal, cacheDir: options.cacheDir },
  );
  const info = JSON.parse(await readFile(join(dir, 'fixture.json'), 'utf8')) as {
    mirror: string;
    layer3: DebianLayer3Contents;
  };
  const layoutDir = join(dir, 'oci');
  return {
    layoutDir,
    tag: TAG,
    ref: `oci:${layoutDir}:${TAG}`,
    entrypoint: ['python3'],
    cmd: [SCRIPT],
    workingDir: '/opt/fixture',
    env: [...ENV],
    marker: MARKER,
    script: SCRIPT,
    layer3: info.layer3,
    mirror: info.mirror,
  };
}

/** Options of {@link pushOciLayout}. */
export interface PushOciLayoutOptions {
  /** Source OCI layout directory. */
  layoutDir: string;
  /** Tag inside the layout. */
  tag: string;
  /** Registry `host:port`, e.g. `127.0.0.1:5000` (plain HTTP, no TLS verification). */
  registry: string;
  /** Destination repository, e.g. `fixtures/debian-python`. */
  repository: string;
  /** Destination tag. Default: `tag`. */
  destTag?: string;
  /** `user:password` for the destination, if it requires auth. */
  credentials?: string;
  signal?: AbortSignal;
}

/** Pushes an OCI layout into a registry with skopeo (blobs kept as they are); returns the pushed reference. */
export async function pushOciLayout(options: PushOciLayoutOptions): Promise<string> {
  const destination = `${options.registry}/${options.repository}:${options.destTag ?? options.tag}`;
  const args = ['copy', '--quiet', '--dest-tls-verify=false'];
  if (options.credentials) args.push('--dest-creds', options.credentials);
  args.push(`oci:${options.layoutDir}:${options.tag}`, `docker://${destination}`);
  await runLogged('skopeo', args, { signal: options.signal });
  return destination;
}
