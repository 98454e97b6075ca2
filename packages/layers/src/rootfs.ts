import { createReadStream, lstatSync, statSync } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join as joinHostPath } from 'node:path';
import { decompress } from '@irb/compress';
import {
  CPIO_MAX_FILE_SIZE,
  CPIO_MAX_PATH_BYTES,
  type CpioEntry,
  type CpioFileEntry,
  type CpioPath,
} from '@irb/cpio';
import { IrbError, isIrbError } from '@irb/errors';
import { absoluteText, cpioPathOfKey, displayKey, type Glob, keyOf, keyOfInput, splitKey } from './path.ts';
import { TarReader } from './tar.ts';
import type {
  InjectOptions,
  InjectSource,
  LayerSource,
  LayersProgress,
  RootfsNodeInfo,
  RootfsStats,
} from './types.ts';

/** Where a file's bytes come from when `entries()` streams it. */
export type BodyRef =
  | { kind: 'empty' }
  | { kind: 'layer'; layer: number; ordinal: number }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'host'; path: string };

/** A file's inode: shared by all of its hard-link names. */
export interface Inode {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  body: BodyRef;
  xattrs?: string[];
}

interface NodeBase {
  name: string;
  parent: DirNode | undefined;
  /** Index of the last layer that wrote this node or something below it (see LayerApplier). */
  upper?: number;
}

interface MetaNode extends NodeBase {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  xattrs?: string[];
}

export interface DirNode extends MetaNode {
  type: 'directory';
  children: Map<string, Node>;
}

export interface FileNode extends NodeBase {
  type: 'file';
  inode: Inode;
}

export interface SymlinkNode extends MetaNode {
  type: 'symlink';
  /** Target as a key (exact bytes). */
  target: string;
}

export interface DeviceNode extends MetaNode {
  type: 'char' | 'block' | 'fifo';
  rdevMajor: number;
  rdevMinor: number;
}

export type Node = DirNode | FileNode | SymlinkNode | DeviceNode;

/** Names what is being done in error messages; a function so hot paths build no strings. */
export type Context = string | (() => string);

/** The text of a {@link Context}. */
export function describe(context: Context): string {
  return typeof context === 'function' ? context() : context;
}

/** Symlinks followed while resolving one path before giving up (Linux stops at 40, securejoin at 255). */
const MAX_SYMLINKS = 255;
const MTIME_MAX = 0xffff_ffff;

/** The key of a node in the tree (no leading `/`; the root is ''). */
export function keyOfNode(node: Node): string {
  const parts: string[] = [];
  for (let n: Node | undefined = node; n?.parent; n = n.parent) parts.push(n.name);
  return parts.reverse().join('/');
}

function metaOf(node: Node): { mode: number; uid: number; gid: number; mtime: number; xattrs?: string[] } {
  return node.type === 'file' ? node.inode : node;
}

