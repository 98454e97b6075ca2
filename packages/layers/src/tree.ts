import { CPIO_MAX_FILE_SIZE, CPIO_MAX_PATH_BYTES } from '@irb/cpio';
import { IrbError, isIrbError } from '@irb/errors';
import { Inodes, type Meta } from './inodes.ts';
import { absoluteText, bytesOfKey, displayKey, type Glob, keyOf, keyOfInput, splitKey } from './path.ts';
import type { PathFilterEntry, RootfsStats } from './types.ts';

/*
 * The in-memory tree of a root filesystem (umoci's "unpacked rootfs", kept as metadata): nodes
 * keyed by exact name bytes, path resolution that follows symlinks inside the root, exclusion,
 * the kernel's limits and the hard-link analysis. The applier, injection and emission work on it;
 * the public `Rootfs` only wraps it.
 */

export type { BodyRef, Meta } from './inodes.ts';

interface NodeBase {
  /** The name in its parent, as a key (exact bytes). */
  name: string;
  parent: DirNode | undefined;
  /** Index of the last layer that wrote this node or something below it (see apply.ts); -1 for none. */
  upper: number;
}

/** A directory. */
export interface DirNode extends NodeBase, Meta {
  type: 'directory';
  children: Map<string, Node>;
}

/** One name of a regular file. */
export interface FileNode extends NodeBase {
  type: 'file';
  /** Its inode's number in {@link Tree.inodes}, shared by all of its hard-link names. */
  inode: number;
}

