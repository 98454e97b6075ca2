import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { IrbError } from '@irb/errors';
import { type BootArch, hostArch } from './arch.ts';

/** Options of {@link findKernel}. */
export interface FindKernelOptions {
  /** Environment to read `IRB_KERNEL[_<ARCH>]`, `XDG_CACHE_HOME` and `HOME` from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directories searched for `vmlinuz-*`, in order. Default {@link defaultKernelDirs} for `arch`. */
  searchDirs?: string[];
  /** The guest architecture the kernel is for. Default: the host's. */
  arch?: BootArch;
}

/** Compares kernel versions like `sort -V`: digit runs numerically, the rest as text. */
export function compareKernelVersions(a: string, b: string): number {
  const split = (s: string): string[] => s.match(/\d+|\D+/g) ?? [];
  const pa = split(a);
  const pb = split(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d/.test(x) ? Number(x) : Number.NaN;
    const ny = /^\d/.test(y) ? Number(y) : Number.NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx - ny;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** @internal True when `path` can be opened for reading. */
export async function readable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The default search directories for `arch` (default: the host's): `/boot` when `arch` is the
 * host's, then where `scripts/ensure-env.sh` unpacks Debian's kernel for it
 * (`<cache>/irb/kernel/boot` for x86_64, `<cache>/irb/kernel-aarch64/boot` for aarch64).
 */
export function defaultKernelDirs(
  env: NodeJS.ProcessEnv = process.env,
  arch: BootArch = hostArch(),
): string[] {
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  const own = join(cache, 'irb', arch === 'x86_64' ? 'kernel' : `kernel-${arch}`, 'boot');
  return arch === hostArch() ? ['/boot', own] : [own];
}

/**
 * Finds a Linux kernel image to boot for `arch` (default: the host's): `IRB_KERNEL_AARCH64` or
 * `IRB_KERNEL_X86_64` when set, else `IRB_KERNEL` (for the host's architecture), else the newest readable
 * `vmlinuz-*` in `/boot`, else in `~/.cache/irb/kernel/boot` (`$XDG_CACHE_HOME` respected).
 *
 * @throws IrbError `IRB_BOOT_KERNEL_NOT_FOUND` when none is found or `IRB_KERNEL` is unreadable.
 */
export async function findKernel(options: FindKernelOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const arch = options.arch ?? hostArch();
  // IRB_KERNEL_AARCH64 / IRB_KERNEL_X86_64 name a kernel per architecture; IRB_KERNEL is the host's.
  const names = [`IRB_KERNEL_${arch.toUpperCase()}`, ...(arch === hostArch() ? ['IRB_KERNEL'] : [])];
  for (const name of names) {
    const fromEnv = env[name];
    if (!fromEnv) continue;
    if (await readable(fromEnv)) return fromEnv;
    throw new IrbError(
      'IRB_BOOT_KERNEL_NOT_FOUND',
      `${name}=${fromEnv} is not a readable file; point it at a kernel image (vmlinuz) or unset it`,
    );
  }
  const dirs = options.searchDirs ?? defaultKernelDirs(env, arch);
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    const kernels = names
      .filter((n) => n.startsWith('vmlinuz-'))
      .sort((a, b) => compareKernelVersions(b.slice(8), a.slice(8)));
    for (const name of kernels) {
      const path = join(dir, name);
      if (await readable(path)) return path;
    }
  }
  throw new IrbError(
    'IRB_BOOT_KERNEL_NOT_FOUND',
    `no readable ${arch} Linux kernel (vmlinuz-*) in ${dirs.join(', ')}; set ${names.at(-1)}=/path/to/vmlinuz (installed from npm: a distribution kernel, e.g. the ${arch === 'x86_64' ? 'linux-image-amd64' : 'linux-image-arm64'} package's /boot/vmlinuz-*, made readable), or in a checkout of irb's repository run scripts/ensure-env.sh, which unpacks Debian's kernel into the cache`,
  );
}
