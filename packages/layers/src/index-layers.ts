import { availableParallelism } from 'node:os';
import { decompress } from '@irb/compress';
import { IrbError } from '@irb/errors';
import { indexCacheKey } from './index-cache.ts';
import { compileGlob, displayKey, keyOf, splitKey } from './path.ts';
import { decodeRecords, encodeRecords, type LayerRecord, recordOf } from './records.ts';
import {
  type Context,
  type DirNode,
  describe,
  type Inode,
  keyOfNode,
  layerLabel,
  type Node,
  Rootfs,
} from './rootfs.ts';
import { TarReader } from './tar.ts';
import type { IndexCache, IndexLayersOptions, LayerSource } from './types.ts';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
/** AUFS bookkeeping names (`.wh..wh.plnk`, `.wh..wh.aufs`): never content, never applied. */
const META_PREFIX = '.wh..wh.';

/**
 * Reads the tar headers of every layer, base first, and builds the final root filesystem in
 * memory as metadata (no file bodies, nothing on disk). Whiteouts and opaque markers of a
 * layer hide only what lower layers put there, wherever they stand in the layer's tar; hard
 * links share one inode; names are normalized inside the root; parents are synthesized.
 * Exclude globs are applied at the end. Bodies are streamed later by {@link Rootfs.entries}.
 *
 * Up to `concurrency` layers are decompressed and parsed at once; their header records are
 * applied strictly in layer order (the lowest unapplied layer as it streams), so the result,
 * the progress events and the error reported are those of reading one layer after another.
 */