/** A symbolic link. */
export interface SymlinkNode extends NodeBase, Meta {
  type: 'symlink';
  /** Target as a key (exact bytes). */
  target: string;
  /** The target's components without `.` and empty ones, split once (see {@link Tree.resolveDir}). */
  parts?: string[];
  /** Where the target led as a directory, valid while the tree's version is `version`. */
  memo?: { dir: DirNode; hops: number; version: number };
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

/**
 * Symlinks followed while resolving one path, nested ones included, before it fails: Linux's
 * MAXSYMLINKS (path lookup gives ELOOP past 40), so no path irb places an entry under is one the
 * guest's kernel could not walk. securejoin (umoci) stops at 255.
 */
export const MAX_SYMLINKS = 40;
const MTIME_MAX = 0xffff_ffff;

/** The key of a node in the tree (no leading `/`; the root is ''). */
export function keyOfNode(node: Node): string {
  const parts: string[] = [];
  for (let n: Node | undefined = node; n?.parent; n = n.parent) parts.push(n.name);
  return parts.reverse().join('/');
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

/** Every node of a subtree, `node` first (any order below it). */
function* subtree(node: Node): Generator<Node> {
  const stack: Node[] = [node];
  for (let next = stack.pop(); next; next = stack.pop()) {
    yield next;
    if (next.type === 'directory') for (const child of next.children.values()) stack.push(child);
  }
}

/** The hard-link groups and counts of the current tree (recomputed after each change). */
export interface Analysis {
  /** Further names of hard-linked inodes, by inode number, in walk order (absent for single-name files). */
  links: Map<number, string[]>;
  stats: Omit<RootfsStats, 'excluded' | 'filtered' | 'clampedPaths' | 'clampedMtimes'>;
}

/** A file of `size` bytes cannot go into a newc archive. */
export function tooLarge(context: string, key: string, size: number): IrbError {
  return new IrbError(
    'IRB_LAYER_FILE_TOO_LARGE',
    `${context}: ${displayKey(key)} is ${size} bytes; a newc archive (and the kernel) holds files below 4 GiB — exclude it`,
  );
}

/** Where a resolution got to, and how many symlinks it followed on the way. */
interface Reached {
  dir: DirNode;
  hops: number;
}

/** The tree with its counters. Internal to the package: `Rootfs` is the public face. */
export class Tree {
  readonly root: DirNode;
  readonly inodes = new Inodes();
  readonly #epoch: number | undefined;
  #analysis: Analysis | undefined;
  /**
   * Bumped when a directory or symlink leaves the tree (removed or replaced): only that can change
   * where a path that resolved before leads now, so symlink memos of an older version are stale.
   * Adding names never invalidates one: a resolution that succeeded walked existing nodes only.
   */
  #version = 0;
  excluded = 0;
  filtered = 0;
  clampedPaths = 0;
  clampedMtimes = 0;
  /** File body bytes in the tree, each inode once (kept as names come and go). */
  fileBytes = 0;
  /** Path components walked by resolutions so far: what a symlink-heavy layer costs (tests read it). */
  steps = 0;

  constructor(sourceDateEpoch: number | undefined) {
    this.#epoch = sourceDateEpoch;
    this.root = this.newDir('', undefined);
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
  newDir(name: string, parent: DirNode | undefined): DirNode {
    return {
      type: 'directory',
      name,
      parent,
      upper: -1,
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtime: this.synthesizedTime(),
      children: new Map(),
    };
  }

  /** Owner, mode, mtime and xattrs of a node (a file's come from its inode). */
  metaOf(node: Node): Meta {
    return node.type === 'file' ? this.inodes.meta(node.inode) : node;
  }

  /**
   * Resolves a directory path inside the root, following symlinks the way securejoin does for
   * umoci (absolute targets start at the root, `..` stops there), so a name under a symlinked
   * parent lands where the link points and never outside the root. With `create`, missing
   * directories are synthesized (0755, root); a non-directory in the way is an error. Without
   * `create`, returns undefined when the path does not resolve. More than {@link MAX_SYMLINKS}
   * links on the way: `IRB_LAYER_SYMLINK_LOOP`.
   *
   * Each symlink's directory is memoized (until a directory or symlink leaves the tree), with
   * its target split once without its `.` and empty components: ten thousand names below a chain
   * of links with long `./././…` targets cost a walk of the chain once, not once per name.
   */
  resolveDir(components: readonly string[], create: boolean, context: Context): DirNode | undefined {
    return this.#resolveFrom(this.root, components, 0, create, context)?.dir;
  }

  #resolveFrom(
    start: DirNode,
    components: readonly string[],
    hops: number,
    create: boolean,
    context: Context,
  ): Reached | undefined {
    let dir = start;
    let followed = hops;
    for (const part of components) {
      this.steps++;
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
        const reached = this.#through(child, followed, create, context);
        if (!reached) return undefined;
        dir = reached.dir;
        followed = reached.hops;
        continue;
      }
      if (!create) return undefined;
      throw new IrbError(
        'IRB_LAYER_NOT_A_DIRECTORY',
        `${describe(context)}: needs a directory at ${displayKey(keyOfNode(child))}, which is a ${child.type}; the layer is malformed (a container runtime refuses it too) — rebuild the image`,
      );
    }
    return { dir, hops: followed };
  }

  /** The directory a symlink leads to (memoized), after `hops` links already followed. */
  #through(link: SymlinkNode, hops: number, create: boolean, context: Context): Reached | undefined {
    const memo = link.memo;
    if (memo && memo.version === this.#version) {
      this.steps++;
      if (hops + memo.hops > MAX_SYMLINKS) throw this.#loop(link, context);
      return { dir: memo.dir, hops: hops + memo.hops };
    }
    if (hops + 1 > MAX_SYMLINKS) throw this.#loop(link, context);
    const start = link.target.startsWith('/') ? this.root : (link.parent ?? this.root);
    const reached = this.#resolveFrom(start, partsOf(link), hops + 1, create, context);
    if (reached) link.memo = { dir: reached.dir, hops: reached.hops - hops, version: this.#version };
    return reached;
  }

  #loop(link: SymlinkNode, context: Context): IrbError {
    return new IrbError(
      'IRB_LAYER_SYMLINK_LOOP',
      `${describe(context)}: resolving ${displayKey(keyOfNode(link))} needs more than ${MAX_SYMLINKS} symlinks (the kernel's limit: the guest could not reach that path either); fix the symlink loop or chain in the image`,
    );
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
    const existing = parent.children.get(node.name);
    if (existing !== node) {
      if (existing) this.#detach(existing);
      node.parent = parent;
      parent.children.set(node.name, node);
      this.#attach(node);
    }
    this.#analysis = undefined;
  }

  /** Removes `name` (and everything below) from `parent`. */
  remove(parent: DirNode, name: string): void {
    const node = parent.children.get(name);
    if (!node) return;
    parent.children.delete(name);
    this.#detach(node);
    this.#analysis = undefined;
  }

