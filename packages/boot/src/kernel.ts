import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { IrbError } from '@irb/errors';

/** Options of {@link findKernel}. */
export interface FindKernelOptions {
  /** Environment to read `IRB_KERNEL`, `XDG_CACHE_HOME` and `HOME` from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directories searched for `vmlinuz-*`, in order. Default `/boot`, then `<cache>/irb/kernel/boot`. */
  searchDirs?: string[];
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

/** The default search directories: `/boot`, then where `scripts/ensure-env.sh` unpacks Debian's kernel. */
export function defaultKernelDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const cache = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return ['/boot', join(cache, 'irb', 'kernel', 'boot')];
}

/**
 * Finds a Linux kernel image to boot: `IRB_KERNEL` when set, else the newest readable
 * `vmlinuz-*` in `/boot`, else in `~/.cache/irb/kernel/boot` (`$XDG_CACHE_HOME` respected).
 *
 * @throws IrbError `IRB_BOOT_KERNEL_NOT_FOUND` when none is found or `IRB_KERNEL` is unreadable.
 */
export async function findKernel(options: FindKernelOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const fromEnv = env.IRB_KERNEL;
  if (fromEnv) {
    if (await readable(fromEnv)) return fromEnv;
    throw new IrbError(
      'IRB_BOOT_KERNEL_NOT_FOUND',
      `IRB_KERNEL=${fromEnv} is not a readable file; point it at a kernel image (vmlinuz) or unset it`,
    );
  }
  const dirs = options.searchDirs ?? defaultKernelDirs(env);
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
    `no readable Linux kernel (vmlinuz-*) in ${dirs.join(', ')}; set IRB_KERNEL=/path/to/vmlinuz or run scripts/ensure-env.sh, which unpacks Debian's kernel into the cache`,
  );
}
