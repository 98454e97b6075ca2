import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trailerMember } from '@irb/compress/framing';
import type { CpioEntry } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import type { Rootfs } from '@irb/layers';
import type { ImageManifest } from '@irb/registry';
import { type CacheLayout, cacheLayout, tempName, tempPath } from '@irb/store';
import { writeFileAtomic } from './atomic.ts';
import type { BaseTree } from './base-tree.ts';
import { baseKey, modulesMemberKey, overlayKey } from './build-key.ts';
import { monotonicMs } from './clock.ts';
import { consoleEntries, withExtras } from './extras.ts';
import { buildFacts } from './facts.ts';
import { checkInitOptions } from './init-options.ts';
import { type BuildModules, resolveBuildModules } from './kernel-modules.ts';
import {
  type CachedBase,
  type CachedOverlay,
  createBaseSink,
  createModulesSink,
  createOverlaySink,
  lookupBase,
  lookupModules,
  lookupOverlay,
  outputUpToDate,
} from './output-cache.ts';
import type { Overlay } from './overlay.ts';
import {
  type BuildPipeline,
  createBuildPipeline,
  type MemberSink,
  memberThreads,
  type PipelineMember,
  type StoredMember,
} from './pipeline.ts';
import { type Preflight, preflight } from './preflight.ts';
import { type RepairContext, repairingCache, verifiedAtEnd } from './repair.ts';
import { openSource, platformString } from './source.ts';
import { sourceOptions } from './source-options.ts';
import { summarizedStream } from './summarized-stream.ts';
import type {
  BuildProgressEvent,
  BuildStream,
  BuildSummary,
  InitramfsBuilderOptions,
  LayerInfo,
  LostXattr,
} from './types.ts';

/**
 * Builds a bootable initramfs from an image: pull (registry, OCI layout or docker-archive), apply
 * the layers, inject files and an `/init`, pack CPIO newc, compress, and write the output file
 * atomically. The whole way is one stream with backpressure: file bodies go from the verified layer
 * blobs to the output without being staged on disk or held in memory.
 *
 * The steps, each in its own file: {@link preflight} (options and host files, before any
 * download) → open the image and index its layers → `applyOverlay` (inject, choose `/init`, add
 * what the kernel needs) → `createBuildPipeline` (pack, compress, count). `build()` writes the
 * pipeline's bytes to a file; `stream()` hands them out.
 *
 * @example
 * ```ts
 * const summary = await new InitramfsBuilder({ image: 'alpine:3.20', inject: ['agent:/usr/bin/agent'] })
 *   .build('initramfs.cpio.gz');
 * console.log(summary.manifestDigest, summary.recommendedMemoryMiB);
 * ```
 */
export class InitramfsBuilder {
  /** The options the builder was made with. */
  readonly options: Readonly<InitramfsBuilderOptions>;

  constructor(options: InitramfsBuilderOptions) {
    if (!options || typeof options.image !== 'string' || options.image === '') {
      throw new IrbError('IRB_OPTION_INVALID', 'InitramfsBuilder needs an image; pass { image: "name:tag" }');
    }
    checkInitOptions(options);
    this.options = { ...options };
  }

  /**
   * Builds the initramfs into `output` (created atomically: it appears complete or not at all; a
   * device or FIFO is written in place) and returns the summary. Rejects with an `IrbError`
   * saying what to fix.
   */
  async build(output: string): Promise<BuildSummary> {
    const started = monotonicMs();
    const pre = await preflight(this.options, output);
    const root = this.options.cache !== false ? cacheLayout(this.options.cacheDir).root : undefined;
    return repairingCache(root, this.options.signal, async (repairs) => {
      const opened = await this.#open(pre, started, repairs);
      try {
        const signal = this.options.signal;
        // An unchanged rebuild whose output already holds exactly these bytes (the same command
        // run again) leaves the file alone: copying the same bytes over it would only cost the
        // copy, an fsync and freeing the old blocks. Compared byte for byte once, then trusted
        // while the file's identity and times are unchanged (see outputUpToDate).
        if (await opened.upToDate?.(output)) return opened.pipeline.summary(output);
        // Cached members are checked against their digests while they are copied.
        const data = opened.verify
          ? verifiedAtEnd(opened.pipeline.data, opened.verify)
          : opened.pipeline.data;
        await writeFileAtomic(output, data, {
          ...(signal ? { signal } : {}),
          ...(opened.prefixFile !== undefined ? { prefixFile: opened.prefixFile } : {}),
        });
        return opened.pipeline.summary(output);
      } finally {
        await opened.close();
      }
    });
  }

