/**
 * The build key: one sha256 that names an initramfs by everything that decides its bytes. Two
 * builds with the same key write the same bytes, so a result stored under the key (the remote
 * build cache in a registry, the local output cache) can stand in for a build.
 *
 * What goes in (as canonical JSON: keys sorted, no whitespace, absent values left out):
 * - `format`: {@link BUILD_FORMAT_VERSION}, bumped whenever irb changes what it writes for the
 *   same inputs (archive layout, generated /init, compressor settings);
 * - `manifest`: the image's platform manifest digest (it pins config and every layer), never the
 *   tag;
 * - every builder option that changes output bytes, defaults filled in (`compression` gzip,
 *   `level` 6 for gzip / 3 for zstd / 1 for lz4, `platform` linux/amd64, `initKind` auto,
 *   `exitAction` poweroff, `hostname` irb, `sourceDateEpoch` from `SOURCE_DATE_EPOCH`), so
 *   spelling a default out gives the same key;
 * - the contents of host files: a `keepOnly` trace becomes the sha256 of its bytes, an `inject` source becomes the sha256 of its bytes (a directory:
 *   of its sorted tree — names, kinds, modes, link targets, bytes), a custom `init` the sha256
 *   of the file. A path never goes in, so the same files in another checkout give the same key.
 *
 * Left out: what cannot change the bytes (`threads` — the output is identical for any count —,
 * credentials, caches, mirrors, registries, signals, callbacks). Any option the builder grows
 * later goes in as is unless it is listed in {@link NEUTRAL_OPTIONS}: a new option can only make
 * keys differ, never make two different outputs share one.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { COMPRESSION_LEVELS } from '@irb/compress/types';
import { sourceDateEpoch } from '@irb/cpio/epoch';
import { IrbError } from '@irb/errors';
import { initArchForPlatform, staticInitBinary } from '@irb/init';
import { parseInjectSpec } from '@irb/layers/inject-spec';
import { netValueOf } from './run-options.ts';
import type { InitramfsBuilderOptions } from './types.ts';
import { BUILD_FORMAT_VERSION, irbBuilderVersion } from './version.ts';

/** Builder options that never change the output bytes (not part of the key). */
export const NEUTRAL_OPTIONS: ReadonlySet<string> = new Set([
  'image',
  'threads',
  'keychains',
  'cacheDir',
  'cache',
  'insecureRegistries',
  'mirrors',
  'signal',
  'onProgress',
]);

/**
 * What the options resolve to before a key can be computed: the key of the kernel module set
 * (`kernelModules` + `modules`), which names the modules' bytes, not where they were read.
 */
export interface ResolvedKeyParts {
  /** @irb/kmod's key of the module set; resolved from the options when missing and they ask for modules. */
  modules?: string;
}

/** What the key is computed from: the resolved image and the normalized, content-addressed options. */
export interface BuildKeyInput {
  /** Platform manifest digest of the image. */
  manifestDigest: string;
  /** Options as JSON values; host files already replaced by their content digests. */
  options: Record<string, unknown>;
}

/** JSON with sorted keys and no `undefined`: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new RangeError('not a finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== 'function')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The build key (64 hex digits) of an input. Pure: same input, same key. */
export function buildKey(input: BuildKeyInput): string {
  const text = canonicalJson({
    format: BUILD_FORMAT_VERSION,
    manifest: input.manifestDigest,
    options: input.options,
  });
  return createHash('sha256').update(text).digest('hex');
}

/** sha256 of a host file or directory tree: bytes, and for a tree its names, kinds, modes and link targets. */
export async function contentDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (p: string, name: string): Promise<void> => {
    const st = await lstat(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) {
      hash.update(`d ${mode} ${name}\0`);
      for (const child of (await readdir(p)).sort()) await walk(join(p, child), `${name}/${child}`);
    } else if (st.isSymbolicLink()) {
      hash.update(`l ${mode} ${name}\0${await readlink(p)}\0`);
    } else if (st.isFile()) {
      const bytes = await readFile(p);
      hash.update(`f ${mode} ${name} ${bytes.byteLength}\0`).update(bytes);
    } else {
      hash.update(`o ${mode} ${name}\0`);
    }
  };
  try {
    await walk(path, '.');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      'IRB_INJECT_SOURCE_UNREADABLE',
      `${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}; check the path in \`inject\` or \`init\``,
      { cause: error },
    );
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * The {@link BuildKeyInput} of builder options for an image resolved to `manifestDigest`:
 * defaults filled in, neutral options dropped, host files replaced by their content digests, the
 * kernel modules by their set's key (`resolved.modules`, else resolved here: a source read only
 * when its resolution is not cached), the network by its `ip=` value.
 */
