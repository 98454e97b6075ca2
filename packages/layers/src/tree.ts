import { CPIO_MAX_FILE_SIZE, CPIO_MAX_PATH_BYTES } from '@irb/cpio';
import { IrbError, isIrbError } from '@irb/errors';
import { absoluteText, bytesOfKey, displayKey, type Glob, keyOf, keyOfInput, splitKey } from './path.ts';
import type { PathFilterEntry, RootfsStats } from './types.ts';

/*
 * The in-memory tree of a root filesystem (umoci's "unpacked rootfs", kept as metadata): nodes
 * keyed by exact name bytes, path resolution that follows symlinks inside the root, exclusion,
 * the kernel's limits and the hard-link analysis. The applier, injection and emission work on it;
 * the public `Rootfs` only wraps it.
 */

/** Where a file's bytes come from when `entries()` streams it. */
export type BodyRef =
  | { kind: 'empty' }
  | { kind: 'layer'; layer: number; ordinal: number }
  | { kind: 'bytes'; bytes: Uint8Array }
  /** A host file; a Buffer path when its name is not UTF-8 (host names are bytes too). */
  | { kind: 'host'; path: string | Buffer };

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
  /** The name in its parent, as a key (exact bytes). */
  name: string;
  parent: DirNode | undefined;
  /** Index of the last layer that wrote this node or something below it (see apply.ts). */
  upper?: number;
}

/** Owner, mode, mtime and xattr keys of anything but a file (a file keeps them in its inode). */
export interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  xattrs?: string[];
}

/** A directory. */
export interface DirNode extends NodeBase, Meta {
  type: 'directory';
  children: Map<string, Node>;
}

/** One name of a regular file. */
export interface FileNode extends NodeBase {
  type: 'file';
  inode: Inode;
}

/** A symbolic link. */
export interface SymlinkNode extends NodeBase, Meta {
  type: 'symlink';
  /** Target as a key (exact bytes). */
  target: string;
}

/** A device node or FIFO. */
export interface DeviceNode extends NodeBase, Meta {
  type: 'char' | 'block' | 'fifo';
  rdevMajor: number;
  rdevMinor: number;
}

/** Any node of the tree. */
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

/** Owner, mode, mtime and xattrs of a node (a file's come from its inode). */
export function metaOf(node: Node): Meta {
  return node.type === 'file' ? node.inode : node;
}