function sortedChildren(dir: DirNode): Node[] {
  const names = [...dir.children.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return names.map((name) => dir.children.get(name) as Node);
}

/** Depth-first, children in byte order: parents always come before their children. */
function* walk(dir: DirNode, prefix: string): Generator<[Node, string]> {
  for (const child of sortedChildren(dir)) {
    const key = prefix === '' ? child.name : `${prefix}/${child.name}`;
    yield [child, key];
    if (child.type === 'directory') yield* walk(child, key);
  }
}

function countNodes(node: Node): number {
  if (node.type !== 'directory') return 1;
  let n = 1;
  for (const child of node.children.values()) n += countNodes(child);
  return n;
}

/** The hard-link groups and counts of the current tree (recomputed after each change). */
interface Analysis {
  /** The first name (in walk order) of each file inode. */
  first: Map<Inode, FileNode>;
  /** Further names of hard-linked inodes, in walk order (absent for single-name files). */
  links: Map<Inode, string[]>;
  stats: Omit<RootfsStats, 'excluded' | 'clampedPaths' | 'clampedMtimes'>;
}

/** Internal knobs of a {@link Rootfs}; built by `indexLayers`. */
export interface RootfsInit {
  layers: readonly LayerSource[];
  sourceDateEpoch?: number;
  onProgress?: (event: LayersProgress) => void;
}

/**
 * The root filesystem of an image as metadata: every path after all layers (and injections)
 * with its type, owner, mode, mtime, link target or device numbers, and for files a reference
 * to where the body lives (layer and member number, or an injected source). Built by
 * {@link indexLayers}; {@link Rootfs.entries} streams it out as CPIO entries.
 */
export class Rootfs {
  readonly #layers: readonly LayerSource[];
  readonly #epoch: number | undefined;
  readonly #onProgress: ((event: LayersProgress) => void) | undefined;
  readonly #root: DirNode;
  #analysis: Analysis | undefined;
  #excluded = 0;
  #clampedPaths = 0;
  #clampedMtimes = 0;

  /** Use {@link indexLayers} to get one; constructing an empty Rootfs directly is not a stable API. */
  constructor(init: RootfsInit) {
    this.#layers = init.layers;
    this.#epoch = init.sourceDateEpoch;
    this.#onProgress = init.onProgress;
    this.#root = {
      type: 'directory',
      name: '',
      parent: undefined,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: this.#synthesizedTime(),
      children: new Map(),
    };
  }

  #synthesizedTime(): number {
    return this.#epoch ?? 0;
  }

  /** @internal Lowers an mtime to SOURCE_DATE_EPOCH and into the newc range, counting changes. */
  clampTime(mtime: number): number {
    let t = mtime;
    if (this.#epoch !== undefined && t > this.#epoch) t = this.#epoch;
    t = Math.min(Math.max(t, 0), MTIME_MAX);
    if (t !== mtime) this.#clampedMtimes++;
    return t;
  }

  /** @internal */
  noteClampedPath(): void {
    this.#clampedPaths++;
  }

  #changed(): void {
    this.#analysis = undefined;
  }

  /** @internal The root directory node. */
  get root(): DirNode {
    return this.#root;
  }

  #newDir(name: string, parent: DirNode): DirNode {
    return {
      type: 'directory',
      name,
      parent,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: this.#synthesizedTime(),
      children: new Map(),
    };
  }

  /**
   * @internal Resolves a directory path inside the root, following symlinks the way
   * securejoin does for umoci (absolute targets start at the root, `..` stops there), so a
   * name under a symlinked parent lands where the link points and never outside the root.
   * With `create`, missing directories are synthesized (0755, root); a non-directory in the
   * way is an error. Without `create`, returns undefined when the path does not resolve.
   */
  resolveDir(components: readonly string[], create: boolean, context: Context): DirNode | undefined {
    let dir = this.#root;
    const queue = [...components].reverse();
    let links = 0;
    while (queue.length > 0) {
      const part = queue.pop() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        dir = dir.parent ?? this.#root;
        continue;
      }
      const child = dir.children.get(part);
      if (!child) {
        if (!create) return undefined;
        const made = this.#newDir(part, dir);
        dir.children.set(part, made);
        this.#changed();
        dir = made;
        continue;
      }
      if (child.type === 'directory') {
        dir = child;
        continue;
      }
      if (child.type === 'symlink') {
        if (++links > MAX_SYMLINKS) {
          throw new IrbError(
            'IRB_LAYER_SYMLINK_LOOP',
            `${describe(context)}: resolving ${displayKey(keyOfNode(child))} went through more than ${MAX_SYMLINKS} symlinks; fix the symlink loop in the image`,
          );
        }
        if (child.target.startsWith('/')) dir = this.#root;
        const parts = child.target.split('/');
        for (let i = parts.length - 1; i >= 0; i--) queue.push(parts[i] as string);
        continue;
      }
      if (!create) return undefined;
      throw new IrbError(
        'IRB_LAYER_NOT_A_DIRECTORY',
        `${describe(context)}: needs a directory at ${displayKey(keyOfNode(child))}, which is a ${child.type}; the layer is malformed (a container runtime refuses it too) — rebuild the image`,
      );
    }
    return dir;
  }

  /** @internal Resolves a full path without following its last component. */
  locate(
    key: string,
    context: Context,
  ): { parent: DirNode; name: string; node: Node | undefined } | { root: true } | undefined {
    const { components } = splitKey(key);
    const name = components.pop();
    if (name === undefined) return { root: true };
    const parent = this.resolveDir(components, false, context);
    if (!parent) return undefined;
    return { parent, name, node: parent.children.get(name) };
  }

  /** @internal Places `node` at `name` in `parent`, replacing whatever was there. */
  place(parent: DirNode, node: Node): void {
    node.parent = parent;
    parent.children.set(node.name, node);
    this.#changed();
  }

  /** @internal Removes `name` (and everything below) from `parent`. */
  remove(parent: DirNode, name: string): void {
    if (parent.children.delete(name)) this.#changed();
  }

  /** @internal Applies exclude globs after all layers; counts removed paths. */
  exclude(globs: readonly Glob[]): void {
    if (globs.length === 0) return;
    const visit = (dir: DirNode, prefix: string): void => {
      for (const child of sortedChildren(dir)) {
        const key = prefix === '' ? child.name : `${prefix}/${child.name}`;
        if (globs.some((glob) => glob.test(key))) {
          this.#excluded += countNodes(child);
          dir.children.delete(child.name);
          this.#changed();
        } else if (child.type === 'directory') {
          visit(child, key);
        }
      }
    };
    visit(this.#root, '');
  }

  /**
   * Follows the last component too (for `lookup(..., { follow: true })`).
   */
  #follow(node: Node | undefined, context: Context): Node | undefined {
    let current = node;
    let links = 0;
    while (current?.type === 'symlink') {
      if (++links > MAX_SYMLINKS) return undefined;
      const start = current.target.startsWith('/') ? this.#root : (current.parent ?? this.#root);
      const components = current.target.split('/');
      const name = components.pop() ?? '';
      const base = start === this.#root ? [] : keyOfNode(start).split('/');
      const dir = this.resolveDir([...base, ...components], false, context);
      if (!dir) return undefined;
      if (name === '' || name === '.') current = dir;
      else if (name === '..') current = dir.parent ?? this.#root;
      else current = dir.children.get(name);
    }
    return current;
  }

  #nodeAt(path: string | Uint8Array, follow: boolean): Node | undefined {
    const context = () => `lookup ${typeof path === 'string' ? path : displayKey(keyOf(path))}`;
    try {
      const found = this.locate(keyOfInput(path), context);
      if (!found) return undefined;
      const node = 'root' in found ? this.#root : found.node;
      return follow ? this.#follow(node, context) : node;
    } catch (error) {
      if (isIrbError(error)) return undefined;
      throw error;
    }
  }

  /**
   * The content of the regular file at `path` (symlinks followed inside the root), read from
   * its layer blob (or injected source); `undefined` when there is no such file. For small
   * files such as `/etc/passwd`: refuses files larger than `maxBytes` (default 16 MiB).
   */
  async readFile(
    path: string | Uint8Array,
    options: { signal?: AbortSignal; maxBytes?: number } = {},
  ): Promise<Uint8Array | undefined> {
    const { signal } = options;
    const node = this.#nodeAt(path, true);
    if (node?.type !== 'file') return undefined;
    const { inode } = node;
    const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    if (inode.size > maxBytes) {
      throw new IrbError(
        'IRB_LAYER_FILE_TOO_LARGE',
        `${displayKey(keyOfNode(node))} is ${inode.size} bytes, more than the ${maxBytes} readFile() allows; stream it with entries() instead`,
      );
    }
    const body = inode.body;
    if (body.kind === 'empty') return new Uint8Array(0);
    if (body.kind === 'bytes') return body.bytes.slice();
    const out = new Uint8Array(inode.size);
    let at = 0;
    const take = async (chunks: AsyncIterable<Uint8Array>) => {
      for await (const chunk of chunks) {
        if (at + chunk.byteLength > out.byteLength) break;
        out.set(chunk, at);
        at += chunk.byteLength;
      }
    };
    if (body.kind === 'host') await take(hostBody(body.path, inode.size, signal));
    else {
      const layer = this.#layers[body.layer] as LayerSource;
      const label = layerLabel(body.layer, this.#layers.length, layer);
      const reader = new TarReader(
        decompress(layer.open(signal ? { signal } : {}), {
          format: 'auto',
          mediaType: layer.mediaType,
          label,
          ...(signal ? { signal } : {}),
        }),
        label,
      );
      try {
        for (;;) {
          const member = await reader.next();
          if (!member || member.ordinal > body.ordinal) break;
          if (member.ordinal === body.ordinal && member.type === 'file' && member.size === inode.size) {
            await take(reader.body());
            break;
          }
        }
      } finally {
        await reader.close();
      }
    }
    if (at !== inode.size) {
      throw new IrbError(
        'IRB_LAYER_CHANGED',
        `${displayKey(keyOfNode(node))}: its layer blob changed since it was indexed; re-pull the image`,
      );
    }
    return out;
  }

  /**
   * The node at `path` after all layers, exclusions and injections, or undefined. Parent
   * symlinks are resolved inside the root; the last component is followed only with
   * `follow: true`.
   */
  lookup(path: string | Uint8Array, options: { follow?: boolean } = {}): RootfsNodeInfo | undefined {
    const node = this.#nodeAt(path, options.follow ?? false);
    if (!node) return undefined;
    const key = node === this.#root ? '' : keyOfNode(node);
    const meta = metaOf(node);
    const info: RootfsNodeInfo = {
      type: node.type,
      mode: meta.mode,
      uid: meta.uid,
      gid: meta.gid,
      mtime: meta.mtime,
      size: node.type === 'file' ? node.inode.size : 0,
      nlink: node.type === 'file' ? 1 + (this.#analyze().links.get(node.inode)?.length ?? 0) : 1,
      path: key === '' ? '.' : cpioPathOfKey(key),
      xattrs: [...(meta.xattrs ?? [])],
    };
    if (node.type === 'symlink') info.target = cpioPathOfKey(node.target);
    if (node.type === 'char' || node.type === 'block') {
      info.rdevMajor = node.rdevMajor;
      info.rdevMinor = node.rdevMinor;
    }
    return info;
  }

  /**
   * Puts a file at `dest` after all layers: parents are created (0755, root) and whatever the
   * image had at `dest` — file, symlink or a whole directory — is replaced. Parent symlinks
   * are followed inside the root (so `/bin/x` lands in `/usr/bin/x` on merged-/usr images).
   * A host file is only stat'ed now and streamed from disk by `entries()`.
   */
  inject(dest: string, source: InjectSource, options: InjectOptions = {}): void {
    const context = `inject ${dest}`;
    const { components } = splitKey(keyOfInput(dest));
    const name = components.pop();
    if (name === undefined) {
      throw new IrbError(
        'IRB_INJECT_DEST_INVALID',
        `${context}: the destination must name a file, not the root directory`,
      );
    }
    let body: BodyRef;
    let size: number;
    if ('bytes' in source) {
      size = source.bytes.byteLength;
      body = size === 0 ? { kind: 'empty' } : { kind: 'bytes', bytes: source.bytes };
    } else {
      let stat: ReturnType<typeof statSync>;
      try {
        stat = statSync(source.hostPath);
      } catch (cause) {
        throw new IrbError(
          'IRB_INJECT_SOURCE_UNREADABLE',
          `${context}: cannot read ${source.hostPath}; check the path`,
          {
            cause,
          },
        );
      }
      if (!stat.isFile()) {
        throw new IrbError(
          'IRB_INJECT_SOURCE_UNREADABLE',
          `${context}: ${source.hostPath} is not a regular file; use injectHostPath() for directories`,
        );
      }
      size = stat.size;
      body = size === 0 ? { kind: 'empty' } : { kind: 'host', path: source.hostPath };
    }
    if (size > CPIO_MAX_FILE_SIZE) throw tooLarge(context, keyOfInput(dest), size);
    const parent = this.#injectParent(components, context);
    const inode: Inode = {
      mode: (options.mode ?? 0o755) & 0o7777,
      uid: options.uid ?? 0,
      gid: options.gid ?? 0,
      mtime: options.mtime ?? this.#synthesizedTime(),
      size,
      body,
    };
    this.place(parent, { type: 'file', name, parent, inode });
  }

  /** Resolves (creating) the parent directory of an injected path, with an injection-worded error. */
  #injectParent(components: readonly string[], context: string): DirNode {
    try {
      return this.resolveDir(components, true, context) as DirNode;
    } catch (error) {
      if (!isIrbError(error) || error.code !== 'IRB_LAYER_NOT_A_DIRECTORY') throw error;
      throw new IrbError(
        'IRB_INJECT_DEST_INVALID',
        `${context}: a parent of the destination is not a directory in the image, so nothing can be placed below it; choose another destination`,
        { cause: error },
      );
    }
  }

  /**
   * Copies a host file or directory tree to `dest` (`SRC:DEST` semantics, like `COPY`): a file
   * becomes a file at `dest` (or inside it when `dest` ends with `/`); a directory's contents
   * are merged into `dest`, existing image directories kept, anything else replaced. Files
   * get 0755, new directories 0755, everything root-owned; host symlinks stay symlinks.
   */
  async injectHostPath(src: string, dest: string): Promise<void> {
    let stat: Awaited<ReturnType<typeof lstat>>;
    try {
      stat = await lstat(src);
    } catch (cause) {
      throw new IrbError(
        'IRB_INJECT_SOURCE_UNREADABLE',
        `inject ${src}:${dest}: cannot read ${src}; check the path`,
        {
          cause,
        },
      );
    }
    if (stat.isFile()) {
      const target = dest.endsWith('/') ? `${dest}${basename(src)}` : dest;
      this.inject(target, { hostPath: src });
      return;
    }
    if (!stat.isDirectory()) {
      throw new IrbError(
        'IRB_INJECT_SOURCE_UNREADABLE',
        `inject ${src}:${dest}: ${src} is neither a regular file nor a directory; inject files or directories`,
      );
    }
    await this.#injectDir(src, dest);
  }

  async #injectDir(src: string, dest: string): Promise<void> {
    const context = `inject ${src}:${dest}`;
    const { components } = splitKey(keyOfInput(dest));
    const name = components.pop();
    let dir: DirNode;
    if (name === undefined) {
      dir = this.#root;
    } else {
      const parent = this.#injectParent(components, context);
      const existing = parent.children.get(name);
      if (existing?.type === 'directory') dir = existing;
      else if (existing?.type === 'symlink') {
        dir = this.resolveDir([...components, name], true, context) as DirNode;
      } else {
        dir = this.#newDir(name, parent);
        this.place(parent, dir);
      }
    }
    const base = dir === this.#root ? '' : keyOfNode(dir);
    const names = (await readdir(src)).sort();
    for (const entry of names) {
      const hostPath = joinHostPath(src, entry);
      const target = `/${base === '' ? '' : `${Buffer.from(base, 'latin1').toString('utf8')}/`}${entry}`;
      const stat = lstatSync(hostPath);
      if (stat.isDirectory()) {
        await this.#injectDir(hostPath, target);
      } else if (stat.isSymbolicLink()) {
        const link = await readlink(hostPath, { encoding: 'buffer' });
        this.place(dir, {
          type: 'symlink',
          name: keyOfInput(entry),
          parent: dir,
          mode: 0o777,
          uid: 0,
          gid: 0,
          mtime: this.#synthesizedTime(),
          target: keyOf(new Uint8Array(link)),
        });
      } else if (stat.isFile()) {
        this.inject(target, { hostPath });
      } else {
        throw new IrbError(
          'IRB_INJECT_SOURCE_UNREADABLE',
          `${context}: ${hostPath} is a special file; only files, directories and symlinks can be injected`,
        );
      }
    }
  }

  #analyze(): Analysis {
    if (this.#analysis) return this.#analysis;
    // Only node references for single-name files: no path strings held for the whole tree.
    const first = new Map<Inode, FileNode>();
    const links = new Map<Inode, string[]>();
    let entries = 1;
    let directories = 1;
    let uncompressedBytes = 0;
    let fileNames = 0;
    const lostXattrs: Array<{ path: string; keys: string[] }> = [];
    if (this.#root.xattrs?.length) lostXattrs.push({ path: '/', keys: [...this.#root.xattrs] });
    for (const [node, key] of walk(this.#root, '')) {
      entries++;
      if (node.type === 'directory') directories++;
      if (node.type === 'file') {
        fileNames++;
        if (!first.has(node.inode)) {
          first.set(node.inode, node);
          uncompressedBytes += node.inode.size;
        } else {
          const list = links.get(node.inode);
          if (list) list.push(key);
          else links.set(node.inode, [key]);
        }
      }
      const xattrs = metaOf(node).xattrs;
      if (xattrs && xattrs.length > 0) lostXattrs.push({ path: absoluteText(key), keys: [...xattrs] });
    }
    this.#analysis = {
      first,
      links,
      stats: {
        entries,
        files: first.size,
        directories,
        hardlinks: fileNames - first.size,
        uncompressedBytes,
        lostXattrs,
      },
    };
    return this.#analysis;
  }

  /** Counts of what `entries()` will emit; recomputed after injections. */
  get stats(): RootfsStats {
    const { stats } = this.#analyze();
    return {
      ...stats,
      lostXattrs: stats.lostXattrs.map((item) => ({ path: item.path, keys: [...item.keys] })),
      excluded: this.#excluded,
      clampedPaths: this.#clampedPaths,
      clampedMtimes: this.#clampedMtimes,
    };
  }

  /** @internal Refuses what the kernel cannot unpack: names or targets over 4095 bytes, files of 4 GiB or more. */
  checkLimits(): void {
    for (const [node, key] of walk(this.#root, '')) {
      if (key.length > CPIO_MAX_PATH_BYTES) {
        throw new IrbError(
          'IRB_LAYER_NAME_TOO_LONG',
          `${displayKey(key)} is ${key.length} bytes long; the kernel accepts at most ${CPIO_MAX_PATH_BYTES} — exclude it`,
        );
      }
      if (node.type === 'symlink' && node.target.length > CPIO_MAX_PATH_BYTES) {
        throw new IrbError(
          'IRB_LAYER_NAME_TOO_LONG',
          `symlink ${displayKey(key)} has a ${node.target.length}-byte target; the kernel accepts at most ${CPIO_MAX_PATH_BYTES} — exclude it`,
        );
      }
      if (node.type === 'file' && node.inode.size > CPIO_MAX_FILE_SIZE) {
        throw tooLarge('rootfs', key, node.inode.size);
      }
    }
  }

  /**
   * Streams the root filesystem as CPIO entries: first the root, directories, symlinks,
   * devices, FIFOs and empty files in depth-first byte order (parents before children), then
   * file bodies layer by layer in tar order (each needed layer blob reopened once and read
   * sequentially), then injected files. Hard links come as one entry with `links`. Bodies are
   * streamed: read each entry's body before asking for the next entry.
   */
  async *entries(options: { signal?: AbortSignal } = {}): AsyncGenerator<CpioEntry> {
    const { signal } = options;
    signal?.throwIfAborted();
    this.checkLimits();
    const { first, links } = this.#analyze();
    const fileEntry = (node: FileNode, key = keyOfNode(node)): CpioFileEntry => {
      const { inode } = node;
      const entry: CpioFileEntry = {
        type: 'file',
        path: cpioPathOfKey(key),
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        mtime: inode.mtime,
        size: inode.size,
      };
      const more = links.get(inode);
      if (more) entry.links = more.map(cpioPathOfKey);
      return entry;
    };

    yield {
      type: 'directory',
      path: '.',
      mode: this.#root.mode,
      uid: this.#root.uid,
      gid: this.#root.gid,
      mtime: this.#root.mtime,
    };
    const byLayer = new Map<number, Map<number, FileNode>>();
    const injected: FileNode[] = [];
    const emptyLinked: FileNode[] = [];
    for (const [node, key] of walk(this.#root, '')) {
      signal?.throwIfAborted();
      const path: CpioPath = cpioPathOfKey(key);
      switch (node.type) {
        case 'directory':
          yield { type: 'directory', path, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime };
          break;
        case 'symlink':
          yield {
            type: 'symlink',
            path,
            target: cpioPathOfKey(node.target),
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
          };
          break;
        case 'char':
        case 'block':
          yield {
            type: node.type,
            path,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            rdevMajor: node.rdevMajor,
            rdevMinor: node.rdevMinor,
          };
          break;
        case 'fifo':
          yield { type: 'fifo', path, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime };
          break;
        case 'file': {
          if (first.get(node.inode) !== node) break;
          const body = node.inode.body;
          // An empty file with several names waits until every directory is out: a later
          // name may sit in a directory the walk has not reached yet.
          if (body.kind === 'empty' && links.has(node.inode)) emptyLinked.push(node);
          else if (body.kind === 'empty') yield fileEntry(node, key);
          else if (body.kind === 'layer') {
            let wanted = byLayer.get(body.layer);
            if (!wanted) {
              wanted = new Map();
              byLayer.set(body.layer, wanted);
            }
            wanted.set(body.ordinal, node);
          } else injected.push(node);
          break;
        }
      }
    }

    for (const node of emptyLinked) yield fileEntry(node);

    const layerIndexes = [...byLayer.keys()].sort((a, b) => a - b);
    for (const index of layerIndexes) {
      const wanted = byLayer.get(index) as Map<number, FileNode>;
      const layer = this.#layers[index] as LayerSource;
      const label = layerLabel(index, this.#layers.length, layer);
      const reader = new TarReader(
        decompress(layer.open({ ...(signal ? { signal } : {}) }), {
          format: 'auto',
          mediaType: layer.mediaType,
          label,
          ...(signal ? { signal } : {}),
        }),
        label,
      );
      let left = wanted.size;
      let seen = 0;
      try {
        while (left > 0) {
          signal?.throwIfAborted();
          const member = await reader.next();
          if (!member) {
            throw new IrbError(
              'IRB_LAYER_CHANGED',
              `${label}: the blob ended before member ${Math.min(...wanted.keys())}; it changed since it was indexed — re-pull the image`,
            );
          }
          seen++;
          const node = wanted.get(member.ordinal);
          if (!node) continue;
          if (member.type !== 'file' || member.size !== node.inode.size) {
            throw new IrbError(
              'IRB_LAYER_CHANGED',
              `${label}: member ${member.ordinal} is not the file indexed earlier; the blob changed — re-pull the image`,
            );
          }
          left--;
          yield { ...fileEntry(node), body: reader.body() };
          if (seen % 1024 === 0) this.#progress('emit', index, layer, seen, false);
        }
      } finally {
        await reader.close();
      }
      this.#progress('emit', index, layer, seen, true);
    }

    const injectedSorted = injected
      .map((node) => ({ node, key: keyOfNode(node) }))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
    for (const { node, key } of injectedSorted) {
      signal?.throwIfAborted();
      const { body, size } = node.inode;
      if (body.kind === 'bytes') yield { ...fileEntry(node, key), body: body.bytes };
      else if (body.kind === 'host') {
        yield { ...fileEntry(node, key), body: () => hostBody(body.path, size, signal) };
      }
    }
  }

  #progress(
    phase: 'index' | 'emit',
    index: number,
    layer: LayerSource,
    entries: number,
    done: boolean,
  ): void {
    this.#onProgress?.({
      phase,
      layer: index,
      layers: this.#layers.length,
      digest: layer.digest,
      entries,
      done,
    });
  }

  /** @internal */
  progress(index: number, layer: LayerSource, entries: number, done: boolean): void {
    this.#progress('index', index, layer, entries, done);
  }
}

function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

function tooLarge(context: string, key: string, size: number): IrbError {
  return new IrbError(
    'IRB_LAYER_FILE_TOO_LARGE',
    `${context}: ${displayKey(key)} is ${size} bytes; a newc archive (and the kernel) holds files below 4 GiB — exclude it`,
  );
}

/** Names a layer in messages. */
export function layerLabel(index: number, count: number, layer: LayerSource): string {
  return `layer ${index + 1}/${count} (${layer.digest.slice(0, 19)})`;
}

async function* hostBody(
  path: string,
  size: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  let read = 0;
  const stream = createReadStream(path, signal ? { signal } : {});
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      read += chunk.byteLength;
      if (read > size) break;
      yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } finally {
    stream.destroy();
  }
  if (read !== size) {
    throw new IrbError(
      'IRB_INJECT_CHANGED',
      `${path} was ${size} bytes when injected but ${read > size ? 'grew' : `has ${read}`} while the archive was written; do not modify injected files during a build`,
    );
  }
}
