import { createReadStream, type Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { IrbError } from '@irb/errors';
import type { ModuleSource, ModuleSourceBody, ModuleSourceFile } from './source.ts';

/** Where a directory source's canonical paths live on the host. */
interface Mount {
  /** Canonical prefix, e.g. `lib/modules/6.1.0-57-amd64`, or `boot` for configs. */
  prefix: string;
  host: string;
  /** Only these names at the top (for `boot`: `config-*`). */
  only?: (name: string) => boolean;
}

async function kindOf(path: string): Promise<'file' | 'directory' | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : undefined;
  } catch {
    return undefined;
  }
}

async function subdirectories(path: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(path, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries)
    if (e.isDirectory() || (e.isSymbolicLink() && (await kindOf(join(path, e.name))) === 'directory'))
      out.push(e.name);
  return out.sort();
}

/** True when `path` is itself a `lib/modules/<release>` directory. */
async function isReleaseDirectory(path: string): Promise<boolean> {
  for (const name of ['modules.dep', 'modules.order', 'modules.builtin']) {
    if ((await kindOf(join(path, name))) === 'file') return true;
  }
  return (await kindOf(join(path, 'kernel'))) === 'directory';
}

async function mountsOf(dir: string): Promise<Mount[]> {
  const kind = await kindOf(dir);
  if (kind !== 'directory') {
    throw new IrbError(
      'IRB_KMOD_SOURCE_INVALID',
      `${dir} ${kind === undefined ? 'does not exist' : 'is not a directory'}; give a /lib/modules/<release> directory, a root that holds lib/modules, a kernel .deb or a tar of the tree`,
    );
  }
  const releasesUnder = async (modules: string): Promise<Mount[]> => {
    const out: Mount[] = [];
    for (const release of await subdirectories(modules)) {
      if (await isReleaseDirectory(join(modules, release))) {
        out.push({ prefix: `lib/modules/${release}`, host: join(modules, release) });
      }
    }
    return out;
  };
  const boot = (root: string): Mount => ({
    prefix: 'boot',
    host: join(root, 'boot'),
    only: (n) => n.startsWith('config-'),
  });
  if (await isReleaseDirectory(dir)) {
    const release = basename(dir);
    const mounts: Mount[] = [{ prefix: `lib/modules/${release}`, host: dir }];
    // The kernel's config sits beside the tree in a root filesystem (/boot/config-<release>).
    const parent = dirname(dir);
    if (basename(parent) === 'modules' && basename(dirname(parent)) === 'lib') {
      const lib = dirname(parent);
      const root = basename(dirname(lib)) === 'usr' ? dirname(dirname(lib)) : dirname(lib);
      mounts.push({ ...boot(root), only: (n) => n === `config-${release}` });
    }
    return mounts;
  }
  for (const modules of [join(dir, 'lib', 'modules'), join(dir, 'usr', 'lib', 'modules')]) {
    const found = await releasesUnder(modules);
    if (found.length > 0) return [...found, boot(dir)];
  }
  if (basename(dir) === 'modules') {
    const found = await releasesUnder(dir);
    if (found.length > 0) return found;
  }
  throw new IrbError(
    'IRB_KMOD_SOURCE_INVALID',
    `${dir} holds no kernel module tree (no lib/modules/<release> with modules or modules.dep); give /lib/modules/<release>, a root that holds lib/modules, a kernel .deb or a tar of the tree`,
  );
}

/** Regular files below `host` (symlinks to files followed, symlinked directories such as `build` not), sorted by name. */
async function* walk(
  host: string,
  prefix: string,
  only?: (name: string) => boolean,
): AsyncGenerator<ModuleSourceFile & { host: string }> {
  let entries: Dirent[];
  try {
    entries = await readdir(host, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new IrbError(
      'IRB_KMOD_SOURCE_INVALID',
      `${host} cannot be read (${(error as NodeJS.ErrnoException).code}); check its permissions`,
      {
        cause: error,
      },
    );
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (only && !only(e.name)) continue;
    const path = join(host, e.name);
    if (e.isDirectory()) yield* walk(path, `${prefix}/${e.name}`);
    else if (e.isFile() || e.isSymbolicLink()) {
      const st = await stat(path).catch(() => undefined);
      if (st?.isFile()) yield { path: `${prefix}/${e.name}`, size: st.size, host: path };
    }
  }
}

/**
 * A module source on disk. `dir` is a `lib/modules/<release>` directory (its kernel config is
 * taken from `<root>/boot/config-<release>` when the tree sits in a root filesystem), a root
 * that holds `lib/modules` (or `usr/lib/modules`) and `boot`, or a `lib/modules` directory.
 * Files are opened by path (it has `read`), so only what is needed is read.
 *
 * @throws IrbError `IRB_KMOD_SOURCE_INVALID` (when first used) if `dir` holds no module tree.
 */
export function directoryModuleSource(dir: string): ModuleSource {
  const root = resolve(dir);
  let mounts: Promise<Mount[]> | undefined;
  const getMounts = () => {
    mounts ??= mountsOf(root);
    return mounts;
  };
  const body = (file: ModuleSourceFile & { host: string }): ModuleSourceBody => ({
    path: file.path,
    size: file.size,
    body: createReadStream(file.host),
  });
  return {
    label: root,
    async *files(wanted, signal) {
      for (const mount of await getMounts()) {
        for await (const file of walk(mount.host, mount.prefix, mount.only)) {
          signal?.throwIfAborted();
          if (wanted({ path: file.path, size: file.size })) yield body(file);
        }
      }
    },
    async *read(paths, signal) {
      const all = await getMounts();
      for (const path of paths) {
        signal?.throwIfAborted();
        const mount = all.find((m) => path.startsWith(`${m.prefix}/`));
        if (!mount) continue;
        const host = join(mount.host, path.slice(mount.prefix.length + 1));
        const st = await stat(host).catch(() => undefined);
        if (st?.isFile()) yield body({ path, size: st.size, host });
      }
    },
  };
}
