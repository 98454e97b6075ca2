import type { CpioEntry } from '@irb/cpio';
import { indexLayers } from '@irb/layers';
import type { ContainerConfig } from '@irb/registry';
import { type BaseNode, type BaseTree, cpioPathOf, displayOf, keyOfPath, resolvePath } from './base-tree.ts';
import type { InitRootfsView } from './init.ts';
import { chooseInit, optionEffectsBefore } from './init-choice.ts';
import { blameInject, placedFileBytes, placeEntries } from './place.ts';
import type { Preflight } from './preflight.ts';
import type { BuildSummary, InitramfsBuilderOptions } from './types.ts';

/** What {@link planOverlay} decided: the overlay member and where `/init` came from. */
export interface Overlay {
  /** Where `/init` came from. */
  init: BuildSummary['init'];
  /** Which generated init, when it was generated. */
  initKind?: 'static' | 'sh';
  /** The program a generated init runs. */
  command?: string[];
  /** See `BuildSummary.warnings`. */
  warnings: string[];
  /**
   * The overlay member's entries, parents first, at paths resolved through the base's symlinks;
   * directories the base already has are left out. Bodies are bytes or host files opened when
   * read, so the list can be packed once.
   */
  entries: CpioEntry[];
}

/**
 * Plans the overlay member, what irb adds on top of the image: the `inject` files, the chosen
 * `/init` (and `/irb/init.conf`), and the directories the init needs that the image lacks. It
 * never touches the base: the files go into an empty Rootfs, and are then placed where the
 * kernel will put them on top of the base member.
 *
 * Kernel rules this follows (init/initramfs.c): an entry replaces what an earlier member left at
 * its path when the types differ (`clean_path` unlinks a file or symlink, but only rmdirs an
 * EMPTY directory), and a directory entry over an existing directory rewrites its mode and
 * owner. So:
 * - destinations are resolved through the base's symlinks (`/bin/agent` on a merged-/usr image
 *   goes to `usr/bin/agent`), and a directory entry is emitted only where the base has no
 *   directory: the overlay never turns `/bin → usr/bin` into a directory, never chmods `/tmp`;
 * - a file where the base has a directory is refused (the kernel could not remove it when it is
 *   not empty, and irb does not list the base's directories' contents).
 */
export async function planOverlay(
  base: BaseTree,
  config: ContainerConfig | undefined,
  architecture: string,
  o: InitramfsBuilderOptions,
  pre: Preflight,
): Promise<Overlay> {
  const signal = o.signal;
  const baseLookup = (key: string) => base.node(key);
  const baseView = unionView(new Map(), base, signal);
  const imageHasInit = (await baseView.stat('/init')) !== undefined;
  const effects = await optionEffectsBefore(
    {
      lookup: (path) => resolvePath(baseLookup, keyOfPath(path), false).node,
      excluded: base.excluded,
    },
    baseView,
    o.exclude ?? [],
    pre.injects,
  );

  const scratch = await indexLayers([], {
    ...(pre.sourceDateEpoch !== undefined ? { sourceDateEpoch: pre.sourceDateEpoch } : {}),
  });
  for (const i of pre.injects) await scratch.injectHostPath(i.src, i.dest);
  const mtime = pre.sourceDateEpoch ?? 0;
  const place = (blame: (key: string) => string) =>
    placeEntries(scratch.entries(signal ? { signal } : {}), baseLookup, mtime, blame);
  const injected = await place((key) => blameInject(pre.injects, key));

  const choice = await chooseInit({
    options: o,
    imageHasInit,
    injectsInit: pre.injectsInit,
    view: unionView(injected.nodes, base, signal),
    config,
    architecture,
    effects,
  });
  const root = { mode: 0o755, uid: 0, gid: 0 };
  let directories: string[] = [];
  if (choice.source === 'file' && choice.hostPath !== undefined) {
    scratch.inject('/init', { hostPath: choice.hostPath }, root);
  } else if (choice.source === 'generated' && choice.kind === 'sh') {
    scratch.inject('/init', { bytes: new TextEncoder().encode(choice.plan.script) }, root);
    if (choice.plan.helper)
      scratch.inject(choice.plan.helper.path, { bytes: choice.plan.helper.binary }, root);
    directories = choice.plan.directories;
  } else if (choice.source === 'generated') {
    scratch.inject('/init', { bytes: choice.plan.binary }, root);
    // Root only: the parameters are the program's environment, which may hold secrets.
    scratch.inject(choice.plan.configPath, { bytes: choice.plan.config }, { mode: 0o600, uid: 0, gid: 0 });
    directories = choice.plan.directories;
  }
  const placed =
    choice.source === 'image'
      ? injected
      : await place((key) => (key === 'init' ? '`init` (the /init file)' : blameInject(pre.injects, key)));
  // The directories the init needs that neither member has (mount points, WorkingDir).
  // Resolved like the rest: a WorkingDir below a symlink of the image is made where it leads.
  const lookup = (key: string) => placed.nodes.get(key) ?? base.node(key);
  for (const dir of directories) {
    const { key, node } = resolvePath(lookup, keyOfPath(dir), true);
    if (node !== undefined || key === '') continue;
    placed.entries.push({ type: 'directory', path: cpioPathOf(key), mode: 0o755, mtime });
    placed.nodes.set(key, { type: 'directory', mode: 0o755 });
  }
  return {
    init: choice.source,
    ...(choice.source === 'generated' ? { initKind: choice.kind } : {}),
    ...(choice.source === 'generated'
      ? { command: choice.kind === 'sh' ? choice.plan.argv : choice.plan.run.argv }
      : {}),
    warnings: choice.source === 'generated' ? choice.warnings : [],
    entries: placed.entries,
  };
}

/**
 * What init planning sees: the overlay's nodes over the base's (an overlay node wins at the same
 * key), as the guest sees the members once unpacked.
 */
export function unionView(
  overlay: ReadonlyMap<string, BaseNode>,
  base: BaseTree,
  signal?: AbortSignal,
): InitRootfsView {
  const lookup = (key: string) => overlay.get(key) ?? base.node(key);
  return {
    async stat(path) {
      const r = resolvePath(lookup, keyOfPath(path), true);
      if (!r.node || r.node.type === 'symlink') return undefined;
      return { type: r.node.type, path: displayOf(r.key) };
    },
    async readText(path) {
      const r = resolvePath(lookup, keyOfPath(path), true);
      if (r.node?.type !== 'file') return undefined;
      const own = overlay.get(r.key);
      const bytes = (own && (await placedFileBytes(own))) ?? (await base.readFile(r.key, signal));
      return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
    },
    async readHead(path, length) {
      const r = resolvePath(lookup, keyOfPath(path), true);
      if (r.node?.type !== 'file') return undefined;
      const own = overlay.get(r.key);
      return own ? placedFileBytes(own, length) : base.readHead(r.key, length, signal);
    },
  };
}
