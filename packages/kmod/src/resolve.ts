import { sourceDateEpoch } from '@irb/cpio/epoch';
import { IrbError } from '@irb/errors';
import { readAll, sha256, unpackModule } from './bytes.ts';
import { moduleClosure, resolveRequest } from './closure.ts';
import { parseKernelConfig } from './indexes.ts';
import { type ModuleInfo, readModinfo, releaseOfVermagic } from './modinfo.ts';
import { type DepmodFiles, indexFromDepmod, indexFromModinfo, type ModuleIndex } from './module-index.ts';
import { moduleFileOf, normalizeModuleName, plainModulePath } from './names.ts';
import { presetOf, VIRTIO_TRANSPORTS } from './presets.ts';
import type { ModuleSource, ModuleSourceBody } from './source.ts';
import type { ResolvedModule, ResolvedModules, ResolveModulesOptions } from './types.ts';

/** The depmod files read from a tree, by name in the release directory. */
const META_FILES: Record<string, keyof DepmodFiles> = {
  'modules.dep': 'dep',
  'modules.alias': 'alias',
  'modules.softdep': 'softdep',
  'modules.builtin': 'builtin',
  'modules.builtin.modinfo': 'builtinModinfo',
};
const META_LIMIT = 64 * 1024 * 1024;
/** Default archive directory of the tree; see {@link ResolveModulesOptions.prefix}. */
export const DEFAULT_MODULES_PREFIX = 'usr/lib/modules';

/** A module file read from the source. */
export interface ModuleRead {
  /** Source path. */
  path: string;
  info: ModuleInfo;
  /** The bytes to store (decompressed unless kept), when held. */
  stored?: Uint8Array;
  storedSize: number;
  storedSha256: string;
}

/** What pass one learnt of one release's tree. */
interface TreeFiles {
  /** Module files (path in the release directory → size). */
  modules: Map<string, number>;
  /** The depmod files read. */
  meta: Partial<Record<keyof DepmodFiles, string | Uint8Array>>;
  /** Some depmod file exists (read or not). */
  indexed: boolean;
}

/** What a resolved set keeps for {@link moduleEntries}: its source and the bytes already read. */
export interface SetState {
  source: ModuleSource;
  stored: Map<string, Uint8Array>;
  signal?: AbortSignal;
}

/** @internal Per-set state, out of the public object. */
export const SET_STATE = new WeakMap<ResolvedModules, SetState>();

function splitTreePath(path: string): { release: string; rest: string } | undefined {
  const m = /^lib\/modules\/([^/]+)\/(.+)$/.exec(path);
  return m ? { release: m[1] as string, rest: m[2] as string } : undefined;
}

function mtimeOf(options: ResolveModulesOptions): number {
  const value = sourceDateEpoch(options.sourceDateEpoch) ?? 0;
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `sourceDateEpoch ${value} is not a time from 0 to 2^32-1 seconds`,
    );
  }
  return value;
}

function prefixOf(options: ResolveModulesOptions): string {
  const prefix = (options.prefix ?? DEFAULT_MODULES_PREFIX).replace(/^\/+|\/+$/g, '');
  if (prefix === '' || prefix.split('/').some((c) => c === '' || c === '.' || c === '..')) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `prefix "${options.prefix}" is not a relative directory path; give e.g. usr/lib/modules`,
    );
  }
  return prefix;
}

/** Read one module: decompress it, read its `.modinfo`, digest what will be stored. */
export async function readModule(
  file: ModuleSourceBody,
  keep: boolean,
  label: string,
  signal?: AbortSignal,
): Promise<{ info: ModuleInfo; stored: Uint8Array }> {
  const where = `${label}: ${file.path}`;
  const raw = await readAll(file.body, where, undefined, signal);
  const compression = moduleFileOf(file.path)?.compression ?? 'none';
  const plain = await unpackModule(raw, compression, where, signal);
  return { info: readModinfo(plain, where), stored: keep ? raw : plain };
}

/**
 * The names a list may end up loading, as far as can be told before the tree is known (the
 * words, preset members, transports): the modules to hold on to while a stream passes by.
 */
function likelyNames(words: readonly string[]): Set<string> {
  const out = new Set<string>(VIRTIO_TRANSPORTS);
  for (const word of words) {
    const preset = presetOf(word.trim());
    for (const name of preset ? preset.modules : [word.trim()]) out.add(normalizeModuleName(name));
  }
  return out;
}

