import { readFile, rm, writeFile } from 'node:fs/promises';
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

const RUST_FIXTURE_VERSION = 'v1';
const RUST_TAG = 'bookworm-rustc';

/** The cached Debian + rustc/cargo image: a large real image (about 830 MB unpacked) for memory figures. */
export interface DebianRustImage {
  /** OCI image layout directory. */
  layoutDir: string;
  /** Tag inside the layout. */
  tag: string;
  /** `oci:<layoutDir>:<tag>`, an image reference for irb and skopeo. */
  ref: string;
  /** Debian mirror the image was bootstrapped from. */
  mirror: string;
}

/**
 * Builds (once, cached under {@link fixtureCacheRoot}) and returns Debian bookworm minbase
 * (layer 1) + `apt-get install rustc cargo` (layer 2) as an OCI layout: the same machinery as
 * {@link ensureDebianPythonImage}, for a big image with many files (peak memory of a cold build).
 * Needs root, debootstrap, umoci and the Debian mirror; the first build takes a few minutes.
 */
export async function ensureDebianRustImage(options: DebianImageOptions = {}): Promise<DebianRustImage> {
  const key = `debian-${SUITE}-rustc-${RUST_FIXTURE_VERSION}`;
  const dir = await buildOnce(
    key,
    async (tmp) => {
      if (process.getuid?.() !== 0) {
        throw new Error(`fixture ${key} needs root (debootstrap, chroot); run it as root`);
      }
      const mirror = options.mirror ?? (await detectDebianMirror());
      const signal = options.signal;
      const layout = join(tmp, 'oci');
      const image = `${layout}:${RUST_TAG}`;
      const bundle = join(tmp, 'bundle');
      const rootfs = join(bundle, 'rootfs');
      const started = Date.now();
      await newBundle({ layout, image, bundle, signal });
      logFixture(`${key}: layer 1: debootstrap --variant=minbase ${SUITE} from ${mirror}…`);
      await debootstrapLayer({ rootfs, image, bundle, mirror, signal });
      logFixture(`${key}: layer 2: apt-get install rustc cargo (chroot)…`);
      await aptLayer({ rootfs, image, bundle, packages: ['rustc', 'cargo'], dropLists: true, signal });
      await runLogged(
        'umoci',
        [
          'config',
          '--image',
          image,
          '--no-history',
          '--config.entrypoint',
          'rustc',
          '--config.cmd',
          '--version',
        ],
        { signal },
      );
      await runLogged('umoci', ['gc', '--layout', layout], { signal });
      await rm(bundle, { recursive: true, force: true });
      await writeFile(join(tmp, 'fixture.json'), `${JSON.stringify({ mirror }, null, 2)}\n`);
      logFixture(`${key}: built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    },
    { signal: options.signal, cacheDir: options.cacheDir },
  );
  const info = JSON.parse(await readFile(join(dir, 'fixture.json'), 'utf8')) as { mirror: string };
  const layoutDir = join(dir, 'oci');
  return { layoutDir, tag: RUST_TAG, ref: `oci:${layoutDir}:${RUST_TAG}`, mirror: info.mirror };
}
