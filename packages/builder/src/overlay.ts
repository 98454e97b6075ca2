import type { CpioEntry } from '@irb/cpio';
import type { Rootfs } from '@irb/layers';
import type { ContainerConfig } from '@irb/registry';
import { consoleEntries } from './extras.ts';
import type { InitRootfsView } from './init.ts';
import { chooseInit, optionEffectsBefore } from './init-choice.ts';
import type { Preflight } from './preflight.ts';
import type { BuildSummary, InitramfsBuilderOptions } from './types.ts';

/** What {@link applyOverlay} added on top of the image. */
export interface Overlay {
  /** Where `/init` came from. */
  init: BuildSummary['init'];
  /** Which generated init, when it was generated. */
  initKind?: 'static' | 'sh';
  /** The program a generated init runs. */
  command?: string[];
  /** See `BuildSummary.warnings`. */
  warnings: string[];
  /** Entries the image lacks (mount points, WorkingDir, /dev/console), parents first; see withExtras. */
  extras: CpioEntry[];
}

/**
 * Puts what irb adds on top of the image's files into `rootfs`: the `inject` files, the chosen
 * `/init`, and the directories and `/dev/console` the kernel and the init need. Everything the
 * image did not bring is decided here, in one place, which is what a separate overlay member
 * of the archive would hold.
 */
export async function applyOverlay(
  rootfs: Rootfs,
  config: ContainerConfig | undefined,
  architecture: string,
  o: InitramfsBuilderOptions,
  pre: Preflight,
): Promise<Overlay> {
  const view = rootfsView(rootfs, o.signal);
  const imageHasInit = (await view.stat('/init')) !== undefined;
  const effects = await optionEffectsBefore(rootfs, view, o.exclude ?? [], pre.injects);
  for (const i of pre.injects) await rootfs.injectHostPath(i.src, i.dest);
  const choice = await chooseInit({
    options: o,
    imageHasInit,
    injectsInit: pre.injectsInit,
    view,
    config,
    architecture,
    effects,
  });
  const extras: CpioEntry[] = [];
  const root = { mode: 0o755, uid: 0, gid: 0 };
  if (choice.source === 'file' && choice.hostPath !== undefined) {
    rootfs.inject('/init', { hostPath: choice.hostPath }, root);
  } else if (choice.source === 'generated' && choice.kind === 'sh') {
    rootfs.inject('/init', { bytes: new TextEncoder().encode(choice.plan.script) }, root);
    for (const dir of choice.plan.directories)
      extras.push({ type: 'directory', path: dir.slice(1), mode: 0o755 });
  } else if (choice.source === 'generated') {
    rootfs.inject('/init', { bytes: choice.plan.binary }, root);
    // Root only: the parameters are the program's environment, which may hold secrets.
    rootfs.inject(choice.plan.configPath, { bytes: choice.plan.config }, { mode: 0o600, uid: 0, gid: 0 });
    for (const dir of choice.plan.directories)
      extras.push({ type: 'directory', path: dir.slice(1), mode: 0o755 });
  }
  const hasDev = (await view.stat('/dev')) !== undefined || extras.some((e) => e.path === 'dev');
  extras.push(...consoleEntries(rootfs.lookup('/dev/console') !== undefined, hasDev));
  return {
    init: choice.source,
    ...(choice.source === 'generated' ? { initKind: choice.kind } : {}),
    ...(choice.source === 'generated'
      ? { command: choice.kind === 'sh' ? choice.plan.argv : choice.plan.run.argv }
      : {}),
    warnings: choice.source === 'generated' && choice.kind === 'static' ? choice.warnings : [],
    extras,
  };
}

/** Adapts @irb/layers' Rootfs to what init planning asks. */
export function rootfsView(rootfs: Rootfs, signal?: AbortSignal): InitRootfsView {
  const absolute = (path: string | Uint8Array) => {
    const p = typeof path === 'string' ? path : new TextDecoder().decode(path);
    return p === '.' ? '/' : `/${p}`;
  };
  return {
    async stat(path) {
      const found = rootfs.lookup(path, { follow: true });
      if (!found) return undefined;
      return { type: found.type === 'fifo' ? 'fifo' : found.type, path: absolute(found.path) };
    },
    async readText(path) {
      // readFile follows symlinks and hard links and sees whiteouts, as the guest would.
      const bytes = await rootfs.readFile(path, signal ? { signal } : {});
      return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
    },
  };
}
