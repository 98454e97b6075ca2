import { createHash } from 'node:crypto';
import { open, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CpioEntry } from '@irb/cpio';
import { sourceDateEpoch } from '@irb/cpio/epoch';
import { IrbError } from '@irb/errors';
import type { ModuleSource, ModuleSourceBody, ResolvedModules } from '@irb/kmod';
import { type CacheLayout, cacheLayout, replaceFile } from '@irb/store';
import { fileIdentity, recordHolds, type SeenFile } from './file-identity.ts';
import { modulesRequested } from './run-options.ts';
import type { SourceOptions } from './source.ts';
import type { InitramfsBuilderOptions } from './types.ts';
import { BUILD_FORMAT_VERSION, irbBuilderVersion } from './version.ts';

/*
 * The kernel modules of a build (`kernelModules` + `modules`): where they come from — a
 * `/lib/modules/<release>` directory, a kernel `.deb` (or a tar of the tree), or an image — and
 * what @irb/kmod resolves them to. Resolving reads the tree's index and every module of the set
 * (a `.deb` is read whole: seconds of xz), so what a source resolved to is kept in the output
 * cache, `<key>.kmod`, and trusted while the source is unchanged:
 * - a directory or a file by the identity and times of every file the resolution read (and of
 *   the release directory), as `irb append` trusts an archive it has seen;
 * - an image by its platform manifest digest, which pins every byte of it.
 * With the record and the modules member (cached by the set's key) both there, a build reads
 * nothing of the source.
 */

/** Options that decide a build's module set. */
export type ModulesOptions = Pick<
  InitramfsBuilderOptions,
  'kernelModules' | 'modules' | 'sourceDateEpoch' | 'cacheDir' | 'cache' | 'signal'
>;

/** A build's resolved module set: what the modules member holds and the init loads. */
export interface BuildModules {
  /** @irb/kmod's key of the set (`sha256:…`): equal keys, byte-identical members. */
  key: string;
  release: string;
  /** Absolute guest paths in load order. */
  loadList: string[];
  /** Module names in load order. */
  names: string[];
  /** The source, as a label. */
  source: string;
  /** Notes that do not stop the build. */
  warnings: string[];
  /** The modules member's entries (reads the source again when the set came from the cache). */
  entries(signal?: AbortSignal): AsyncIterable<CpioEntry>;
  /** Releases an image source. */
  close(): Promise<void>;
}

/** What `kernelModules` names. */
type SourceSpec =
  | { kind: 'directory'; path: string }
  | { kind: 'deb' | 'tar'; path: string }
  | { kind: 'image'; ref: string };

const RECORD_HEADER = 'irb-kmod';
const LOOKS_LIKE_PATH = /^(\/|\.\.?\/|~)|\.(deb|tar|tar\.\w+|tgz)$/;

async function sourceSpec(spec: string): Promise<SourceSpec> {
  if (spec === '') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      '`kernelModules` is empty; give a /lib/modules/<release> directory, a kernel .deb or an image',
    );
  }
  if (/^(oci|docker-archive):/.test(spec)) return { kind: 'image', ref: spec };
  const st = await stat(spec).catch((error: NodeJS.ErrnoException) => error);
  if (st instanceof Error) {
    if (st.code !== 'ENOENT' || LOOKS_LIKE_PATH.test(spec)) {
      throw new IrbError(
        'IRB_KMOD_SOURCE_INVALID',
        `\`kernelModules\` ${spec} ${st.code === 'ENOENT' ? 'does not exist' : `cannot be read (${st.code})`}; give a /lib/modules/<release> directory, a kernel .deb or an image reference`,
      );
    }
    return { kind: 'image', ref: spec };
  }
  if (st.isDirectory()) return { kind: 'directory', path: await realpath(spec) };
  if (!st.isFile()) {
    throw new IrbError(
      'IRB_KMOD_SOURCE_INVALID',
      `\`kernelModules\` ${spec} is neither a directory nor a file; give a /lib/modules/<release> directory or a kernel .deb`,
    );
  }
  const head = new Uint8Array(8);
  const handle = await open(spec, 'r');
  try {
    await handle.read(head, 0, 8, 0);
  } finally {
    await handle.close();
  }
  const kind = new TextDecoder().decode(head) === '!<arch>\n' ? 'deb' : 'tar';
  return { kind, path: await realpath(spec) };
}