function sortedChildren(dir: DirNode): Node[] {
  const names = [...dir.children.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return names.map((name) => dir.children.get(name) as Node);
}

/** Depth-first, children in byte order: parents always come before their children. */
export function* walk(dir: DirNode, prefix = ''): Generator<[Node, string]> {
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
export interface Analysis {
  /** The first name (in walk order) of each file inode. */
  first: Map<Inode, FileNode>;
  /** Further names of hard-linked inodes, in walk order (absent for single-name files). */
  links: Map<Inode, string[]>;
  stats: Omit<RootfsStats, 'excluded' | 'filtered' | 'clampedPaths' | 'clampedMtimes'>;
}

/** A file of `size` bytes cannot go into a newc archive. */
export function tooLarge(context: string, key: string, size: number): IrbError {
  return new IrbError(
    'IRB_LAYER_FILE_TOO_LARGE',
    `${context}: ${displayKey(key)} is ${size} bytes; a newc archive (and the kernel) holds files below 4 GiB — exclude it`,
  );
}

/** The tree with its counters. Internal to the package: `Rootfs` is the public face. */
export class Tree {
  readonly root: DirNode;
  readonly #epoch: number | undefined;
  #analysis: Analysis | undefined;
  excluded = 0;
  filtered = 0;
  clampedPaths = 0;
  clampedMtimes = 0;

  constructor(sourceDateEpoch: number | undefined) {
    this.#epoch = sourceDateEpoch;
    this.root = {
      type: 'directory',
      name: '',
      parent: undefined,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: this.synthesizedTime(),
      children: new Map(),
    };
  }

  /** The mtime of synthesized parents and injected files: SOURCE_DATE_EPOCH, else 0. */
  synthesizedTime(): number {
    return this.#epoch ?? 0;
  }

  /** Lowers an mtime to SOURCE_DATE_EPOCH and into the newc range, counting changes. */
  clampTime(mtime: number): number {
    let t = mtime;
    if (this.#epoch !== undefined && t > this.#epoch) t = this.#epoch;
    t = Math.min(Math.max(t, 0), MTIME_MAX);
    if (t !== mtime) this.clampedMtimes++;
    return t;
  }

  /** A new directory (0755, root) named `name` below `parent`, not yet placed. */
  newDir(name: string, parent: DirNode): DirNode {
    return {
      type: 'directory',
      name,
      parent,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: this.synthesizedTime(),
      children: new Map(),
    };
  }

  /**
   * Resolves a directory path inside the root, following symlinks the way securejoin does for
   * umoci (absolute targets start at the root, `..` stops there), so a name under a symlinked
   * parent lands where the link points and never outside the root. With `create`, missing
   * directories are synthesized (0755, root); a non-directory in the way is an error. Without
   * `create`, returns undefined when the path does not resolve.
   */
  resolveDir(components: readonly string[], create: boolean, context: Context): DirNode | undefined {
    let dir = this.root;
    const queue = [...components].reverse();
    let links = 0;
    while (queue.length > 0) {
      const part = queue.pop() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        dir = dir.parent ?? this.root;
        continue;
      }
      const child = dir.children.get(part);
      if (!child) {
        if (!create) return undefined;
        const made = this.newDir(part, dir);
        this.place(dir, made);
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
        if (child.target.startsWith('/')) dir = this.root;
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

  /** Resolves a full path without following its last component. */
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

  /** Places `node` at its name in `parent`, replacing whatever was there. */
  place(parent: DirNode, node: Node): void {
    node.parent = parent;
    parent.children.set(node.name, node);
    this.#analysis = undefined;
  }

  /** Removes `name` (and everything below) from `parent`. */
  remove(parent: DirNode, name: string): void {
    if (parent.children.delete(name)) this.#analysis = undefined;
  }

  /**
   * Removes what `keep` refuses, deepest first; a directory with anything left below it stays.
   * Counts removed paths in {@link filtered}.
   */
  filter(keep: (entry: PathFilterEntry) => boolean): void {
    const visit = (dir: DirNode, prefix: string): void => {
      for (const child of sortedChildren(dir)) {
        const key = prefix === '' ? child.name : `${prefix}/${child.name}`;
        if (child.type === 'directory') {
          visit(child, key);
          if (child.children.size > 0) continue;
        }
        if (!keep({ path: absoluteText(key), bytes: bytesOfKey(key), type: child.type })) {
          this.filtered++;
          this.remove(dir, child.name);
        }
      }
    };
    visit(this.root, '');
  }

  /** Removes what the exclude globs match; counts removed paths. */
  exclude(globs: readonly Glob[]): void {
    if (globs.length === 0) return;
    const visit = (dir: DirNode, prefix: string): void => {
      for (const child of sortedChildren(dir)) {
        const key = prefix === '' ? child.name : `${prefix}/${child.name}`;
        if (globs.some((glob) => glob.test(key))) {
          this.excluded += countNodes(child);
          this.remove(dir, child.name);
        } else if (child.type === 'directory') {
          visit(child, key);
        }
      }
    };
    visit(this.root, '');
  }

  /** Follows a node that is a symlink (and the next, …) inside the root; undefined when dangling. */
  #follow(node: Node | undefined, context: Context): Node | undefined {
    let current = node;
    let links = 0;
    while (current?.type === 'symlink') {
      if (++links > MAX_SYMLINKS) return undefined;
      const start = current.target.startsWith('/') ? this.root : (current.parent ?? this.root);
      const components = current.target.split('/');
      const name = components.pop() ?? '';
      const base = start === this.root ? [] : keyOfNode(start).split('/');
      const dir = this.resolveDir([...base, ...components], false, context);
      if (!dir) return undefined;
      if (name === '' || name === '.') current = dir;
      else if (name === '..') current = dir.parent ?? this.root;
      else current = dir.children.get(name);
    }
    return current;
  }

  /** The node at a user-given path (UTF-8 text or bytes), the last component followed on request. */
  nodeAt(path: string | Uint8Array, follow: boolean): Node | undefined {
    const context = () => `lookup ${typeof path === 'string' ? path : displayKey(keyOf(path))}`;
    try {
      const found = this.locate(keyOfInput(path), context);
      if (!found) return undefined;
      const node = 'root' in found ? this.root : found.node;
      return follow ? this.#follow(node, context) : node;
    } catch (error) {
      if (isIrbError(error)) return undefined;
      throw error;
    }
  }

  /** Hard-link groups and counts, computed once per state of the tree. */
  analyze(): Analysis {
    if (this.#analysis) return this.#analysis;
    // Only node references for single-name files: no path strings held for the whole tree.
    const first = new Map<Inode, FileNode>();
    const links = new Map<Inode, string[]>();
    let entries = 1;
    let directories = 1;
    let uncompressedBytes = 0;
    let fileNames = 0;
    const lostXattrs: Array<{ path: string; keys: string[] }> = [];
    if (this.root.xattrs?.length) lostXattrs.push({ path: '/', keys: [...this.root.xattrs] });
    for (const [node, key] of walk(this.root)) {
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

  /**
   * Refuses what the kernel cannot unpack, for the whole tree: names or symlink targets over
   * 4095 bytes, files of 4 GiB or more. Run once, after the layers; injection checks what it
   * adds with {@link checkNode}, so emitting needs no second walk.
   */
  checkLimits(): void {
    for (const [node, key] of walk(this.root)) checkNode(node, key);
  }
}

/** The kernel's limits for one node at `key` (see {@link Tree.checkLimits}). */
export function checkNode(node: Node, key: string, context = 'rootfs'): void {
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
  if (node.type === 'file' && node.inode.size > CPIO_MAX_FILE_SIZE)
    throw tooLarge(context, key, node.inode.size);
}