  /**
   * The archive as a byte stream instead of a file, e.g. to upload it or pipe it elsewhere. Nothing
   * happens until the stream is read; `summary` resolves once it was read to the end (its
   * `output` is `-`) and rejects if the build failed or the stream was abandoned.
   */
  stream(): BuildStream {
    const o = this.options;
    // Nothing goes out before the cached members are checked: a corrupt one is built again.
    const root = o.cache !== false ? cacheLayout(o.cacheDir).root : undefined;
    const open = (pre: Preflight, started: number) =>
      repairingCache(root, o.signal, async (repairs) => {
        const opened = await this.#open(pre, started, repairs);
        await opened.verify?.().catch(async (error: unknown) => {
          await opened.close();
          throw error;
        });
        return opened;
      });
    return summarizedStream<BuildSummary>(async function* (finish) {
      const started = monotonicMs();
      const opened = await open(await preflight(o), started);
      try {
        if (opened.prefixFile !== undefined) {
          for await (const chunk of createReadStream(opened.prefixFile, o.signal ? { signal: o.signal } : {}))
            yield chunk as Uint8Array;
        }
        for await (const chunk of opened.pipeline.data) {
          o.signal?.throwIfAborted();
          yield chunk;
        }
        finish(opened.pipeline.summary('-'));
      } finally {
        await opened.close();
      }
    }, 'the build stream was not read to the end; read it fully to get a summary');
  }

  /**
   * Opens the image, indexes its layers, applies the overlay and returns the pipeline; `close`
   * releases the source once the pipeline was read (or abandoned).
   */
  async #open(pre: Preflight, started: number, repairs: RepairContext): Promise<Opened> {
    const o = this.options;
    const signal = o.signal;
    const emit = (event: BuildProgressEvent) => o.onProgress?.(event);
    emit({ type: 'resolve', image: o.image });
    // The modules first: a name the kernel does not have fails before the image is pulled.
    const mods = pre.modules ? await resolveBuildModules(o, () => sourceOptions(o)) : undefined;
    let source: Awaited<ReturnType<typeof openSource>>;
    try {
      source = await openSource(o.image, sourceOptions(o, emit));
    } catch (error) {
      await mods?.close();
      throw error;
    }
    let indexed: Rootfs | undefined;
    let modsMember: ModulesMember | undefined;
    try {
      const image = source.image;
      const manifestDigest = await image.digest();
      const dirs = o.cache !== false ? cacheLayout(o.cacheDir) : undefined;
      const key = dirs && (await baseKey(o, manifestDigest));
      const hit = dirs && key ? await lookupBase(dirs, key) : undefined;
      modsMember = mods ? await this.#modulesMember(dirs, mods) : undefined;
      const closeModules = async () => {
        await modsMember?.release();
        await mods?.close();
      };
      if (hit && dirs && key) {
        try {
          const opened = await this.#fromCachedBase(
            hit,
            dirs,
            key,
            manifestDigest,
            image.manifest(),
            pre,
            started,
            repairs.warnings,
            mods,
            modsMember,
          );
          if (opened) {
            return {
              ...opened,
              close: async () => {
                await opened.release();
                await hit.release();
                await closeModules();
                await source.close();
              },
            };
          }
          await hit.release();
        } catch (error) {
          await hit.release();
          throw error;
        }
      }
      // Everything below runs only when the base member must be built: the layer machinery,
      // the overlay planner and the tree collector are loaded here, not by a cached rebuild.
      const [{ createDirectoryIndexCache, indexLayers }, { planOverlay }, baseTrees, { pathFilter }] =
        await Promise.all([
          import('@irb/layers'),
          import('./overlay.ts'),
          import('./base-tree.ts'),
          import('./filter.ts'),
        ]);
      const { createTreeCollector, plannedFiles, rootfsBaseTree } = baseTrees;
      const [manifest, config, layers] = await Promise.all([
        image.manifest(),
        image.config(),
        image.layers(),
      ]);
      const platform = platformString(config);
      for (const layer of layers) repairs.blobs.add(layer.digest);
      const layerInfo: LayerInfo[] = layers.map((l) => ({
        digest: l.digest,
        diffId: l.diffId,
        mediaType: l.mediaType,
        size: l.size,
      }));
      emit({ type: 'resolved', image: o.image, digest: manifestDigest, platform, layers: layerInfo });