export async function buildKeyInput(
  options: InitramfsBuilderOptions,
  manifestDigest: string,
  resolved: ResolvedKeyParts = {},
): Promise<BuildKeyInput> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (!NEUTRAL_OPTIONS.has(name) && value !== undefined && typeof value !== 'function') out[name] = value;
  }
  const compression = options.compression ?? 'gzip';
  out.compression = compression;
  // Looked up by name: the key of options with an unknown compression (refused later) has no level.
  const levels: Partial<Record<string, { default: number }>> = COMPRESSION_LEVELS;
  if (compression !== 'none') out.level = options.level ?? levels[compression]?.default;
  else delete out.level;
  out.initKind = options.initKind ?? 'auto';
  out.platform = options.platform ?? 'linux/amd64';
  out.exitAction = options.exitAction ?? 'poweroff';
  out.hostname = options.hostname ?? 'irb';
  out.replaceImageInit = options.replaceImageInit === true;
  out.keepImageInit = options.keepImageInit === true;
  out.exclude = [...(options.exclude ?? [])];
  const epoch = sourceDateEpoch(options.sourceDateEpoch);
  if (epoch !== undefined) out.sourceDateEpoch = epoch;
  else delete out.sourceDateEpoch;
  // Order matters for inject (a later source wins over an earlier one at the same path): keep it.
  out.inject = await Promise.all(
    (options.inject ?? []).map(async (spec) => {
      const { src, dest } = parseInjectSpec(spec);
      return { source: await contentDigest(src), dest };
    }),
  );
  if (options.init !== undefined) out.init = await contentDigest(options.init);
  // Trace files count by content, merged (their order does not matter to the output).
  if (options.keepOnly?.length) {
    out.keepOnly = (await Promise.all(options.keepOnly.map((file) => contentDigest(file)))).sort();
  } else delete out.keepOnly;
  if (options.keep?.length) out.keep = [...options.keep];
  else delete out.keep;
  if (options.slim?.length) out.slim = [...new Set(options.slim)].sort();
  else delete out.slim;
  if (!options.trace) delete out.trace;
  // The modules by what they are (the set's key covers release, paths and bytes), not by where
  // they were read: the same set from a directory, a .deb or an image is the same member.
  delete out.kernelModules;
  delete out.modules;
  const modulesKey = resolved.modules ?? (await modulesKeyOf(options));
  if (modulesKey !== undefined) out.modules = modulesKey;
  const net = netValueOf(options);
  if (net !== undefined) out.net = net;
  if (options.env !== undefined && options.env.length === 0) delete out.env;
  // It changes no byte, only whether a mismatch fails the build or warns: in the overlay key (a
  // cached overlay carries the warning), left out when off so that keys from before stay.
  if (options.allowArchMismatch !== true) delete out.allowArchMismatch;
  return { manifestDigest, options: out };
}

/**
 * Options that only shape the overlay member (injected files, /init and how it runs): left out
 * of the {@link baseKey}, so one base member serves every job on the same image.
 */
export const OVERLAY_OPTIONS: ReadonlySet<string> = new Set([
  'kernelModules',
  'modules',
  'net',
  'entrypoint',
  'cmd',
  'env',
  'workdir',
  'user',
  'inject',
  'init',
  'initKind',
  'hostname',
  'exitAction',
  'replaceImageInit',
  'keepImageInit',
  'trace',
  'allowArchMismatch',
]);

