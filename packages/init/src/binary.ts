import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { IrbError } from '@irb/errors';

/** The architectures the static init is built for (the kernel's names, as `uname -m` prints them). */
export type InitArch = 'x86_64' | 'aarch64';

/** Every architecture {@link staticInitBinary} serves. */
export const INIT_ARCHES: readonly InitArch[] = ['x86_64', 'aarch64'];

/**
 * The static init's architecture for an OCI platform architecture (`amd64` → `x86_64`,
 * `arm64` → `aarch64`; the kernel's names are accepted too), or `undefined` when there is no
 * static init for it (the builder then keeps the shell init or asks for `--init`).
 */
export function initArchForPlatform(architecture: string): InitArch | undefined {
  switch (architecture) {
    case 'amd64':
    case 'x86_64':
      return 'x86_64';
    case 'arm64':
    case 'aarch64':
      return 'aarch64';
    default:
      return undefined;
  }
}

const cache = new Map<InitArch, Uint8Array>();

/** Where the committed binary for `arch` lives: `bin/init-<arch>` in this package. */
export function staticInitPath(arch: InitArch): string {
  if (!INIT_ARCHES.includes(arch)) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `the static init is built for ${INIT_ARCHES.join(' and ')}, not "${String(arch)}"; pick one of them`,
    );
  }
  // Found through the package's name, not beside this module: a bundle that inlines this code
  // (the CLI's) still finds bin/ in node_modules, and the package itself resolves to its own root.
  const root = dirname(createRequire(import.meta.url).resolve('@irb/init/package.json'));
  return join(root, 'bin', `init-${arch}`);
}

/**
 * The static init for `arch`: a static ELF of a few KiB to store as `/init` (mode 0755) next to
 * its parameter file (see `encodeInitConfig`). Read synchronously from the package's `bin/`
 * (it ships with the package, so irb works offline) and kept in memory afterwards; the same
 * bytes on every call. Callers must not modify the returned array.
 *
 * @throws IrbError `IRB_OPTION_INVALID` for an unknown architecture, `IRB_INPUT_UNREADABLE` when
 *   the package was installed without its `bin/` directory.
 */
export function staticInitBinary(arch: InitArch): Uint8Array {
  let bytes = cache.get(arch);
  if (bytes === undefined) {
    const path = staticInitPath(arch);
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch (cause) {
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `the static init ${path} cannot be read; reinstall @irb/init (or run its scripts/build.sh)`,
        { cause },
      );
    }
    cache.set(arch, bytes);
  }
  return bytes;
}