/** An identity-checked host file read while resolving. */
interface SeenHostFile extends SeenFile {
  path: string;
}

/** What `<key>.kmod` holds. */
interface ModulesRecord {
  v: 1;
  set: ResolvedModules;
  /** Host files whose unchanged identity vouches for the set (directory and file sources). */
  files?: SeenHostFile[];
}

function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

async function readRecord(path: string): Promise<ModulesRecord | undefined> {
  try {
    const text = await readFile(path, 'utf8');
    const newline = text.indexOf('\n');
    const [header, digest] = text.slice(0, newline).split(' ');
    const body = text.slice(newline + 1);
    if (header !== RECORD_HEADER || digest !== sha256(body)) return undefined;
    const record = JSON.parse(body) as ModulesRecord;
    return record.v === 1 && typeof record.set?.key === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

async function writeRecord(layout: CacheLayout, path: string, record: ModulesRecord): Promise<void> {
  const body = JSON.stringify(record);
  const bytes = new TextEncoder().encode(`${RECORD_HEADER} ${sha256(body)}\n${body}`);
  // Best effort: without a record the next build resolves again.
  await replaceFile(path, bytes, { tempDir: layout.tmp }).catch(() => {});
}

/** Whether every recorded host file is still the one the set was resolved from. */
async function recordValid(record: ModulesRecord): Promise<boolean> {
  for (const file of record.files ?? []) {
    const st = await stat(file.path, { bigint: true }).catch(() => undefined);
    if (!st || !recordHolds(file, st)) return false;
  }
  return true;
}

/** A source that notes the canonical path of every file it hands out with its body. */
function observed(source: ModuleSource, seen: Set<string>): ModuleSource {
  const note = async function* (files: AsyncIterable<ModuleSourceBody>) {
    for await (const file of files) {
      seen.add(file.path);
      yield file;
    }
  };
  const read = source.read?.bind(source);
  return {
    label: source.label,
    files: (wanted, signal) => note(source.files(wanted, signal)),
    ...(read ? { read: (paths: readonly string[], signal?: AbortSignal) => note(read(paths, signal)) } : {}),
  };
}

/**
 * The host file of a directory source's canonical path (`lib/modules/<release>/…`, `boot/…`):
 * `dir` is the release directory, a root, or a `lib/modules` directory.
 */
async function hostFileOf(dir: string, path: string, release: string): Promise<string | undefined> {
  const inRelease = path.startsWith(`lib/modules/${release}/`)
    ? path.slice(`lib/modules/${release}/`.length)
    : undefined;
  const candidates = [
    ...(inRelease !== undefined ? [join(dir, inRelease), join(dir, release, inRelease)] : []),
    join(dir, path),
    join(dir, 'usr', path),
    // A release directory's kernel config: <root>/boot, beside lib/modules or usr/lib/modules.
    join(dirname(dirname(dirname(dir))), path),
    join(dirname(dirname(dirname(dirname(dir)))), path),
  ];
  for (const candidate of candidates) {
    if ((await stat(candidate).catch(() => undefined))?.isFile()) return candidate;
  }
  return undefined;
}

/** Identities of the host files a resolution read (and their directories), or `undefined` when one cannot be found. */
async function seenFiles(paths: readonly string[]): Promise<SeenHostFile[] | undefined> {
  const all = new Set<string>();
  for (const path of paths) {
    all.add(path);
    // A file added to or removed from the release directory (a new modules.softdep) moves its times.
    all.add(dirname(path));
  }
  const out: SeenHostFile[] = [];
  for (const path of [...all].sort()) {
    const st = await stat(path, { bigint: true }).catch(() => undefined);
    if (!st) return undefined;
    out.push({ path, ...fileIdentity(st), seenAtMs: Date.now() });
  }
  return out;
}

/**
 * Resolves a build's `kernelModules` and `modules` into the set the modules member holds, from
 * the output cache when the source is unchanged. `undefined` when the build asks for no modules.
 *
 * @throws IrbError `IRB_OPTION_INVALID` (one without the other), `IRB_KMOD_SOURCE_INVALID` (a
 *   source that is none of the kinds) and every `IRB_KMOD_…` error of @irb/kmod (an unknown
 *   name with the nearest ones, a tree without modules.dep, …).
 */
export async function resolveBuildModules(
  o: ModulesOptions,
  sourceOptions: () => SourceOptions,
): Promise<BuildModules | undefined> {
  if (!modulesRequested(o)) return undefined;
  const kmod = await import('@irb/kmod');
  const signal = o.signal;
  const spec = await sourceSpec(o.kernelModules as string);
  const layout = o.cache !== false ? cacheLayout(o.cacheDir) : undefined;
  const options = {
    modules: [...(o.modules ?? [])],
    ...(o.sourceDateEpoch !== undefined ? { sourceDateEpoch: o.sourceDateEpoch } : {}),
    ...(signal ? { signal } : {}),
  };
  const words = [...new Set(options.modules.map((m) => m.trim()).filter((m) => m !== ''))].sort();
  const mtime = sourceDateEpoch(o.sourceDateEpoch) ?? 0;
  let image: Awaited<ReturnType<typeof import('./image-modules.ts').openImageModules>> | undefined;
  try {
    let identity: string;
    if (spec.kind === 'image') {
      const { openImageModules } = await import('./image-modules.ts');
      image = await openImageModules(spec.ref, sourceOptions(), layout);
      identity = `image ${image.manifestDigest}`;
    } else identity = `${spec.kind} ${spec.path}`;
    const recordPath =
      layout &&
      join(
        layout.output,
        `${sha256(
          JSON.stringify({
            format: BUILD_FORMAT_VERSION,
            irb: irbBuilderVersion(),
            source: identity,
            modules: words,
            mtime,
            prefix: kmod.DEFAULT_MODULES_PREFIX,
          }),
        )}.kmod`,
      );
    const open = async (): Promise<ModuleSource> => {
      if (spec.kind === 'image') {
        if (!image) throw new Error('unreachable: the image is open');
        return image.source();
      }
      if (spec.kind === 'directory') return kmod.directoryModuleSource(spec.path);
      if (spec.kind === 'deb') return kmod.debModuleSource(spec.path);
      const { createReadStream } = await import('node:fs');
      const path = spec.path;
      return kmod.tarModuleSource({ label: path, open: () => createReadStream(path) });
    };
    const resolveFresh = async (): Promise<{ set: ResolvedModules; files?: SeenHostFile[] }> => {
      const seen = new Set<string>();
      const source = await open();
      const set = await kmod.resolveModules(
        spec.kind === 'directory' ? observed(source, seen) : source,
        options,
      );
      if (spec.kind === 'image') return { set };
      if (spec.kind !== 'directory') {
        const files = await seenFiles([spec.path]);
        return files ? { set, files } : { set };
      }
      const hosts: string[] = [];
      for (const path of seen) {
        const host = await hostFileOf(spec.path, path, set.release);
        if (host === undefined) return { set };
        hosts.push(host);
      }
      const files = await seenFiles(hosts);
      return files ? { set, files } : { set };
    };

    const cached = recordPath ? await readRecord(recordPath) : undefined;
    let set: ResolvedModules;
    let fresh: ResolvedModules | undefined;
    if (cached && (await recordValid(cached))) set = cached.set;
    else {
      const resolved = await resolveFresh();
      set = fresh = resolved.set;
      if (layout && recordPath && (spec.kind === 'image' || resolved.files)) {
        await writeRecord(layout, recordPath, {
          v: 1,
          set,
          ...(resolved.files ? { files: resolved.files } : {}),
        });
      }
    }
    const label = spec.kind === 'image' ? spec.ref : spec.path;
    return {
      key: set.key,
      release: set.release,
      loadList: [...set.loadList],
      names: set.modules.map((m) => m.name),
      source: label,
      warnings: [...set.warnings],
      entries: async function* (entrySignal) {
        // A set from the cache has no source state: resolve it again, and it must be the same set.
        let packed = fresh;
        if (!packed) {
          packed = (await resolveFresh()).set;
          if (packed.key !== set.key) {
            throw new IrbError(
              'IRB_KMOD_SOURCE_CHANGED',
              `the kernel modules of ${label} changed since they were resolved; run the build again`,
            );
          }
        }
        yield* kmod.moduleEntries(packed, entrySignal ? { signal: entrySignal } : {});
      },
      close: async () => {
        await image?.close();
      },
    };
  } catch (error) {
    await image?.close();
    throw error;
  }
}
