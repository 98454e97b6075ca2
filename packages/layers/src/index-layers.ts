import { availableParallelism } from 'node:os';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { IrbError } from '@irb/errors';
import { LayerApplier } from './apply.ts';
import { DiffIdCheck } from './diff-id.ts';
import { indexCacheKey } from './index-cache.ts';
import { layerLabel, openLayerTar } from './layer-tar.ts';
import { DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_BYTES, formatBytes } from './limits.ts';
import { compileGlob, displayKey } from './path.ts';
import { type LayerRecord, type RecordCursor, RecordLog } from './records.ts';
import { Rootfs } from './rootfs.ts';
import { LayerSpool } from './spool.ts';
import { Tree } from './tree.ts';
import type { IndexCache, IndexLayersOptions, LayerSource, LayersProgress } from './types.ts';

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
  const tree = new Tree(options.sourceDateEpoch);
  const progress = (index: number, layer: LayerSource, entries: number, done: boolean): void =>
    options.onProgress?.({
      phase: 'index',
      layer: index,
      layers: layers.length,
      digest: layer.digest,
      entries,
      done,
    } satisfies LayersProgress);
  const limits = new Limits(tree, options);
  const readers = new LayerReaders(
    layers,
    options.concurrency ?? availableParallelism(),
    signal,
    options.indexCache,
    options.spoolPath,
  );
  let spools: ReadonlyMap<number, LayerSpool> | undefined;
  try {
    for (let index = 0; index < layers.length; index++) {
      const layer = layers[index] as LayerSource;
      const label = layerLabel(index, layers.length, layer);
      progress(index, layer, 0, false);
      const applier = new LayerApplier(tree, index, label);
      const feed = readers.feed(index);
      let count = 0;
      for (;;) {
        signal?.throwIfAborted();
        let applied = false;
        for (let record = feed.next(); record; record = feed.next()) {
          applied = true;
          count++;
          if (count % 4096 === 0) {
            progress(index, layer, count, false);
            limits.heap(label);
          }
          if (count % 65536 === 0) {
            // A layer whose records are all there (a cache hit) would otherwise be applied in
            // one go, seconds long for a million members, with signals and aborts unheard.
            await yieldToEventLoop();
            signal?.throwIfAborted();
          }
          limits.entry(label);
          applier.apply(record);
          if (record.type === 'file' || record.type === 'link') limits.bytes(label, record);
        }
        if (applied) continue;
        if (feed.failed) throw feed.error;
        if (feed.done) break;
        await feed.changed();
      }
      progress(index, layer, count, true);
    }
    spools = readers.spools();
  } finally {
    // Whatever ends the loop early, no blob stream stays open behind it.
    await readers.close();
    // Nor a spool: on success they were handed over above.
    if (!spools) await readers.closeSpools();
  }
  try {
    tree.exclude(globs);
    if (options.keep) tree.filter(options.keep);
    tree.checkLimits();
  } catch (error) {
    await Promise.all([...spools.values()].map((spool) => spool.close()));
    throw error;
  }
  return new Rootfs({
    layers,
    tree,
    spools,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Header records of one layer as its reader produces them, in a {@link RecordLog}: only metadata
 * is held, in the compact form of the index cache, and decoded one record at a time by the
 * applier.
 */
class LayerFeed {
  #cursor: RecordCursor | undefined;
  #wake: (() => void) | undefined;
  done = false;
  failed = false;
  error: unknown;

  /** Where the reader appends (or the cache hit that holds every record). */
  attach(log: RecordLog): void {
    this.#cursor = log.cursor();
    this.#notify();
  }

  /** The reader appended a record. */
  appended(): void {
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

  /** The next record appended so far, or `undefined`. */
  next(): LayerRecord | undefined {
    return this.#cursor?.next();
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
 * The bounds of the index pass (see `maxEntries` and `maxUnpackedBytes`), checked as records are
 * applied, so an image over them fails in the layer that crosses them, before anything is packed.
 */
class Limits {
  readonly #tree: Tree;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #entries = 0;

  constructor(tree: Tree, options: IndexLayersOptions) {
    this.#tree = tree;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#maxBytes = options.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
  }

  entry(label: string): void {
    if (++this.#entries <= this.#maxEntries) return;
    throw new IrbError(
      'IRB_LAYER_TOO_MANY_ENTRIES',
      `${label}: the layers hold more than ${this.#maxEntries} tar members (the maxEntries limit); raise it (irb build --max-entries N) on a host with the memory for it, or make the image smaller (exclude patterns apply only after indexing)`,
    );
  }

  /**
   * Refuses to go on when the V8 heap is nearly full, before Node would die of it: an index too
   * large for this process (its --max-old-space-size) ends in one line instead of a crash.
   */
  heap(label: string): void {
    const { used, limit } = oldGeneration();
    if (used < limit * HEAP_FULL) return;
    throw new IrbError(
      'IRB_LAYER_TOO_MANY_ENTRIES',
      `${label}: after ${this.#entries} tar members the index fills ${formatBytes(used)} of this process's ${formatBytes(limit)} heap; give Node more heap (NODE_OPTIONS=--max-old-space-size=MiB) or make the image smaller`,
    );
  }

  /** After a file or hard link was applied: the files' total so far, each inode once. */
  bytes(label: string, record: LayerRecord): void {
    const total = this.#tree.fileBytes;
    if (total <= this.#maxBytes) return;
    throw new IrbError(
      'IRB_LAYER_UNPACKED_TOO_LARGE',
      `${label}: with ${displayKey(record.name)} the files add up to ${formatBytes(total)}, more than the ${formatBytes(this.#maxBytes)} the guest would have to unpack into memory (maxUnpackedBytes); exclude large files, or raise the limit (irb build --max-unpacked SIZE)`,
    );
  }
}

/**
 * Share of the old generation's limit past which the index pass stops: V8 collects garbage well
 * before, and packing still needs some room after the index.
 */
const HEAP_FULL = 0.8;
/**
 * What `heap_size_limit` holds beyond the old generation: the young generation's reserve, 192 MiB
 * in Node 22 and 24 on 64-bit hosts whatever --max-old-space-size says. Node dies when the old
 * generation cannot grow, so that is the limit to watch.
 */
const YOUNG_RESERVE = 192 * 2 ** 20;

/** Bytes used by the old generation (every space but the young ones) and its limit. */
function oldGeneration(): { used: number; limit: number } {
  const total = getHeapStatistics().heap_size_limit;
  let used = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (!space.space_name.startsWith('new_')) used += space.space_used_size;
  }
  return { used, limit: Math.max(total - YOUNG_RESERVE, total / 8) };
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
  readonly #spoolPath: ((layer: LayerSource, index: number) => string) | undefined;
  /** Spools of the layers read to the end with every body kept. */
  readonly #spools = new Map<number, LayerSpool>();
  /** Spools being written, closed if the pass ends early. */
  readonly #open = new Set<LayerSpool>();
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
    spoolPath: ((layer: LayerSource, index: number) => string) | undefined,
  ) {
    this.#layers = layers;
    this.#concurrency = Math.max(1, Math.floor(concurrency) || 1);
    this.#signal = signal;
    this.#cache = cache;
    this.#spoolPath = spoolPath;
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
          const records = bytes && RecordLog.fromCache(key, bytes);
          if (records) {
            feed.attach(records);
            feed.end();
            release();
            return;
          }
        }
        // The records, in the cache's form; kept whole for the cache, else dropped as applied.
        const log = new RecordLog(key);
        feed.attach(log);
        // Every byte of the tar passes here anyway: bodies go to the spool, so that packing
        // does not decompress the layer again. Created at the first body; dropped on any trouble.
        let spooling = this.#spoolPath !== undefined;
        let spool: LayerSpool | undefined;
        const drop = async () => {
          spooling = false;
          if (spool) this.#open.delete(spool);
          await spool?.close();
          spool = undefined;
        };
        // The tar is decompressed here anyway: its diff_id is checked on the way, once per layer
        // (a cache hit above stands for a check passed when it was written).
        const check = DiffIdCheck.of(layer, label);
        const reader = openLayerTar(layer, label, signal, check);
        try {
          for (;;) {
            const entry = await reader.next();
            if (!entry) break;
            log.append(entry);
            feed.appended();
            if (!spooling || entry.type !== 'file' || entry.size === 0) continue;
            // A sparse file's holes would be spooled as zeros: such a layer is read again instead.
            if (entry.sparse) {
              await drop();
              continue;
            }
            if (!spool) {
              spool = await this.#createSpool(layer, index, label);
              if (!spool) {
                spooling = false;
                continue;
              }
              this.#open.add(spool);
            }
            if (!(await spool.append(entry.ordinal, reader.body()))) await drop();
          }
          check?.verify();
          if (spool && !(await spool.finish())) await drop();
        } catch (error) {
          await drop();
          throw error;
        } finally {
          await reader.close();
        }
        if (spool) {
          this.#open.delete(spool);
          this.#spools.set(index, spool);
        }
        feed.end();
        release();
        if (cache && key) {
          // The cache only saves work: a failed write costs the next build a read, nothing else.
          try {
            const bytes = log.encode();
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

  /** A spool for the layer at `index`, or `undefined` (no `spoolPath`, or it failed). */
  async #createSpool(layer: LayerSource, index: number, label: string): Promise<LayerSpool | undefined> {
    const spoolPath = this.#spoolPath;
    if (!spoolPath) return undefined;
    let path: string;
    try {
      path = spoolPath(layer, index);
    } catch {
      // A shortcut that cannot be taken: the layer is read again instead.
      return undefined;
    }
    return LayerSpool.create(path, label);
  }

  /** The spools of the layers read (all readers must have ended), handed over to the caller. */
  spools(): ReadonlyMap<number, LayerSpool> {
    return new Map(this.#spools);
  }

  /** Closes every spool, finished or not (the pass failed). Call after {@link close}. */
  async closeSpools(): Promise<void> {
    const all = [...this.#spools.values(), ...this.#open];
    this.#spools.clear();
    this.#open.clear();
    await Promise.all(all.map((spool) => spool.close()));
  }

  /** Aborts every reader still running and waits until each has closed its stream. */
  async close(): Promise<void> {
    this.#stopAbove(-1);
    await Promise.all(this.#tasks);
  }
}
