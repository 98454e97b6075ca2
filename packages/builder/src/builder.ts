import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createDockerKeychain } from '@irb/auth-docker';
import { createEnvKeychain } from '@irb/auth-env';
import { compress } from '@irb/compress';
import { type CpioEntry, packCpio } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { createDirectoryIndexCache, indexLayers, parseInjectSpec, type Rootfs } from '@irb/layers';
import type { Keychain } from '@irb/registry';
import { writeFileAtomic } from './atomic.ts';
import { cacheDirectories, ensureCacheDirectories } from './cache.ts';
import { type InitRootfsView, planInit } from './init.ts';
import { recommendGuestMemory, tmpfsFootprint } from './memory.ts';
import { openSource, platformString, type SourceOptions } from './source.ts';
import type {
  BuildProgressEvent,
  BuildStream,
  BuildSummary,
  InitramfsBuilderOptions,
  LayerInfo,
  LostXattr,
} from './types.ts';

/**
 * The keychains used when none are given: `IRB_AUTH_*` variables, then Docker/Podman config files.
 * Variables come first because they are set for this run on purpose, while a config file may
 * name a credential helper that is missing on this machine (a `credsStore` copied from a desktop).
 */
export function defaultKeychains(): Keychain[] {
  return [createEnvKeychain(), createDockerKeychain()];
}

