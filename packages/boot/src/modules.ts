import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IrbError } from '@irb/errors';
import type { BootMachine } from './arch.ts';
import type { ArchiveModule } from './archive.ts';
import { readable } from './kernel.ts';
import { netDriverModules } from './net.ts';

/** A kernel to boot, as far as the module checks need it. */
export interface ModuleCheckKernel {
  /** The image file (for messages). */
  path: string;
  /** Its release, from the image (see `inspectKernel`). */
  release: string;
}

/**
 * Where the module tree of a kernel image lies, if anywhere: `modulesDir` when given, else
 * `lib/modules/<release>` beside the image's directory (`…/boot/vmlinuz-R` and
 * `…/lib/modules/R`, the layout of `/` and of irb's kernel cache), else `/lib/modules/<release>`.
 * Only a tree with `modules.builtin` counts: it is what tells a built-in driver from a missing one.
 */
export async function kernelModulesDir(
  kernel: ModuleCheckKernel,
  modulesDir?: string,
): Promise<string | undefined> {
  const candidates = modulesDir
    ? [modulesDir]
    : [
        join(dirname(kernel.path), '..', 'lib', 'modules', kernel.release),
        join('/lib/modules', kernel.release),
      ];
  for (const dir of candidates) if (await readable(join(dir, 'modules.builtin'))) return dir;
  return undefined;
}

/** A module's name as the kernel compares them: the file name without `.ko…`, dashes as underscores. */
export function moduleName(path: string): string {
  return basename(path)
    .replace(/\.ko(?:\.\w+)?$/, '')
    .replaceAll('-', '_');
}

/** The first word of a `vermagic`: the release the module was built for. */
function vermagicRelease(module: ArchiveModule): string | undefined {
  return module.vermagic?.split(/\s+/)[0] || undefined;
}

/**
 * Refuses an archive whose kernel modules cannot load into `kernel`: modules only for other
 * releases (`lib/modules/<other>/`), or modules under the kernel's release whose `vermagic` names
 * another release. A kernel refuses such modules at load time, one "invalid module format" at a
 * time, long after the boot started.
 *
 * @throws IrbError `IRB_BOOT_MODULES_MISMATCH`, in one line naming both releases.
 */
export function checkModuleReleases(modules: readonly ArchiveModule[], kernel: ModuleCheckKernel): void {
  if (modules.length === 0) return;
  const ours = modules.filter((m) => m.release === kernel.release);
  const advice = `boot the kernel they were built for, or rebuild the archive with the modules of ${kernel.release}`;
  if (ours.length === 0) {
    const releases = [...new Set(modules.map((m) => m.release))].sort();
    throw new IrbError(
      'IRB_BOOT_MODULES_MISMATCH',
      `the archive's kernel modules are for ${releases.join(', ')} (lib/modules/${releases[0]}/) but the kernel ${kernel.path} is ${kernel.release}; ${advice}`,
    );
  }
  const foreign = ours.find((m) => {
    const release = vermagicRelease(m);
    return release !== undefined && release !== kernel.release;
  });
  if (foreign) {
    throw new IrbError(
      'IRB_BOOT_MODULES_MISMATCH',
      `the archive's module ${foreign.path} was built for ${vermagicRelease(foreign)} (its vermagic) but the kernel ${kernel.path} is ${kernel.release}; ${advice}`,
    );
  }
}

/** The names of the modules built into a kernel, from its `modules.builtin`. */
async function builtinModules(dir: string): Promise<Set<string>> {
  const text = await readFile(join(dir, 'modules.builtin'), 'utf8');
  return new Set(
    text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => moduleName(line.trim())),
  );
}

/**
 * Refuses a boot with a network whose guest would find no network device: the virtio-net driver
 * or its transport for `machine` (virtio_pci, or virtio_mmio on microvm) is neither built into
 * the kernel (its `modules.builtin`, found by {@link kernelModulesDir}) nor in the archive under
 * `lib/modules/<release>/`. Without the kernel's `modules.builtin` nothing is checked here; the
 * init's "no device" line tells at run time.
 *
 * @throws IrbError `IRB_BOOT_NET_DRIVER_MISSING`, naming the modules to add.
 */
export async function checkNetDriver(
  modules: readonly ArchiveModule[],
  kernel: ModuleCheckKernel,
  machine: BootMachine,
  modulesDir?: string,
): Promise<void> {
  const dir = await kernelModulesDir(kernel, modulesDir);
  if (dir === undefined) return;
  const builtin = await builtinModules(dir);
  const carried = new Set(modules.filter((m) => m.release === kernel.release).map((m) => m.name));
  const missing = netDriverModules(machine).filter((name) => !builtin.has(name) && !carried.has(name));
  if (missing.length === 0) return;
  throw new IrbError(
    'IRB_BOOT_NET_DRIVER_MISSING',
    `the guest would have no network: kernel ${kernel.release} has ${missing.join(' and ')} as modules, not built in, and the archive lacks ${missing.length === 1 ? 'it' : 'them'} under lib/modules/${kernel.release}/; add ${missing.join(', ')} (irb build --kernel-modules … --modules net)`,
  );
}
