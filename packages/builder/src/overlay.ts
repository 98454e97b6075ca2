import type { CpioEntry } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { indexLayers, type Rootfs } from '@irb/layers';
import type { ContainerConfig } from '@irb/registry';
import { type BaseNode, type BaseTree, cpioPathOf, displayOf, keyOfPath, resolvePath } from './base-tree.ts';
import type { InitRootfsView } from './init.ts';
import { chooseInit, optionEffectsBefore } from './init-choice.ts';
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
  const injected = await placeEntries(scratch, base, pre, signal, (key) => blameInject(pre, key));

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
      : await placeEntries(scratch, base, pre, signal, (key) =>
          key === 'init' ? '`init` (the /init file)' : blameInject(pre, key),
        );
  // The directories the init needs that neither member has (mount points, WorkingDir).
  const mtime = pre.sourceDateEpoch ?? 0;
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
    warnings: choice.source === 'generated' && choice.kind === 'static' ? choice.warnings : [],
    entries: placed.entries,
  };
}

/** The overlay's entries placed over the base, and the nodes they make (by resolved key). */
interface Placed {
  entries: CpioEntry[];
  nodes: Map<string, BaseNode>;
}

/**
 * Places the scratch Rootfs's entries over the base: each path resolved through the symlinks
 * of both (overlay first), directories the base has dropped, missing parents synthesized.
 */
async function placeEntries(
  scratch: Rootfs,
  base: BaseTree,
  pre: Preflight,
  signal: AbortSignal | undefined,
  blame: (key: string) => string,
): Promise<Placed> {
  const nodes = new Map<string, BaseNode>();
  const entries: CpioEntry[] = [];
  const lookup = (key: string) => nodes.get(key) ?? base.node(key);
  const mtime = pre.sourceDateEpoch ?? 0;
  const ensureParents = (key: string) => {
    const parts = key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (lookup(parent)?.type === 'directory') continue;
      entries.push({ type: 'directory', path: cpioPathOf(parent), mode: 0o755, mtime });
      nodes.set(parent, { type: 'directory', mode: 0o755 });
    }
  };
  // Injected bodies are bytes or host files opened lazily: listing them reads nothing.
  for await (const entry of scratch.entries(signal ? { signal } : {})) {
    const raw = keyOfPath(entry.path);
    if (raw === '') continue;
    if (entry.type === 'directory') {
      // "This directory exists": follow a symlink the base has here, keep what the base has.
      const r = resolvePath(lookup, raw, true);
      if (r.node?.type === 'directory') continue;
      ensureParents(r.key);
      entries.push({ ...entry, path: cpioPathOf(r.key) });
      nodes.set(r.key, { type: 'directory', mode: entry.mode });
      continue;
    }
    const r = resolvePath(lookup, raw, false);
    if (r.node?.type === 'directory' && !nodes.has(r.key)) {
      throw new IrbError(
        'IRB_INJECT_DEST_INVALID',
        `${blame(raw)} puts a file at ${displayOf(r.key)}, where the image has a directory; an overlay member cannot replace a directory (the kernel removes only empty ones): choose a path below it`,
      );
    }
    ensureParents(r.key);
    if (r.node?.type === 'file' && r.node.linked && !nodes.has(r.key) && entry.type === 'file') {
      // The kernel writes a file over a file in place (same type: O_TRUNC on the existing inode),
      // which would change every hard-linked name of it. An entry of another type first makes it
      // unlink the name, so only this name gets the new file, as in a one-member archive.
      entries.push({ type: 'symlink', path: cpioPathOf(r.key), target: '.', mode: 0o777, mtime });
    }
    entries.push({ ...entry, path: cpioPathOf(r.key) });
    const node: BaseNode = { type: entry.type === 'socket' ? 'fifo' : entry.type, mode: entry.mode };
    if (entry.type === 'symlink') node.target = keyOfPath(entry.target);
    if (entry.type === 'file') bodies.set(node, entry);
    nodes.set(r.key, node);
  }
  return { entries, nodes };
}

/** The overlay's file entries by node, so init planning can read an injected /etc/passwd. */
const bodies = new WeakMap<BaseNode, CpioEntry>();

async function bodyBytes(entry: CpioEntry): Promise<Uint8Array> {
  if (entry.type !== 'file' || entry.body === undefined) return new Uint8Array(0);
  const body = entry.body;
  if (body instanceof Uint8Array) return body;
  const chunks: Uint8Array[] = [];
  for await (const chunk of typeof body === 'function' ? body() : body) chunks.push(chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

/** The `inject` spec that put something at (or below) the raw key, for messages. */
function blameInject(pre: Preflight, key: string): string {
  const hit = [...pre.injects].reverse().find((i) => {
    const dest = keyOfPath(i.dest);
    return key === dest || key.startsWith(`${dest}/`) || dest === '';
  });
  return hit ? `\`inject\` ${hit.spec}` : '`inject`';
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
      const entry = own ? bodies.get(own) : undefined;
      const bytes = entry ? await bodyBytes(entry) : await base.readFile(r.key, signal);
      return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
    },
  };
}