/**
 * Builds a bootable initramfs from an image: pull (registry, OCI layout or docker-archive), apply
 * the layers, inject files and an `/init`, pack CPIO newc, compress, and write the output file
 * atomically. The whole way is one stream with backpressure: file bodies go from the verified layer
 * blobs to the output without being staged on disk or held in memory.
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
    if (options.init !== undefined && options.keepImageInit) {
      throw new IrbError('IRB_OPTION_INVALID', 'init and keepImageInit exclude each other; pass one of them');
    }
    this.options = { ...options };
  }

  /**
   * Builds the initramfs into `output` (created atomically: it appears complete or not at all) and
   * returns the summary. Rejects with an `IrbError` saying what to fix.
   */
  async build(output: string): Promise<BuildSummary> {
    const o = this.options;
    const started = performance.now();
    const emit = (event: BuildProgressEvent) => o.onProgress?.(event);
    const signal = o.signal;
    signal?.throwIfAborted();
    const compression = o.compression ?? 'gzip';
    if (compression !== 'gzip' && compression !== 'zstd' && compression !== 'none') {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `compression "${String(compression)}" is unknown; use gzip, zstd or none`,
      );
    }

    // Check host inputs before any download, so a typo fails in milliseconds.
    const injects = (o.inject ?? []).map((spec) => parseInjectSpec(spec));
    for (const spec of injects) await requireHostPath(spec.src, `--inject ${spec.src}:${spec.dest}`);
    if (o.init !== undefined) await requireHostPath(o.init, `--init ${o.init}`, true);
    await checkOutputDir(output);
    if (o.cache !== false) await ensureCacheDirectories(o.cacheDir);

    emit({ type: 'resolve', image: o.image });
    const source = await openSource(o.image, sourceOptions(o, emit));
    try {
      const prepared = await this.#prepare(source.image, started, emit);
      const bytes = await writeFileAtomic(output, prepared.data, {
        ...(signal ? { signal } : {}),
        onWrite: prepared.onWrite,
      });
      return prepared.finish(output, bytes);
    } finally {
      await source.close();
    }
  }

  /**
   * The archive as a byte stream instead of a file, e.g. to upload it or pipe it elsewhere. Nothing
   * happens until the stream is read; `summary` resolves once it was read to the end (its
   * `output` is `-`) and rejects if the build failed or the stream was abandoned.
   */
  stream(): BuildStream {
    const o = this.options;
    let settle: { resolve: (s: BuildSummary) => void; reject: (e: unknown) => void } | undefined;
    const summary = new Promise<BuildSummary>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // A caller who only reads the bytes must not get an unhandled rejection from `summary`.
    summary.catch(() => {});
    const prepare = (image: OpenedImage, started: number, emit: (e: BuildProgressEvent) => void) =>
      this.#prepare(image, started, emit);
    async function* generate(): AsyncGenerator<Uint8Array> {
      let done = false;
      try {
        const started = performance.now();
        const emit = (event: BuildProgressEvent) => o.onProgress?.(event);
        o.signal?.throwIfAborted();
        const injects = (o.inject ?? []).map((spec) => parseInjectSpec(spec));
        for (const spec of injects) await requireHostPath(spec.src, `--inject ${spec.src}:${spec.dest}`);
        if (o.init !== undefined) await requireHostPath(o.init, `--init ${o.init}`, true);
        if (o.cache !== false) await ensureCacheDirectories(o.cacheDir);
        emit({ type: 'resolve', image: o.image });
        const source = await openSource(o.image, sourceOptions(o, emit));
        try {
          const prepared = await prepare(source.image, started, emit);
          let bytes = 0;
          for await (const chunk of prepared.data) {
            o.signal?.throwIfAborted();
            bytes += chunk.byteLength;
            prepared.onWrite(bytes);
            yield chunk;
          }
          done = true;
          settle?.resolve(prepared.finish('-', bytes));
        } finally {
          await source.close();
        }
      } catch (error) {
        settle?.reject(error);
        throw error;
      } finally {
        if (!done)
          settle?.reject(
            new IrbError(
              'IRB_STREAM_ABANDONED',
              'the build stream was not read to the end; read it fully to get a summary',
            ),
          );
      }
    }
    return Object.assign(generate(), { summary });
  }

  /** Everything up to the compressed byte stream; `finish` turns the counts into the summary. */
  async #prepare(
    image: OpenedImage,
    started: number,
    emit: (event: BuildProgressEvent) => void,
  ): Promise<{
    data: AsyncIterable<Uint8Array>;
    onWrite: (bytes: number) => void;
    finish: (output: string, compressedBytes: number) => BuildSummary;
  }> {
    const o = this.options;
    const signal = o.signal;
    const compression = o.compression ?? 'gzip';
    const injects = (o.inject ?? []).map((spec) => parseInjectSpec(spec));
    const [manifestDigest, manifest, config, layers] = await Promise.all([
      image.digest(),
      image.manifest(),
      image.config(),
      image.layers(),
    ]);
    const platform = platformString(config);
    const layerInfo: LayerInfo[] = layers.map((l) => ({
      digest: l.digest,
      diffId: l.diffId,
      mediaType: l.mediaType,
      size: l.size,
    }));
    emit({ type: 'resolved', image: o.image, digest: manifestDigest, platform, layers: layerInfo });

    // No separate download step: opening the first layer makes the registry client fetch all
    // layers in the background (read-ahead, in parallel), so indexing layer N overlaps the
    // download of the layers above it, and packing reads them from the verified cache.
    // With the blob cache on, the layers' parsed headers are cached too (keyed by digest; every
    // source verifies blobs against it), so a warm rebuild does not decompress a layer twice.
    const rootfs = await indexLayers(layers, {
      ...(o.cache !== false
        ? { indexCache: createDirectoryIndexCache(cacheDirectories(o.cacheDir).index) }
        : {}),
      ...(o.exclude ? { exclude: o.exclude } : {}),
      ...(signal ? { signal } : {}),
      ...(sourceDateEpoch(o) !== undefined ? { sourceDateEpoch: sourceDateEpoch(o) } : {}),
      onProgress: (p) => {
        if (p.phase === 'index')
          emit({ type: 'index', layer: p.layer, layers: p.layers, entries: p.entries });
      },
    });

    const view = rootfsView(rootfs, signal);
    const imageInit = await view.stat('/init');
    for (const spec of injects) await rootfs.injectHostPath(spec.src, spec.dest);
    // `--inject agent:/init` is as explicit as `--init agent`.
    const injectedInit = injects.some((spec) => spec.dest.replace(/^\/+|\/+$/g, '') === 'init');
    if (injectedInit && (o.init !== undefined || o.keepImageInit)) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        'an --inject targets /init and --init or --keep-init says otherwise; keep only one of them',
      );
    }
    let init: BuildSummary['init'];
    const extras: CpioEntry[] = [];
    if (imageInit && !o.replaceImageInit && !o.keepImageInit && o.init === undefined && !injectedInit) {
      throw new IrbError(
        'IRB_IMAGE_HAS_INIT',
        'the image has its own /init; pass --keep-init to boot it, --replace-init to replace it with the generated one, or --init FILE',
      );
    }
    if (o.keepImageInit) {
      if (!imageInit) {
        throw new IrbError(
          'IRB_IMAGE_NO_INIT',
          'keepImageInit was given but the image has no /init; drop --keep-init',
        );
      }
      init = 'image';
    } else if (o.init !== undefined) {
      rootfs.inject('/init', { hostPath: o.init }, { mode: 0o755, uid: 0, gid: 0 });
      init = 'file';
    } else if (injectedInit) {
      init = 'file';
    } else {
      const plan = await planInit(view, config.config, {
        ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
        ...(o.exitAction !== undefined ? { exitAction: o.exitAction } : {}),
      });
      rootfs.inject(
        '/init',
        { bytes: new TextEncoder().encode(plan.script) },
        { mode: 0o755, uid: 0, gid: 0 },
      );
      for (const dir of plan.directories) extras.push({ type: 'directory', path: dir.slice(1), mode: 0o755 });
      init = 'generated';
    }
    // Without /dev/console the kernel starts init with no stdin/stdout/stderr, and nothing is seen.
    if (!rootfs.lookup('/dev/console')) {
      if (!(await view.stat('/dev')) && !extras.some((e) => e.path === 'dev')) {
        extras.push({ type: 'directory', path: 'dev', mode: 0o755 });
      }
      extras.push({ type: 'char', path: 'dev/console', mode: 0o600, rdevMajor: 5, rdevMinor: 1 });
    }

    const totalBytes = rootfs.stats.uncompressedBytes;
    let entries = 0;
    let records = 0;
    let unpackedBytes = 0;
    let cpioBytes = 0;
    const counted = async function* (source: AsyncIterable<CpioEntry>): AsyncGenerator<CpioEntry> {
      for await (const entry of source) {
        entries++;
        records += 1 + (entry.type === 'file' ? (entry.links?.length ?? 0) : 0);
        if (entry.type === 'file') unpackedBytes += tmpfsFootprint(entry.size);
        yield entry;
      }
    };
    let lastPack = 0;
    const packed = tap(
      packCpio(
        counted(withExtras(rootfs.entries(signal ? { signal } : {}), extras)),
        signal ? { signal } : {},
      ),
      (n) => {
        cpioBytes += n;
        // Progress at most every 256 KiB keeps event overhead negligible next to the data.
        if (cpioBytes - lastPack >= 256 * 1024) {
          lastPack = cpioBytes;
          emit({ type: 'pack', entries, bytes: cpioBytes, totalBytes: Math.max(totalBytes, cpioBytes) });
        }
      },
    );
    const compressed =
      compression === 'none'
        ? packed
        : compress(packed, {
            format: compression,
            ...(o.level !== undefined ? { level: o.level } : {}),
            ...(o.threads !== undefined ? { threads: o.threads } : {}),
            ...(signal ? { signal } : {}),
          });
    const finish = (output: string, compressedBytes: number): BuildSummary => {
      emit({ type: 'pack', entries, bytes: cpioBytes, totalBytes: cpioBytes });
      const summary: BuildSummary = {
        output,
        image: o.image,
        manifestDigest,
        configDigest: manifest.config.digest,
        platform,
        compression,
        entries: records,
        excluded: rootfs.stats.excluded,
        uncompressedBytes: cpioBytes,
        compressedBytes,
        unpackedBytes,
        recommendedMemoryMiB: recommendGuestMemory({ tmpfsBytes: unpackedBytes, compressedBytes }),
        lostXattrs: lostXattrs(rootfs),
        init,
        durationMs: Math.round(performance.now() - started),
      };
      emit({ type: 'done', summary });
      return summary;
    };
    return {
      data: compressed,
      onWrite: (bytes) => emit({ type: 'compress', inputBytes: cpioBytes, bytes }),
      finish,
    };
  }
}

