/**
 * The remote build cache: a registry repository holding built archives under tags derived from
 * their build key (`irb-<key>`, see `buildCacheTag`). `cacheFrom` looks the key up before
 * building and, on a hit, pulls the archive instead (no image layer is downloaded: only the
 * image's manifest and config, to learn its digest, and the archive blob); `cacheTo` pushes the
 * result after a build. A hit writes exactly the bytes a build would, because the key covers
 * everything that decides them and the artifact's own `dev.irb.build-key` is checked.
 *
 * Many hosts may build and push the same key at once: blob uploads of one digest are
 * independent sessions the registry commits atomically, and the manifests they push under the
 * tag are byte-identical (no wall-clock time in them), so whoever wins, the tag names the same
 * artifact.
 */
import { isIrbError } from '@irb/errors';
import { openImage, parseImageSpec, parseReference } from '@irb/registry';
import { buildCacheTag, buildKey, buildKeyInput } from './build-key.ts';
import { InitramfsBuilder } from './builder.ts';
import { monotonicMs } from './clock.ts';
import {
  type FleetOptions,
  type PushInitramfsResult,
  pushBuiltInitramfs,
  pushInitramfs,
  withClient,
} from './fleet.ts';
import { type PullInitramfsResult, pullInitramfs } from './fleet-pull.ts';
import type { BuildSummary, InitramfsBuilderOptions } from './types.ts';

/** Where the remote build cache lives. */
export interface RemoteCacheOptions {
  /** A repository (`host/repo`) to look the build key up in before building. */
  cacheFrom?: string;
  /** A repository to push the result to after a build (or after a hit from another repository). */
  cacheTo?: string;
}

/** What {@link buildWithRemoteCache} did. */
export interface CachedBuildResult {
  /** `hit`: pulled from `cacheFrom`; `miss`: built. */
  cache: 'hit' | 'miss';
  /** The build key (64 hex digits). */
  key: string;
  output: string;
  /** The image's platform manifest digest the key was computed from. */
  manifestDigest: string;
  /**
   * The build's summary. For a hit, the one its pusher recorded (the key decides it), with this
   * run's `output`, `image` and `durationMs`; absent for a hit whose artifact carries none.
   */
  summary?: BuildSummary;
  /** The pulled artifact (hits only). */
  pulled?: PullInitramfsResult;
  /** The pushed artifact (with `cacheTo`). */
  pushed?: PushInitramfsResult;
  /** Why `cacheFrom` could not be asked (unreachable, unauthorized…); the build went ahead. */
  lookupError?: Error;
}

/** The annotation carrying a build's summary, so that a hit reports everything a miss does. */
const BUILD_SUMMARY_ANNOTATION = 'dev.irb.build-summary';

/**
 * What the build key decides in a summary, in a fixed order: pushers of one key write
 * byte-identical manifests. Not where the output went, how long it took or how the image was
 * spelled (`alpine` and `docker.io/library/alpine` share a key).
 */
const DECIDED = [
  'manifestDigest',
  'configDigest',
  'platform',
  'compression',
  'entries',
  'excluded',
  'filtered',
  'uncompressedBytes',
  'compressedBytes',
  'unpackedBytes',
  'recommendedMemoryMiB',
  'lostXattrs',
  'init',
  'initKind',
  'command',
  'warnings',
] as const satisfies ReadonlyArray<keyof BuildSummary>;

function storedSummary(summary: BuildSummary): string {
  return JSON.stringify(Object.fromEntries(DECIDED.map((key) => [key, summary[key] ?? null])));
}

