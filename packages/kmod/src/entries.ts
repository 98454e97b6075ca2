import type { CpioEntry } from '@irb/cpio';
import { IrbError } from '@irb/errors';
import { sha256 } from './bytes.ts';
import { readModule, SET_STATE } from './resolve.ts';
import type { ResolvedModules } from './types.ts';

/** Options of {@link moduleEntries}. */
export interface ModuleEntriesOptions {
  signal?: AbortSignal;
}

/**
 * The stored bytes of every module of the set: those kept since resolving, the others read
 * again from the source (by path, or in one pass that stops at the last one) and checked
 * against the digests resolving took.
 */
async function storedBodies(set: ResolvedModules, signal?: AbortSignal): Promise<Map<string, Uint8Array>> {
  const state = SET_STATE.get(set);
  if (!state) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      'moduleEntries needs a set made by resolveModules in this process; resolve it again',
    );
  }
  const { source, stored } = state;
  const bySource = new Map(set.modules.map((m) => [m.sourcePath, m]));
  const missing = new Set([...bySource.keys()].filter((p) => !stored.has(p)));
  if (missing.size > 0) {
    const files = source.read
      ? source.read([...missing], signal)
      : source.files((f) => missing.has(f.path), signal);
    for await (const file of files) {
      if (!missing.has(file.path)) continue;
      const module = bySource.get(file.path);
      if (!module) continue;
      const { stored: bytes } = await readModule(file, set.compressed === 'keep', source.label, signal);
      if (bytes.length !== module.size || sha256(bytes) !== module.sha256) {
        throw new IrbError(
          'IRB_KMOD_SOURCE_CHANGED',
          `${source.label}: ${file.path} changed since the module set was resolved; resolve it again`,
        );
      }
      stored.set(file.path, bytes);
      missing.delete(file.path);
      if (missing.size === 0) break;
    }
  }
  if (missing.size > 0) {
    throw new IrbError(
      'IRB_KMOD_FILE_MISSING',
      `${source.label}: ${[...missing].sort().join(', ')} disappeared since the module set was resolved; check the source`,
    );
  }
  return stored;
}

/**
 * The modules member of an initramfs as CPIO entries: the directories from the prefix down
 * (parents first: the kernel does not create missing ones), then every module, in byte order
 * of their paths; directories 0755, modules 0644, owner root, mtime the set's. Pass them to
 * `packCpio` of `@irb/cpio`: the same set gives the same bytes (and the same `key`).
 *
 * @throws IrbError `IRB_KMOD_SOURCE_CHANGED` or `IRB_KMOD_FILE_MISSING` when a module read again differs or is gone.
 */
export async function* moduleEntries(
  set: ResolvedModules,
  options: ModuleEntriesOptions = {},
): AsyncGenerator<CpioEntry> {
  const { signal } = options;
  signal?.throwIfAborted();
  const bodies = await storedBodies(set, signal);
  const directories = new Set<string>();
  for (const module of set.modules) {
    const parts = module.path.split('/');
    for (let i = 1; i < parts.length; i++) directories.add(parts.slice(0, i).join('/'));
  }
  const paths: { path: string; sourcePath?: string }[] = [
    ...[...directories].map((path) => ({ path })),
    ...set.modules.map((m) => ({ path: m.path, sourcePath: m.sourcePath })),
  ];
  // Byte order puts every directory before what it holds ("a" < "a/…").
  paths.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const mtime = set.mtime;
  for (const { path, sourcePath } of paths) {
    signal?.throwIfAborted();
    if (sourcePath === undefined) {
      yield { type: 'directory', path, mode: 0o755, uid: 0, gid: 0, mtime };
      continue;
    }
    const body = bodies.get(sourcePath) as Uint8Array;
    yield { type: 'file', path, mode: 0o644, uid: 0, gid: 0, mtime, size: body.length, body };
  }
}