function sourceDateEpoch(o: InitramfsBuilderOptions): number | undefined {
  if (o.sourceDateEpoch !== undefined) return o.sourceDateEpoch;
  const env = process.env.SOURCE_DATE_EPOCH;
  return env !== undefined && /^\d+$/.test(env) ? Number(env) : undefined;
}

/** Registry/source options shared by build, inspect and list-layers. */
export function sourceOptions(
  o: Pick<
    InitramfsBuilderOptions,
    'platform' | 'keychains' | 'cacheDir' | 'cache' | 'insecureRegistries' | 'mirrors' | 'signal'
  >,
  emit?: (event: BuildProgressEvent) => void,
): SourceOptions {
  const options: SourceOptions = { keychains: o.keychains ?? defaultKeychains() };
  if (o.platform !== undefined) options.platform = o.platform;
  if (o.cacheDir !== undefined) options.cacheDir = o.cacheDir;
  if (o.cache !== undefined) options.cache = o.cache;
  if (o.insecureRegistries) options.insecureRegistries = o.insecureRegistries;
  if (o.mirrors) options.mirrors = o.mirrors;
  if (o.signal) options.signal = o.signal;
  if (emit) options.onProgress = (p) => emit({ ...p, type: 'blob' });
  return options;
}

async function requireHostPath(path: string, what: string, file = false): Promise<void> {
  try {
    const st = await stat(path);
    if (file && !st.isFile()) {
      throw new IrbError(
        'IRB_INPUT_UNREADABLE',
        `${what}: ${path} is not a regular file; give the path of a file`,
      );
    }
  } catch (error) {
    if (error instanceof IrbError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `${what}: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}; check the path`,
      { cause: error },
    );
  }
}

