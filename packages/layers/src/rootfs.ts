import type { CpioEntry } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { emitEntries, readBody } from './emit.ts';
import { injectFile, injectHostPath } from './inject.ts';
import { cpioPathOfKey, displayKey, keyOfInput } from './path.ts';
import type { LayerSpool } from './spool.ts';
import { keyOfNode, Tree } from './tree.ts';
import type {
  InjectOptions,
  InjectSource,
  LayerSource,
  LayersProgress,
  RootfsNodeInfo,
  RootfsStats,
} from './types.ts';

/** Internal knobs of a {@link Rootfs}; built by `indexLayers`. */
export interface RootfsInit {
  layers: readonly LayerSource[];
  sourceDateEpoch?: number;
  onProgress?: (event: LayersProgress) => void;
  /** The tree `indexLayers` built (internal); default an empty root. */
  tree?: Tree;
  /** Layers whose bodies the index pass spooled (internal), by layer position. */
  spools?: ReadonlyMap<number, LayerSpool>;
}

/**
 * The root filesystem of an image as metadata: every path after all layers (and injections)
 * with its type, owner, mode, mtime, link target or device numbers, and for files a reference
 * to where the body lives (layer and member number, or an injected source). Built by
 * {@link indexLayers}; {@link Rootfs.entries} streams it out as CPIO entries.
 *
 * A facade: the tree and its rules live in tree.ts, applying layers in apply.ts, injection in
 * inject.ts, streaming out in emit.ts.
 */
export class Rootfs {
  readonly #layers: readonly LayerSource[];
  readonly #onProgress: ((event: LayersProgress) => void) | undefined;
  readonly #tree: Tree;
  readonly #spools: ReadonlyMap<number, LayerSpool>;

  /** Use {@link indexLayers} to get one; constructing a Rootfs directly is not a stable API. */
  constructor(init: RootfsInit) {
    this.#layers = init.layers;
    this.#onProgress = init.onProgress;
    this.#tree = init.tree ?? new Tree(init.sourceDateEpoch);
    this.#spools = init.spools ?? new Map();
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
    const node = this.#tree.nodeAt(path, true);
    if (node?.type !== 'file') return undefined;
    const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    const size = this.#tree.sizeOf(node);
    if (size > maxBytes) {
      throw new IrbError(
        'IRB_LAYER_FILE_TOO_LARGE',
        `${displayKey(keyOfNode(node))} is ${size} bytes, more than the ${maxBytes} readFile() allows; stream it with entries() instead`,
      );
    }
    return readBody({ tree: this.#tree, layers: this.#layers, spools: this.#spools }, node, options.signal);
  }

  /**
   * The first `length` bytes of the regular file at `path` (symlinks followed inside the root;
   * fewer when the file is shorter), read from its layer blob (stopping there), spool, memory
   * or host file; `undefined` when there is no such file. For file signatures such as an ELF
   * header or a `#!` line, whatever the file's size.
   */
  async readHead(
    path: string | Uint8Array,
    length: number,
    options: { signal?: AbortSignal } = {},
  ): Promise<Uint8Array | undefined> {
    const node = this.#tree.nodeAt(path, true);
    if (node?.type !== 'file') return undefined;
    return readBody(
      { tree: this.#tree, layers: this.#layers, spools: this.#spools },
      node,
      options.signal,
      length,
    );
  }

  /**
   * The node at `path` after all layers, exclusions and injections, or undefined. Parent
   * symlinks are resolved inside the root; the last component is followed only with
   * `follow: true`.
   */
  lookup(path: string | Uint8Array, options: { follow?: boolean } = {}): RootfsNodeInfo | undefined {
    const tree = this.#tree;
    const node = tree.nodeAt(path, options.follow ?? false);
    if (!node) return undefined;
    const key = node === tree.root ? '' : keyOfNode(node);
    const meta = tree.metaOf(node);
    const info: RootfsNodeInfo = {
      type: node.type,
      mode: meta.mode,
      uid: meta.uid,
      gid: meta.gid,
      mtime: meta.mtime,
      size: tree.sizeOf(node),
      nlink: node.type === 'file' ? (tree.inodes.names[node.inode] as number) : 1,
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
    injectFile(this.#tree, keyOfInput(dest), `inject ${dest}`, source, options);
  }

  /**
   * Copies a host file or directory tree to `dest` (`SRC:DEST` semantics, like `COPY`): a file
   * becomes a file at `dest` (or inside it when `dest` ends with `/`); a directory's contents
   * are merged into `dest`, existing image directories kept, anything else replaced. Files
   * get 0755, new directories 0755, everything root-owned; host symlinks stay symlinks, and
   * host names that are not UTF-8 keep their bytes.
   */
  async injectHostPath(src: string, dest: string): Promise<void> {
    await injectHostPath(this.#tree, src, dest);
  }

  /** Counts of what `entries()` will emit; recomputed after injections. */
  get stats(): RootfsStats {
    const tree = this.#tree;
    const { stats } = tree.analyze();
    return {
      ...stats,
      lostXattrs: stats.lostXattrs.map((item) => ({ path: item.path, keys: [...item.keys] })),
      excluded: tree.excluded,
      filtered: tree.filtered,
      clampedPaths: tree.clampedPaths,
      clampedMtimes: tree.clampedMtimes,
    };
  }

  /**
   * Streams the root filesystem as CPIO entries: first the root, directories, symlinks,
   * devices, FIFOs and empty files in depth-first byte order (parents before children), then
   * file bodies layer by layer in tar order (each needed layer blob reopened once and read
   * sequentially), then injected files. Hard links come as one entry with `links`. Bodies are
   * streamed: read each entry's body before asking for the next entry. With `transientBodies`,
   * a body chunk read back from the index pass's spool is valid only until the next chunk is
   * pulled (its buffer is read into again): for consumers that copy what they keep, such as
   * `packCpio` into a compressor, it saves a new buffer per MiB of bodies.
   */
  entries(options: { signal?: AbortSignal; transientBodies?: boolean } = {}): AsyncGenerator<CpioEntry> {
    return emitEntries(
      { tree: this.#tree, layers: this.#layers, spools: this.#spools, onProgress: this.#onProgress },
      options.signal,
      options.transientBodies,
    );
  }

  /**
   * Releases the temporary files holding the bodies that the index pass kept (its `spoolPath`
   * option); `entries()` already releases each layer's once its bodies are out. Later reads
   * decompress the layer blobs again. Safe to call more than once.
   */
  async close(): Promise<void> {
    await Promise.all([...this.#spools.values()].map((spool) => spool.close()));
  }
}