/**
 * Resolves a module list against a source: finds the kernel release, reads the tree's indexes
 * (or each module's `.modinfo`), closes the list over its dependencies, orders it for loading,
 * and reads each chosen module's vermagic and digest. The bytes are packed later by
 * {@link moduleEntries}; a source read as a stream keeps the modules it met on the way in memory.
 *
 * @throws IrbError `IRB_KMOD_SOURCE_INVALID`, `IRB_KMOD_RELEASE_REQUIRED`,
 * `IRB_KMOD_RELEASE_NOT_FOUND`, `IRB_KMOD_INDEX_MISSING`, `IRB_KMOD_MODULE_UNKNOWN`,
 * `IRB_KMOD_FILE_MISSING`, `IRB_KMOD_DEPENDENCY_CYCLE`, `IRB_KMOD_RELEASE_MISMATCH`,
 * `IRB_KMOD_MODULE_INVALID`, `IRB_KMOD_COMPRESSION_UNSUPPORTED`, `IRB_OPTION_INVALID`.
 */
export async function resolveModules(
  source: ModuleSource,
  options: ResolveModulesOptions,
): Promise<ResolvedModules> {
  const { signal } = options;
  signal?.throwIfAborted();
  const words = options.modules.map((w) => w.trim()).filter((w) => w !== '');
  if (words.length === 0) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      'the module list is empty; name modules, aliases or presets (net, vsock, console, blk, fs)',
    );
  }
  const keep = options.compressed === 'keep';
  const mode = options.index ?? 'auto';
  const prefix = prefixOf(options);
  const mtime = mtimeOf(options);
  const label = source.label;
  // Sources without `read` are passed over once, so every module is read on the way.
  const readsAll = source.read === undefined || mode === 'modinfo';

  const releases = new Map<string, TreeFiles>();
  const configs = new Map<string, string>();
  const reads = new Map<string, ModuleRead>();
  const stored = new Map<string, Uint8Array>();
  const hold = likelyNames(words);
  const releaseOf = (release: string) => {
    let r = releases.get(release);
    if (!r) {
      r = { modules: new Map(), meta: {}, indexed: false };
      releases.set(release, r);
    }
    return r;
  };
  const wanted = (file: { path: string; size: number }): boolean => {
    if (file.path.startsWith('boot/config-'))
      return options.release === undefined || file.path === `boot/config-${options.release}`;
    const parts = splitTreePath(file.path);
    if (!parts) return false;
    const r = releaseOf(parts.release);
    const isMeta = Object.hasOwn(META_FILES, parts.rest);
    const isModule = moduleFileOf(parts.rest) !== undefined;
    if (isModule) r.modules.set(parts.rest, file.size);
    if (isMeta) r.indexed = true;
    if (options.release !== undefined && parts.release !== options.release) return false;
    return isMeta || (isModule && readsAll);
  };
  for await (const file of source.files(wanted, signal)) {
    signal?.throwIfAborted();
    if (file.path.startsWith('boot/config-')) {
      configs.set(
        file.path.slice('boot/config-'.length),
        new TextDecoder().decode(await readAll(file.body, file.path, META_LIMIT, signal)),
      );
      continue;
    }
    const parts = splitTreePath(file.path) as { release: string; rest: string };
    const metaKey = META_FILES[parts.rest];
    if (metaKey !== undefined && Object.hasOwn(META_FILES, parts.rest)) {
      const bytes = await readAll(file.body, `${label}: ${file.path}`, META_LIMIT, signal);
      releaseOf(parts.release).meta[metaKey] =
        metaKey === 'builtinModinfo' ? bytes : new TextDecoder().decode(bytes);
      continue;
    }
    const { info, stored: bytes } = await readModule(file, keep, label, signal);
    const name = moduleFileOf(parts.rest)?.name as string;
    const read: ModuleRead = { path: file.path, info, storedSize: bytes.length, storedSha256: sha256(bytes) };
    if (hold.has(name)) {
      stored.set(file.path, bytes);
      for (const dep of info.depends) hold.add(dep);
      for (const word of [...info.softdeps.pre, ...info.softdeps.post]) hold.add(normalizeModuleName(word));
    }
    reads.set(file.path, read);
  }

  const release = chooseRelease(releases, options.release, label);
  const tree = releases.get(release) as TreeFiles;
  const index = buildIndex(release, tree, reads, mode, readsAll, label);
  const request = resolveRequest(index, words, label);
  const closure = moduleClosure(index, request.roots, label, { softdeps: options.softdeps });

  const sourcePathOf = (name: string) =>
    `lib/modules/${release}/${(index.modules.get(name) as { path: string }).path}`;
  for (const name of closure.order) {
    const path = sourcePathOf(name);
    if (!tree.modules.has(path.slice(`lib/modules/${release}/`.length))) {
      throw new IrbError(
        'IRB_KMOD_FILE_MISSING',
        `${label}: modules.dep names ${path} (${name}), which the tree lacks; the tree is incomplete or modules.dep is stale — copy the whole tree or run depmod again`,
      );
    }
  }
  // A source opened by path reads just the chosen modules now.
  const missing = closure.order.map(sourcePathOf).filter((p) => !reads.has(p));
  if (missing.length > 0 && source.read) {
    for await (const file of source.read(missing, signal)) {
      const { info, stored: bytes } = await readModule(file, keep, label, signal);
      reads.set(file.path, { path: file.path, info, storedSize: bytes.length, storedSha256: sha256(bytes) });
      stored.set(file.path, bytes);
    }
  }

  // Every module of the set a module needs, directly or not: the same from modules.dep (which
  // lists them all) as from modinfo (which lists the direct ones).
  const position = new Map(closure.order.map((n, i) => [n, i]));
  const depsMemo = new Map<string, string[]>();
  const allDeps = (name: string): string[] => {
    const known = depsMemo.get(name);
    if (known) return [...known];
    const out = new Set<string>();
    for (const d of index.modules.get(name)?.deps ?? []) {
      if (!position.has(d)) continue;
      out.add(d);
      for (const dd of allDeps(d)) out.add(dd);
    }
    depsMemo.set(name, [...out]);
    return [...out];
  };
  const config = configs.get(release);
  const warnings: string[] = [];
  const modules: ResolvedModule[] = closure.order.map((name) => {
    const sourcePath = sourcePathOf(name);
    const read = reads.get(sourcePath);
    if (!read) {
      throw new IrbError(
        'IRB_KMOD_FILE_MISSING',
        `${label}: ${sourcePath} (${name}) could not be read; check the source`,
      );
    }
    const vermagic = read.info.vermagic;
    if (vermagic === undefined) {
      throw new IrbError(
        'IRB_KMOD_MODULE_INVALID',
        `${label}: ${sourcePath} has no vermagic, so no kernel loads it; take the module from the kernel's own package`,
      );
    }
    const moduleRelease = releaseOfVermagic(vermagic);
    if (moduleRelease !== release) {
      throw new IrbError(
        'IRB_KMOD_RELEASE_MISMATCH',
        `${label}: ${sourcePath} was built for ${moduleRelease}, not ${release}; the kernel refuses it — use the modules of ${release}`,
      );
    }
    const compression = keep ? (moduleFileOf(sourcePath)?.compression ?? 'none') : 'none';
    const rel = sourcePath.slice('lib/modules/'.length);
    const deps = allDeps(name).sort((a, b) => (position.get(a) as number) - (position.get(b) as number));
    return {
      name,
      reason: closure.reasons.get(name) ?? 'dependency',
      path: `${prefix}/${keep ? rel : plainModulePath(rel)}`,
      sourcePath,
      size: read.storedSize,
      compression,
      sha256: read.storedSha256,
      vermagic,
      release: moduleRelease,
      deps,
    };
  });
  if (keep) checkKernelDecompression(modules, config, release, label, warnings);

  const key = sha256(
    new TextEncoder().encode(
      JSON.stringify({
        format: 'irb-kmod-1',
        release,
        prefix,
        compressed: keep ? 'keep' : 'decompress',
        mtime,
        modules: modules.map((m) => [m.path, m.size, m.sha256]),
      }),
    ),
  );
  const set: ResolvedModules = {
    release,
    source: label,
    modules,
    loadList: modules.map((m) => `/${m.path}`),
    requests: request.requests,
    builtin: closure.builtin,
    missingSoftdeps: closure.missingSoftdeps,
    index: index.from,
    compressed: keep ? 'keep' : 'decompress',
    prefix,
    mtime,
    warnings,
    key,
  };
  const chosen = new Set(modules.map((m) => m.sourcePath));
  for (const path of stored.keys()) if (!chosen.has(path)) stored.delete(path);
  SET_STATE.set(set, { source, stored });
  return set;
}