export async function indexLayers(
  layers: readonly LayerSource[],
  options: IndexLayersOptions = {},
): Promise<Rootfs> {
  const { signal } = options;
  signal?.throwIfAborted();
  const globs = (options.exclude ?? []).map(compileGlob);
  const rootfs = new Rootfs({
    layers,
    ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const readers = new LayerReaders(
    layers,
    options.concurrency ?? availableParallelism(),
    signal,
    options.indexCache,
  );
  try {
    for (let index = 0; index < layers.length; index++) {
      const layer = layers[index] as LayerSource;
      const label = layerLabel(index, layers.length, layer);
      rootfs.progress(index, layer, 0, false);
      const applier = new LayerApplier(rootfs, index, label);
      const feed = readers.feed(index);
      let count = 0;
      for (;;) {
        signal?.throwIfAborted();
        const batch = feed.take();
        for (const record of batch) {
          count++;
          if (count % 4096 === 0) rootfs.progress(index, layer, count, false);
          applier.apply(record);
        }
        if (batch.length > 0) continue;
        if (feed.failed) throw feed.error;
        if (feed.done) break;
        await feed.changed();
      }
      rootfs.progress(index, layer, count, true);
    }
  } finally {
    // Whatever ends the loop early, no blob stream stays open behind it.
    await readers.close();
  }
  rootfs.exclude(globs);
  rootfs.checkLimits();
  return rootfs;
}

/**
 * Header records of one layer as its reader produces them. Only metadata is held: a record
 * per tar member (name bytes, owner, mode, …), taken away in batches by the applier.
 */
class LayerFeed {
  #records: LayerRecord[] = [];
  #wake: (() => void) | undefined;
  done = false;
  failed = false;
  error: unknown;

  push(record: LayerRecord): void {
    this.#records.push(record);
    this.#notify();
  }

  end(): void {
    this.done = true;
    this.#notify();
  }

  fail(error: unknown): void {
    this.failed = true;
    this.error = error;
    this.#notify();
  }

  /** Everything buffered so far (handed over, no longer held here). */
  take(): LayerRecord[] {
    const records = this.#records;
    if (records.length > 0) this.#records = [];
    return records;
  }

  /** Resolves on the next record, end or failure. */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * Runs the layers' readers, at most `concurrency` at a time, in layer order. A reader that
 * fails stops the readers above it (their records can never be applied); the ones below go on,
 * so the error of the lowest failing layer is the one reported.
 */
class LayerReaders {
  readonly #layers: readonly LayerSource[];
  readonly #concurrency: number;
  readonly #signal: AbortSignal | undefined;
  readonly #cache: IndexCache | undefined;
  readonly #feeds: LayerFeed[] = [];
  readonly #controllers: AbortController[] = [];
  readonly #tasks: Promise<void>[] = [];
  /** Readers that still decompress (started, not finished). */
  #running = 0;
  /** No reader starts at or above this index (a lower layer failed, or the pass ended). */
  #limit: number;

  constructor(
    layers: readonly LayerSource[],
    concurrency: number,
    signal: AbortSignal | undefined,
    cache: IndexCache | undefined,
  ) {
    this.#layers = layers;
    this.#concurrency = Math.max(1, Math.floor(concurrency) || 1);
    this.#signal = signal;
    this.#cache = cache;
    this.#limit = layers.length;
    this.#fill();
  }

  feed(index: number): LayerFeed {
    // Readers start in layer order and free their slot as they end, so when every lower layer
    // is applied this one has started; starting it here is only a safety net.
    while (this.#feeds.length <= index) this.#start(this.#feeds.length);
    return this.#feeds[index] as LayerFeed;
  }

  #fill(): void {
    while (this.#running < this.#concurrency && this.#feeds.length < this.#limit) {
      this.#start(this.#feeds.length);
    }
  }

  #start(index: number): void {
    const layer = this.#layers[index] as LayerSource;
    const label = layerLabel(index, this.#layers.length, layer);
    const feed = new LayerFeed();
    const controller = new AbortController();
    const signal = this.#signal ? AbortSignal.any([this.#signal, controller.signal]) : controller.signal;
    this.#feeds.push(feed);
    this.#controllers.push(controller);
    this.#running++;
    const cache = this.#cache;
    const key = cache ? indexCacheKey(layer) : undefined;
    let released = false;
    // Frees the slot as soon as the layer is read (before any cache write), in the same tick as
    // the feed ends: when the applier sees a layer done, the next reader has already started.
    const release = () => {
      if (released) return;
      released = true;
      this.#running--;
      this.#fill();
    };
    const task = (async () => {
      try {
        if (cache && key) {
          // A hit spares decompressing the layer; anything not exactly valid is a miss.
          const bytes = await cache.get(key).catch(() => undefined);
          const records = bytes && decodeRecords(key, bytes);
          if (records) {
            for (const record of records) feed.push(record);
            feed.end();
            release();
            return;
          }
        }
        // Kept for the cache: the same record objects the applier gets, metadata only.
        const kept: LayerRecord[] | undefined = key ? [] : undefined;
        const reader = new TarReader(
          decompress(layer.open({ signal }), {
            format: 'auto',
            mediaType: layer.mediaType,
            label,
            signal,
          }),
          label,
        );
        try {
          for (;;) {
            const entry = await reader.next();
            if (!entry) break;
            const record = recordOf(entry);
            kept?.push(record);
            feed.push(record);
          }
        } finally {
          await reader.close();
        }
        feed.end();
        release();
        if (cache && key && kept) {
          // The cache only saves work: a failed write costs the next build a read, nothing else.
          try {
            const bytes = encodeRecords(key, kept);
            if (bytes) await cache.set(key, bytes);
          } catch {}
        }
      } catch (error) {
        // Only the reading can fail: a failed cache write is swallowed above.
        feed.fail(error);
        this.#stopAbove(index);
        release();
      }
    })();
    this.#tasks.push(task);
  }

  #stopAbove(index: number): void {
    this.#limit = Math.min(this.#limit, index + 1);
    for (let i = index + 1; i < this.#controllers.length; i++) this.#controllers[i]?.abort();
  }

  /** Aborts every reader still running and waits until each has closed its stream. */
  async close(): Promise<void> {
    this.#stopAbove(-1);
    await Promise.all(this.#tasks);
  }
}

/**
 * Applies one layer's members in tar order. Every node the layer writes, and every ancestor of
 * one, is stamped with the layer's index (umoci's "upper paths"): a whiteout or opaque marker
 * removes only unstamped nodes, so it acts on lower layers alone wherever it stands in the tar —
 * what the layer wrote before the marker survives it, what it writes after comes after it.
 */
class LayerApplier {
  readonly #rootfs: Rootfs;
  readonly #index: number;
  readonly #label: string;
  /** What this layer's markers removed: still reachable for its hard links (a tar-order extractor links before it deletes). */
  readonly #hidden = new Map<string, Node>();

  constructor(rootfs: Rootfs, index: number, label: string) {
    this.#rootfs = rootfs;
    this.#index = index;
    this.#label = label;
  }

  apply(entry: LayerRecord): void {
    const { components, clamped } = splitKey(keyOf(entry.name));
    if (clamped) this.#rootfs.noteClampedPath();
    const last = components.length - 1;
    for (let i = 0; i < last; i++) {
      const part = components[i] as string;
      if (!part.startsWith(WHITEOUT_PREFIX)) continue;
      // AUFS keeps hard-link sources and bookkeeping below `.wh..wh.*` directories: not content.
      if (part.startsWith(META_PREFIX)) return;
      throw new IrbError(
        'IRB_LAYER_WHITEOUT_INVALID',
        `${this.#label}: ${displayKey(components.join('/'))} lies below a whiteout marker; the layer is malformed — rebuild the image`,
      );
    }
    const context = () => `${this.#label}: ${displayKey(components.join('/'))}`;
    if (components[last]?.startsWith(WHITEOUT_PREFIX)) this.#marker(components, context);
    else this.#member(entry, components, context);
  }

  #stamp(node: Node): void {
    let current: Node | undefined = node;
    while (current && current.upper !== this.#index) {
      current.upper = this.#index;
      current = current.parent;
    }
  }

  /** Removes `name` from `dir` unless this layer wrote it; below what it wrote, prunes around it. */
  #prune(dir: DirNode, name: string): void {
    const node = dir.children.get(name);
    if (!node) return;
    if (node.upper !== this.#index) {
      this.#hidden.set(dir.parent ? `${keyOfNode(dir)}/${name}` : name, node);
      this.#rootfs.remove(dir, name);
    } else if (node.type === 'directory') {
      for (const child of [...node.children.keys()]) this.#prune(node, child);
    }
  }

  #marker(path: readonly string[], context: Context): void {
    const components = path.slice(0, -1);
    const name = path[path.length - 1] as string;
    if (name === OPAQUE_MARKER) {
      const dir = this.#rootfs.resolveDir(components, false, context);
      if (dir) for (const child of [...dir.children.keys()]) this.#prune(dir, child);
      return;
    }
    if (name.startsWith(META_PREFIX)) return;
    const hidden = name.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') {
      throw new IrbError(
        'IRB_LAYER_WHITEOUT_INVALID',
        `${describe(context)}: a whiteout of "${hidden}" would delete a parent or nothing; the layer is malformed or hostile — rebuild the image`,
      );
    }
    const dir = this.#rootfs.resolveDir(components, false, context);
    if (dir) this.#prune(dir, hidden);
  }

  #member(entry: LayerRecord, path: readonly string[], context: Context): void {
    const rootfs = this.#rootfs;
    const components = path.slice(0, -1);
    const name = path[path.length - 1];
    if (name === undefined) {
      if (entry.type !== 'directory') {
        throw new IrbError(
          'IRB_LAYER_ROOT_INVALID',
          `${this.#label}: a ${entry.type} member names the root directory; the layer is malformed or hostile — rebuild the image`,
        );
      }
      setMeta(rootfs, rootfs.root, entry);
      return;
    }
    const parent = rootfs.resolveDir(components, true, context) as DirNode;
    const existing = parent.children.get(name);
    const base = { name, parent };
    let node: Node;
    switch (entry.type) {
      case 'directory':
        if (existing?.type === 'directory') {
          setMeta(rootfs, existing, entry);
          node = existing;
        } else {
          node = { ...base, type: 'directory', children: new Map(), ...meta(rootfs, entry) };
        }
        break;
      case 'file': {
        const inode: Inode = {
          ...meta(rootfs, entry),
          size: entry.size,
          body:
            entry.size > 0
              ? { kind: 'layer', layer: this.#index, ordinal: entry.ordinal }
              : { kind: 'empty' },
        };
        node = { ...base, type: 'file', inode };
        break;
      }
      case 'symlink':
        node = { ...base, type: 'symlink', target: keyOf(entry.linkname), ...meta(rootfs, entry) };
        break;
      case 'char':
      case 'block':
      case 'fifo':
        node = {
          ...base,
          type: entry.type,
          rdevMajor: entry.type === 'fifo' ? 0 : entry.devmajor,
          rdevMinor: entry.type === 'fifo' ? 0 : entry.devminor,
          ...meta(rootfs, entry),
        };
        break;
      case 'link': {
        const target = this.#linkTarget(keyOf(entry.linkname), context);
        if (target === existing) {
          node = target;
          break;
        }
        // A hard link to a symlink, device or FIFO: newc shares only file inodes, so the name
        // becomes an identical, separate node.
        node =
          target.type === 'file'
            ? { ...base, type: 'file', inode: target.inode }
            : ({ ...target, ...base } as Node);
        break;
      }
    }
    if (node !== existing) rootfs.place(parent, node);
    this.#stamp(node);
  }

  /** Resolves a hard link's target: parent symlinks followed inside the root, the name itself not. */
  #linkTarget(link: string, context: Context): Node {
    const rootfs = this.#rootfs;
    const { components, clamped } = splitKey(link);
    if (clamped) rootfs.noteClampedPath();
    const all = [...components];
    const name = components.pop();
    const parent = name === undefined ? undefined : rootfs.resolveDir(components, false, context);
    const target = (name === undefined ? undefined : parent?.children.get(name)) ?? this.#findHidden(all);
    const where = displayKey(all.join('/'));
    if (!target) {
      throw new IrbError(
        'IRB_LAYER_LINK_INVALID',
        `${describe(context)}: hard link to ${where}, which does not exist at that point; the layer is malformed — rebuild the image`,
      );
    }
    if (target.type === 'directory') {
      throw new IrbError(
        'IRB_LAYER_LINK_INVALID',
        `${describe(context)}: hard link to the directory ${where}; directories cannot be hard-linked — rebuild the image`,
      );
    }
    return target;
  }

  /** Looks a name up among what this layer's markers removed (and below it). */
  #findHidden(components: readonly string[]): Node | undefined {
    for (let i = components.length; i > 0; i--) {
      let node = this.#hidden.get(components.slice(0, i).join('/'));
      if (!node) continue;
      for (const part of components.slice(i)) {
        node = node.type === 'directory' ? node.children.get(part) : undefined;
        if (!node) return undefined;
      }
      return node;
    }
    return undefined;
  }
}

function meta(
  rootfs: Rootfs,
  member: LayerRecord,
): { mode: number; uid: number; gid: number; mtime: number; xattrs?: string[] } {
  return {
    mode: member.mode,
    uid: member.uid,
    gid: member.gid,
    mtime: rootfs.clampTime(member.mtime),
    ...(member.xattrs.length > 0 ? { xattrs: member.xattrs } : {}),
  };
}

function setMeta(rootfs: Rootfs, dir: DirNode, member: LayerRecord): void {
  const next = meta(rootfs, member);
  dir.mode = next.mode;
  dir.uid = next.uid;
  dir.gid = next.gid;
  dir.mtime = next.mtime;
  if (next.xattrs) dir.xattrs = next.xattrs;
  else delete dir.xattrs;
  if (dir.parent) rootfs.place(dir.parent, dir);
}