/**
 * The key of a build's base member in the local output cache (64 hex digits): sha256 over the
 * canonical JSON of the format version, irb's builder version, the platform manifest digest and
 * the options normalized as for {@link buildKeyInput} minus {@link OVERLAY_OPTIONS} — platform,
 * compression and level, `exclude`, `slim`, `keepOnly` (trace contents), `keep`,
 * SOURCE_DATE_EPOCH, and any option added later (a new option can only split keys).
 */
export async function baseKey(options: InitramfsBuilderOptions, manifestDigest: string): Promise<string> {
  const rest = Object.fromEntries(
    Object.entries(options).filter(([name]) => !OVERLAY_OPTIONS.has(name)),
  ) as InitramfsBuilderOptions;
  const input = await buildKeyInput(rest, manifestDigest);
  for (const name of OVERLAY_OPTIONS) delete input.options[name];
  const text = canonicalJson({
    format: BUILD_FORMAT_VERSION,
    base: true,
    irb: irbBuilderVersion(),
    manifest: manifestDigest,
    options: input.options,
  });
  return createHash('sha256').update(text).digest('hex');
}

/** The tag the remote build cache keeps a key's result under: `irb-<64 hex digits of the key>`. */
export function buildCacheTag(key: string): string {
  return `irb-${key}`;
}

/**
 * The key of a build's overlay member in the local output cache (64 hex digits): sha256 over the
 * canonical JSON of the format version, the {@link baseKey} (the overlay is planned against that
 * base and compressed like it), the {@link OVERLAY_OPTIONS} normalized as for
 * {@link buildKeyInput} (host files by content digest, the modules by their set's key, which
 * also decides the overlay's place after a modules member), and the digest of the static init
 * binary `architecture` would get (it is not part of irb's version while developing it).
 */
export async function overlayKey(
  options: InitramfsBuilderOptions,
  base: string,
  architecture: string,
  resolved: ResolvedKeyParts = {},
): Promise<string> {
  const picked = Object.fromEntries(Object.entries(options).filter(([name]) => OVERLAY_OPTIONS.has(name)));
  const input = await buildKeyInput({ ...picked, image: options.image }, '', resolved);
  const normalized = Object.fromEntries(
    Object.entries(input.options).filter(([name]) => OVERLAY_OPTIONS.has(name)),
  );
  const text = canonicalJson({
    format: BUILD_FORMAT_VERSION,
    overlay: true,
    base,
    options: normalized,
    staticInit: staticInitDigest(architecture),
  });
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The key of a modules member in the local output cache (64 hex digits): the module set's key,
 * the compression and level (defaults filled in) and its place in the archive (member 1, so its
 * archive device number is 0:1). Nothing of the image: every image, and every agent, built with
 * the same modules shares the member.
 */
export function modulesMemberKey(
  setKey: string,
  options: Pick<InitramfsBuilderOptions, 'compression' | 'level'>,
): string {
  const compression = options.compression ?? 'gzip';
  const defaultLevel: Record<string, number> = { gzip: 6, zstd: 3, lz4: 1 };
  const text = canonicalJson({
    format: BUILD_FORMAT_VERSION,
    modules: setKey,
    compression,
    ...(compression !== 'none' ? { level: options.level ?? defaultLevel[compression] } : {}),
    member: 1,
  });
  return createHash('sha256').update(text).digest('hex');
}

/** The module set's key of options that ask for modules (resolved, then released), else `undefined`. */
async function modulesKeyOf(options: InitramfsBuilderOptions): Promise<string | undefined> {
  if (options.kernelModules === undefined && !options.modules?.length) return undefined;
  const [{ resolveBuildModules }, { sourceOptions }] = await Promise.all([
    import('./kernel-modules.ts'),
    import('./source-options.ts'),
  ]);
  const set = await resolveBuildModules(options, () => sourceOptions(options));
  await set?.close();
  return set?.key;
}

/** sha256 of the static init binary for `architecture`, or `null` when there is none (or it is missing). */
function staticInitDigest(architecture: string): string | null {
  const arch = initArchForPlatform(architecture);
  if (arch === undefined) return null;
  try {
    // The bytes staticInitBinary keeps: a build that then packs /init reads the file once.
    return createHash('sha256').update(staticInitBinary(arch)).digest('hex');
  } catch {
    return null;
  }
}