      // No separate download step: opening the first layer makes the registry client fetch all
      // layers in the background (read-ahead, in parallel), and each layer's index pass reads its
      // blob as it downloads, byte by byte; the stream ends only once the blob is verified, else
      // it throws and the build fails with nothing cached.
      // With the blob cache on, the layers' parsed headers are cached too (keyed by digest; every
      // source verifies blobs against it), so a warm rebuild does not decompress a layer twice.
      // The index pass keeps the file bodies of the layers it decompresses in nameless spool
      // files (in the cache's spool area), so packing does not decompress them a second time.
      const rootfs = await indexLayers(layers, {
        ...(dirs ? { indexCache: createDirectoryIndexCache(dirs.index, { tempDir: dirs.tmp }) } : {}),
        spoolPath: (layer) =>
          dirs
            ? tempPath(dirs.spool, spoolName(layer.digest))
            : join(tmpdir(), tempName(spoolName(layer.digest))),
        ...(o.exclude ? { exclude: o.exclude } : {}),
        ...(o.maxEntries !== undefined ? { maxEntries: o.maxEntries } : {}),
        ...(o.maxUnpackedBytes !== undefined ? { maxUnpackedBytes: o.maxUnpackedBytes } : {}),
        ...keepOption(pathFilter, pre, o, config.config?.Env ?? []),
        ...(signal ? { signal } : {}),
        ...(pre.sourceDateEpoch !== undefined ? { sourceDateEpoch: pre.sourceDateEpoch } : {}),
        onProgress: (p) => {
          if (p.phase === 'index')
            emit({ type: 'index', layer: p.layer, layers: p.layers, entries: p.entries });
        },
      });
      indexed = rootfs;
      // The base member: the image's files, plus /dev/console (the kernel opens it before /init
      // runs, whatever the job). Nothing is injected into it: see planOverlay.
      const extras = consoleEntries(
        rootfs.lookup('/dev/console') !== undefined,
        rootfs.lookup('/dev') !== undefined,
      );
      const baseTree = rootfsBaseTree(rootfs, extras);
      const architecture = config.architecture ?? 'amd64';
      const overlayCache = dirs && key ? await this.#overlayCache(dirs, key, architecture, mods) : undefined;
      const overlay = await planOverlay(baseTree, config.config, architecture, o, pre, mods);
      const lost = lostXattrs(rootfs);
      const overlaySink = overlayCache?.sink(overlay);
      // With the cache on, the base member is kept as it streams out, with the tree the next
      // build plans its overlay against.
      const collector = createTreeCollector(plannedFiles(baseTree));
      const sink =
        dirs && key
          ? createBaseSink(dirs, key, async (stats) =>
              collector.encode({
                stats,
                configDigest: manifest.config.digest,
                platform,
                excluded: rootfs.stats.excluded,
                filtered: rootfs.stats.filtered,
                lostXattrs: lost,
                config: config.config,
                architecture,
              }),
            )
          : undefined;
      // Every stage between the entries and the output copies what it keeps past its next pull
      // (the tree collector, packCpio, the compressors), so the bodies may be read back into the
      // same buffers; uncompressed, packCpio's chunks would reach the caller as they are.
      const transientBodies = pre.compression !== 'none';
      const baseEntries = withExtras(
        rootfs.entries({ ...(signal ? { signal } : {}), transientBodies }),
        extras,
      );
      const pipeline = createBuildPipeline({
        members: [
          sink ? { entries: collector.tap(baseEntries), sink } : baseEntries,
          ...(modsMember ? [modsMember.member] : []),
          overlayMember(overlay.entries, o.threads, overlaySink),
        ],
        compression: pre.compression,
        ...(o.level !== undefined ? { level: o.level } : {}),
        ...(o.threads !== undefined ? { threads: o.threads } : {}),
        ...(signal ? { signal } : {}),
        expectedBytes: rootfs.stats.uncompressedBytes,
        onProgress: emit,
        facts: buildFacts({
          image: o.image,
          manifestDigest,
          base: {
            configDigest: manifest.config.digest,
            platform,
            excluded: rootfs.stats.excluded,
            filtered: rootfs.stats.filtered,
            lostXattrs: lost,
          },
          overlay,
          pre,
          mods,
          repairs: repairs.warnings,
        }),
        started,
      });
      return {
        pipeline,
        ...(modsMember?.verify ? { verify: modsMember.verify } : {}),
        close: async () => {
          await sink?.abort();
          await overlaySink?.abort();
          await closeModules();
          await rootfs.close();
          await source.close();
        },
      };
    } catch (error) {
      await indexed?.close();
      await modsMember?.release();
      await mods?.close();
      await source.close();
      throw error;
    }
  }

  /**
   * The modules member: from the output cache by {@link modulesMemberKey} (no image in the key:
   * every image shares it), else packed from the module source and stored as it streams out.
   */
  async #modulesMember(dirs: CacheLayout | undefined, mods: BuildModules): Promise<ModulesMember> {
    const o = this.options;
    const signal = o.signal;
    const threads = memberThreads(0, o.threads);
    const fresh = (sink?: MemberSink & { abort(): Promise<void> }): ModulesMember => ({
      member: {
        entries: mods.entries(signal),
        ...(threads !== undefined ? { threads } : {}),
        ...(sink ? { sink } : {}),
      },
      release: async () => {
        await sink?.abort();
      },
    });
    if (!dirs) return fresh();
    const key = modulesMemberKey(mods.key, o);
    const hit = await lookupModules(dirs, key);
    if (!hit) return fresh(createModulesSink(dirs, key));
    return {
      member: { file: hit.path, stats: hit.meta.stats },
      path: hit.path,
      verify: hit.verify,
      release: hit.release,
    };
  }

  /**
   * The overlay member's place in the output cache: its key (computed before any injected file
   * is read) and a sink that stores the member under it, unless a file changed meanwhile.
   */
  async #overlayCache(dirs: CacheLayout, base: string, architecture: string, mods: BuildModules | undefined) {
    const o = this.options;
    const resolved = mods ? { modules: mods.key } : {};
    const key = await overlayKey(o, base, architecture, resolved);
    return {
      key,
      sink: (overlay: Overlay) =>
        createOverlaySink(
          dirs,
          key,
          {
            init: overlay.init,
            ...(overlay.initKind ? { initKind: overlay.initKind } : {}),
            ...(overlay.command ? { command: overlay.command } : {}),
            warnings: overlay.warnings,
          },
          async () => (await overlayKey(o, base, architecture, resolved)) === key,
        ),
    };
  }

  /**
   * A build on a cached base member: no layer is downloaded or read. When the overlay member is
   * cached too (an unchanged rebuild), its bytes follow the base's and nothing is planned, packed
   * or compressed; otherwise the overlay is planned against the stored tree and packed anew (and
   * cached). `undefined` when the stored tree turns out unreadable: the caller builds from scratch.
   */
  async #fromCachedBase(
    hit: CachedBase,
    dirs: CacheLayout,
    key: string,
    manifestDigest: string,
    manifestPromise: Promise<ImageManifest>,
    pre: Preflight,
    started: number,
    repairs: readonly string[],
    mods: BuildModules | undefined,
    modsMember: ModulesMember | undefined,
  ): Promise<(Omit<Opened, 'close'> & { release(): Promise<void> }) | undefined> {
    const o = this.options;
    const signal = o.signal;
    const emit = (event: BuildProgressEvent) => o.onProgress?.(event);
    const h = hit.header;
    const overlayCache = await this.#overlayCache(dirs, key, h.architecture, mods);
    const cachedOverlay: CachedOverlay | undefined = await lookupOverlay(dirs, overlayCache.key);
    let tree: BaseTree | undefined;
    if (!cachedOverlay) {
      tree = hit.tree();
      if (!tree) return undefined;
    }
    const manifest = await manifestPromise;
    emit({
      type: 'resolved',
      image: o.image,
      digest: manifestDigest,
      platform: h.platform,
      // diffIds are in the config, which a cached build does not read.
      layers: manifest.layers.map((l) => ({
        digest: l.digest,
        diffId: '',
        mediaType: l.mediaType,
        size: l.size,
      })),
    });
    let described: Pick<Overlay, 'init' | 'initKind' | 'command' | 'warnings'>;
    let member: Parameters<typeof createBuildPipeline>[0]['members'][number];
    let sink: ReturnType<typeof overlayCache.sink> | undefined;
    if (cachedOverlay) {
      described = cachedOverlay.meta;
      member = { file: cachedOverlay.path, stats: cachedOverlay.meta.stats };
    } else {
      const { planOverlay } = await import('./overlay.ts');
      const overlay = await planOverlay(tree as BaseTree, h.config, h.architecture, o, pre, mods);
      described = overlay;
      sink = overlayCache.sink(overlay);
      member = overlayMember(overlay.entries, o.threads, sink);
    }
    const pipeline = createBuildPipeline({
      members: [...(modsMember ? [modsMember.member] : []), member],
      prefix: h.stats,
      compression: pre.compression,
      ...(o.level !== undefined ? { level: o.level } : {}),
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
      ...(signal ? { signal } : {}),
      expectedBytes: h.stats.cpioBytes,
      onProgress: emit,
      facts: buildFacts({
        image: o.image,
        manifestDigest,
        base: {
          configDigest: h.configDigest,
          platform: h.platform,
          excluded: h.excluded,
          filtered: h.filtered,
          lostXattrs: h.lostXattrs,
        },
        overlay: described,
        pre,
        mods,
        repairs,
      }),
      started,
    });
    return {
      pipeline,
      prefixFile: hit.path,
      verify: async () => {
        await Promise.all([hit.verify(), modsMember?.verify?.(), cachedOverlay?.verify()]);
      },
      // Every member from the cache: the output may already hold exactly these bytes.
      ...(cachedOverlay && (!modsMember || modsMember.path !== undefined)
        ? {
            upToDate: (output: string) =>
              outputUpToDate(dirs, overlayCache.key, output, [
                hit.path,
                ...(modsMember?.path !== undefined ? [modsMember.path] : []),
                cachedOverlay.path,
                trailerMember(pre.compression),
              ]),
          }
        : {}),
      release: async () => {
        await sink?.abort();
        await cachedOverlay?.release();
      },
    };
  }
}