function chooseRelease(
  releases: Map<string, TreeFiles>,
  wantedRelease: string | undefined,
  label: string,
): string {
  const present = [...releases.entries()]
    .filter(([, r]) => r.modules.size > 0 || r.indexed)
    .map(([name]) => name)
    .sort();
  if (wantedRelease !== undefined) {
    if (present.includes(wantedRelease)) return wantedRelease;
    throw new IrbError(
      present.length === 0 ? 'IRB_KMOD_SOURCE_INVALID' : 'IRB_KMOD_RELEASE_NOT_FOUND',
      present.length === 0
        ? `${label} holds no lib/modules/<release> tree; give a module directory, a kernel .deb or a tar that holds one`
        : `${label} has no modules of release ${wantedRelease}; it has ${present.join(', ')} — choose one of them`,
    );
  }
  if (present.length === 1) return present[0] as string;
  if (present.length === 0) {
    throw new IrbError(
      'IRB_KMOD_SOURCE_INVALID',
      `${label} holds no lib/modules/<release> tree; give a module directory, a kernel .deb or a tar that holds one`,
    );
  }
  throw new IrbError(
    'IRB_KMOD_RELEASE_REQUIRED',
    `${label} holds modules of several kernel releases (${present.join(', ')}); choose one with the release option`,
  );
}