/** Fails before any download when the output cannot be created where asked. */
async function checkOutputDir(output: string): Promise<void> {
  const dir = dirname(resolve(output));
  let reason: string | undefined;
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) reason = 'a parent is not a directory';
    else await access(dir, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    reason =
      reason ??
      (code === 'ENOENT'
        ? 'the directory does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'EROFS'
            ? 'the filesystem is read-only'
            : code === 'ENOTDIR'
              ? 'a parent is not a directory'
              : String(code));
  }
  if (reason === undefined) {
    const existing = await stat(output).catch(() => undefined);
    if (existing?.isDirectory()) reason = 'it is a directory';
  }
  if (reason !== undefined) {
    throw new IrbError(
      'IRB_OUTPUT_FAILED',
      `cannot write the output ${output} (${reason}); choose a writable path with -o FILE`,
    );
  }
}

/** Adapts @irb/layers' Rootfs to what init planning asks. */
function rootfsView(rootfs: Rootfs, signal?: AbortSignal): InitRootfsView {
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

function lostXattrs(rootfs: Rootfs): LostXattr[] {
  return rootfs.stats.lostXattrs.map((x) => ({ path: `/${x.path.replace(/^\/+/, '')}`, names: [...x.keys] }));
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

function normalized(path: string | Uint8Array): string | undefined {
  if (typeof path !== 'string') return undefined;
  const p = path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  return p === '.' ? '' : p;
}

/**
 * Splices entries the image lacks (mount points, WorkingDir, /dev/console) into the rootfs stream,
 * each right after its parent so the kernel, which never creates missing parents, can make it.
 */
export async function* withExtras(
  source: AsyncIterable<CpioEntry>,
  extras: readonly CpioEntry[],
): AsyncGenerator<CpioEntry> {
  const names = new Set(extras.map((e) => normalized(e.path)));
  const pending = new Map<string, CpioEntry[]>();
  const atRoot: CpioEntry[] = [];
  for (const extra of extras) {
    // Anchor each extra at its nearest ancestor that the image has; extras keep their (parents-first) order.
    let anchor = parentOf(normalized(extra.path)!);
    while (anchor !== '' && names.has(anchor)) anchor = parentOf(anchor);
    if (anchor === '') atRoot.push(extra);
    else pending.set(anchor, [...(pending.get(anchor) ?? []), extra]);
  }
  let rootDone = false;
  for await (const entry of source) {
    const path = normalized(entry.path);
    if (!rootDone && path !== '') {
      rootDone = true;
      yield* atRoot;
    }
    yield entry;
    if (rootDone === false && path === '') {
      rootDone = true;
      yield* atRoot;
    }
    if (path !== undefined && entry.type === 'directory') {
      const children = pending.get(path);
      if (children) {
        pending.delete(path);
        yield* children;
      }
    }
  }
  if (!rootDone) yield* atRoot;
}

async function* tap(
  source: AsyncIterable<Uint8Array>,
  onChunk: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    onChunk(chunk.byteLength);
    yield chunk;
  }
}

type OpenedImage = Awaited<ReturnType<typeof openSource>>['image'];