  /** Counts the names and bytes a subtree brings into the tree. */
  #attach(node: Node): void {
    const { names, size } = this.inodes;
    if (node.type === 'file') {
      if ((names[node.inode] as number) === 0) this.fileBytes += size[node.inode] as number;
      names[node.inode] = (names[node.inode] as number) + 1;
      return;
    }
    if (node.type !== 'directory' || node.children.size === 0) return;
    for (const n of subtree(node)) {
      if (n.type !== 'file') continue;
      if ((names[n.inode] as number) === 0) this.fileBytes += size[n.inode] as number;
      names[n.inode] = (names[n.inode] as number) + 1;
    }
  }

  /** Uncounts a subtree that leaves the tree; stale symlink memos if a directory or link went. */
  #detach(node: Node): void {
    const { names, size } = this.inodes;
    if (node.type === 'directory' || node.type === 'symlink') this.#version++;
    if (node.type === 'file') {
      names[node.inode] = (names[node.inode] as number) - 1;
      if ((names[node.inode] as number) === 0) this.fileBytes -= size[node.inode] as number;
      return;
    }
    if (node.type !== 'directory') return;
    for (const n of subtree(node)) {
      if (n.type !== 'file') continue;
      names[n.inode] = (names[n.inode] as number) - 1;
      if ((names[n.inode] as number) === 0) this.fileBytes -= size[n.inode] as number;
    }
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
          for (const _ of subtree(child)) this.excluded++;
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
    let hops = 0;
    while (current?.type === 'symlink') {
      if (++hops > MAX_SYMLINKS) return undefined;
      const start = current.target.startsWith('/') ? this.root : (current.parent ?? this.root);
      const parts = partsOf(current);
      const name = parts[parts.length - 1];
      const reached = this.#resolveFrom(start, parts.slice(0, -1), hops, false, context);
      if (!reached) return undefined;
      hops = reached.hops;
      if (name === undefined) current = reached.dir;
      else if (name === '..') current = reached.dir.parent ?? this.root;
      else current = reached.dir.children.get(name);
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
    const { inodes } = this;
    // No path strings held for single-name files: only the further names of linked inodes.
    const seen = new Uint8Array(inodes.count);
    const links = new Map<number, string[]>();
    let entries = 1;
    let directories = 1;
    let files = 0;
    let uncompressedBytes = 0;
    let fileNames = 0;
    const lostXattrs: Array<{ path: string; keys: string[] }> = [];
    if (this.root.xattrs?.length) lostXattrs.push({ path: '/', keys: [...this.root.xattrs] });
    for (const [node, key] of walk(this.root)) {
      entries++;
      if (node.type === 'directory') directories++;
      if (node.type === 'file') {
        fileNames++;
        if (seen[node.inode] === 0) {
          seen[node.inode] = 1;
          files++;
          uncompressedBytes += inodes.size[node.inode] as number;
        } else {
          const list = links.get(node.inode);
          if (list) list.push(key);
          else links.set(node.inode, [key]);
        }
      }
      const xattrs = node.type === 'file' ? inodes.xattrs(node.inode) : node.xattrs;
      if (xattrs && xattrs.length > 0) lostXattrs.push({ path: absoluteText(key), keys: [...xattrs] });
    }
    this.#analysis = {
      links,
      stats: {
        entries,
        files,
        directories,
        hardlinks: fileNames - files,
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
    for (const [node, key] of walk(this.root)) checkNode(node, key, 'rootfs', this.sizeOf(node));
  }

  /** A file's size (0 for anything else). */
  sizeOf(node: Node): number {
    return node.type === 'file' ? (this.inodes.size[node.inode] as number) : 0;
  }
}

/** A symlink's target components without `.` and empty ones (split once, kept on the node). */
function partsOf(link: SymlinkNode): string[] {
  link.parts ??= link.target.split('/').filter((part) => part !== '' && part !== '.');
  return link.parts;
}

/** The kernel's limits for one node at `key` of `size` bytes (see {@link Tree.checkLimits}). */
export function checkNode(node: Node, key: string, context = 'rootfs', size = 0): void {
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
  if (size > CPIO_MAX_FILE_SIZE) throw tooLarge(context, key, size);
}