function buildIndex(
  release: string,
  tree: TreeFiles,
  reads: Map<string, ModuleRead>,
  mode: 'auto' | 'modules.dep' | 'modinfo',
  readsAll: boolean,
  label: string,
): ModuleIndex {
  const { meta } = tree;
  const text = (v: string | Uint8Array | undefined) => (typeof v === 'string' ? v : undefined);
  const dep = text(meta.dep);
  if (mode !== 'modinfo' && dep !== undefined) {
    return indexFromDepmod(release, {
      dep,
      alias: text(meta.alias),
      softdep: text(meta.softdep),
      builtin: text(meta.builtin),
      builtinModinfo: meta.builtinModinfo instanceof Uint8Array ? meta.builtinModinfo : undefined,
    });
  }
  if (mode === 'modules.dep' || !readsAll) {
    throw new IrbError(
      'IRB_KMOD_INDEX_MISSING',
      `${label} has no modules.dep for ${release} (depmod did not run); run depmod -b <root> ${release} on it, give the kernel's .deb instead, or derive dependencies from each module with index: 'modinfo'`,
    );
  }
  const found = [...reads.values()]
    .filter((r) => r.path.startsWith(`lib/modules/${release}/`))
    .map((r) => ({ path: r.path.slice(`lib/modules/${release}/`.length), info: r.info }));
  return indexFromModinfo(
    release,
    found,
    text(meta.builtin),
    meta.builtinModinfo instanceof Uint8Array ? meta.builtinModinfo : undefined,
  );
}

/** `compressed: 'keep'` only where the kernel decompresses what is kept (kernel/module/decompress.c handles one algorithm). */
function checkKernelDecompression(
  modules: readonly ResolvedModule[],
  configText: string | undefined,
  release: string,
  label: string,
  warnings: string[],
): void {
  const kinds = [...new Set(modules.map((m) => m.compression).filter((c) => c !== 'none'))];
  if (kinds.length === 0) return;
  if (configText === undefined) {
    warnings.push(
      `kept ${kinds.join(', ')}-compressed modules without boot/config-${release} to confirm that the kernel decompresses them (CONFIG_MODULE_DECOMPRESS)`,
    );
    return;
  }
  const config = parseKernelConfig(configText);
  const option = {
    gzip: 'CONFIG_MODULE_COMPRESS_GZIP',
    xz: 'CONFIG_MODULE_COMPRESS_XZ',
    zstd: 'CONFIG_MODULE_COMPRESS_ZSTD',
  } as const;
  for (const kind of kinds) {
    const wantedOption = option[kind as keyof typeof option];
    if (config.get('CONFIG_MODULE_DECOMPRESS') !== 'y' || config.get(wantedOption) !== 'y') {
      throw new IrbError(
        'IRB_KMOD_COMPRESSION_UNSUPPORTED',
        `${label}: kernel ${release} cannot load ${kind}-compressed modules itself (it needs CONFIG_MODULE_DECOMPRESS=y and ${wantedOption}=y); store them decompressed (compressed: 'decompress', the default)`,
      );
    }
  }
}