/** The recorded summary of a hit, or `undefined` when the artifact has none (or a malformed one). */
function restoredSummary(
  text: string | undefined,
  run: Pick<BuildSummary, 'output' | 'image' | 'durationMs'>,
): BuildSummary | undefined {
  if (text === undefined) return undefined;
  let stored: Record<string, unknown>;
  try {
    stored = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const numbers = DECIDED.filter((key) => key.endsWith('Bytes') || key.endsWith('MiB') || key === 'entries');
  if (typeof stored !== 'object' || stored === null || numbers.some((key) => typeof stored[key] !== 'number'))
    return undefined;
  if (!Array.isArray(stored.warnings) || !Array.isArray(stored.lostXattrs)) return undefined;
  const summary = { ...run } as Record<string, unknown>;
  for (const key of DECIDED)
    if (stored[key] !== null && stored[key] !== undefined) summary[key] = stored[key];
  return summary as unknown as BuildSummary;
}

function fleetOptions(options: InitramfsBuilderOptions): FleetOptions {
  const out: FleetOptions = {};
  if (options.keychains) out.keychains = options.keychains;
  if (options.cacheDir !== undefined) out.cacheDir = options.cacheDir;
  if (options.cache !== undefined) out.cache = options.cache;
  if (options.insecureRegistries) out.insecureRegistries = options.insecureRegistries;
  if (options.mirrors) out.mirrors = options.mirrors;
  if (options.signal) out.signal = options.signal;
  return out;
}

function cacheReference(repository: string, key: string): string {
  const ref = parseReference(repository);
  return `${ref.registry}/${ref.repository}:${buildCacheTag(key)}`;
}

/** The platform manifest digest of `options.image` (manifest and config only, no layers). */
async function resolveDigest(options: InitramfsBuilderOptions, fleet: FleetOptions): Promise<string> {
  return withClient(fleet, async (client) => {
    const image = await openImage(options.image, {
      client,
      ...(options.platform !== undefined ? { platform: options.platform } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return image.digest();
  });
}

/**
 * Builds `options.image` into `output` through the remote build cache: with `cacheFrom`, a hit
 * is pulled instead of built; with `cacheTo`, the result is pushed under the key's tag. A
 * `cacheFrom` that cannot be asked does not stop the build (`lookupError` says why); a failing
 * `cacheTo` push fails, after the output was written.
 */
export async function buildWithRemoteCache(
  options: InitramfsBuilderOptions,
  output: string,
  remote: RemoteCacheOptions,
): Promise<CachedBuildResult> {
  const started = monotonicMs();
  const fleet = fleetOptions(options);
  const manifestDigest = await resolveDigest(options, fleet);
  const key = buildKey(await buildKeyInput(options, manifestDigest));
  let lookupError: Error | undefined;
  if (remote.cacheFrom !== undefined) {
    try {
      const pulled = await pullInitramfs(cacheReference(remote.cacheFrom, key), output, {
        ...fleet,
        buildKey: key,
      });
      const result: CachedBuildResult = { cache: 'hit', key, output, manifestDigest, pulled };
      const summary = restoredSummary(pulled.annotations[BUILD_SUMMARY_ANNOTATION], {
        output,
        image: options.image,
        durationMs: Math.round(monotonicMs() - started),
      });
      if (summary) result.summary = summary;
      if (
        remote.cacheTo !== undefined &&
        parseReference(remote.cacheTo).repository !== parseReference(remote.cacheFrom).repository
      ) {
        result.pushed = await pushResult(
          options,
          output,
          remote.cacheTo,
          key,
          manifestDigest,
          pulled.platform,
          pulled.annotations,
          fleet,
          remote.cacheFrom,
        );
      }
      return result;
    } catch (error) {
      options.signal?.throwIfAborted();
      const miss =
        isIrbError(error) &&
        (error.code === 'IRB_IMAGE_NOT_FOUND' || error.code === 'IRB_INITRAMFS_NOT_FOUND');
      if (!miss) lookupError = error as Error;
    }
  }
  const summary = await new InitramfsBuilder(options).build(output);
  // The tag may have moved between the lookup and the build: the key follows what was built.
  const builtKey =
    summary.manifestDigest === manifestDigest
      ? key
      : buildKey(await buildKeyInput(options, summary.manifestDigest));
  const result: CachedBuildResult = {
    cache: 'miss',
    key: builtKey,
    output,
    manifestDigest: summary.manifestDigest,
    summary,
  };
  if (lookupError) result.lookupError = lookupError;
  if (remote.cacheTo !== undefined) {
    result.pushed = await pushResult(
      options,
      output,
      remote.cacheTo,
      builtKey,
      summary.manifestDigest,
      summary.platform,
      {
        'dev.irb.memory.recommended-mib': String(summary.recommendedMemoryMiB),
        [BUILD_SUMMARY_ANNOTATION]: storedSummary(summary),
      },
      fleet,
      remote.cacheFrom,
    );
  }
  return result;
}

async function pushResult(
  options: InitramfsBuilderOptions,
  output: string,
  cacheTo: string,
  key: string,
  manifestDigest: string,
  platform: string | undefined,
  annotations: Record<string, string>,
  fleet: FleetOptions,
  mountFrom: string | undefined,
): Promise<PushInitramfsResult> {
  const memory = Number(annotations['dev.irb.memory.recommended-mib']);
  const registrySource = parseImageSpec(options.image).transport === 'registry';
  const recorded = annotations[BUILD_SUMMARY_ANNOTATION];
  const push = {
    ...fleet,
    ...(recorded !== undefined ? { annotations: { [BUILD_SUMMARY_ANNOTATION]: recorded } } : {}),
    buildKey: key,
    sourceDigest: manifestDigest,
    ...(registrySource ? { source: options.image } : {}),
    ...(Number.isFinite(memory) && memory > 0 ? { recommendedMemoryMiB: memory } : {}),
    ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
    ...(mountFrom ? { mountFrom: [parseReference(mountFrom).repository] } : {}),
    // The cache repository is not the image's: never attach there.
    subject: false,
  };
  // The build's (or the pulled artifact's) platform: the archive need not be decoded to tell it.
  const ref = cacheReference(cacheTo, key);
  return platform !== undefined
    ? pushBuiltInitramfs(output, ref, { ...push, platform })
    : pushInitramfs(output, ref, push);
}