/** The name a layer's spool file is written under (it is unlinked at once: only a kill leaves it). */
function spoolName(digest: string): string {
  return `spool-${digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 17)}`;
}

/** The modules member of a build, from the output cache or to be packed. */
interface ModulesMember {
  member: StoredMember | PipelineMember;
  /** The cached member's file (a private hard link), when it came from the cache. */
  path?: string;
  /** Checks a cached member against its recorded digest. */
  verify?: () => Promise<void>;
  /** Drops the private link, or the sink's temp file of a member not finished. */
  release(): Promise<void>;
}

/** A build ready to be read: the pipeline, a file whose bytes come first (a cached base member), and cleanup. */
interface Opened {
  pipeline: BuildPipeline;
  prefixFile?: string;
  /**
   * On an unchanged rebuild (every member from the output cache): whether `output` already
   * holds the archive's bytes, so that `summary` can be asked without reading `data`.
   */
  upToDate?: (output: string) => Promise<boolean>;
  /**
   * Checks the members that come from the output cache against their recorded digests; rejects
   * with a cache corruption error (the entry removed) when one does not match.
   */
  verify?: () => Promise<void>;
  close: () => Promise<void>;
}

function keepOption(
  pathFilter: typeof import('./filter.ts').pathFilter,
  pre: Preflight,
  o: InitramfsBuilderOptions,
  env: readonly string[],
) {
  const keep = pathFilter({
    slim: pre.slim,
    ...(pre.keepOnly ? { keepOnly: pre.keepOnly } : {}),
    keep: o.keep ?? [],
    env,
  });
  return keep ? { keep } : {};
}

async function* listed<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/**
 * The overlay member, compressed with one thread when it is small (see memberThreads), and
 * stored in the output cache through `sink` when there is one.
 */
function overlayMember(entries: readonly CpioEntry[], threads: number | undefined, sink?: MemberSink) {
  const bytes = entries.reduce((sum, e) => sum + (e.type === 'file' ? e.size : 0), 0);
  const chosen = memberThreads(bytes, threads);
  return {
    entries: listed(entries),
    ...(chosen !== undefined ? { threads: chosen } : {}),
    ...(sink ? { sink } : {}),
  };
}

function lostXattrs(rootfs: Rootfs): LostXattr[] {
  return rootfs.stats.lostXattrs.map((x) => ({ path: `/${x.path.replace(/^\/+/, '')}`, names: [...x.keys] }));
}
