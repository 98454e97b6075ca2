/**
 * A regular file of a module source, named by its path in a root filesystem: the module tree
 * is `lib/modules/<release>/…` (a source that keeps it in `usr/lib/modules` names it
 * `lib/modules` too), the kernel's config `boot/config-<release>`. No leading `/` or `./`.
 */
export interface ModuleSourceFile {
  /** Path in the root filesystem, e.g. `lib/modules/6.1.0-57-amd64/kernel/drivers/net/virtio_net.ko`. */
  path: string;
  /** Size in bytes, as stored (a `.ko.xz` counts its compressed bytes). */
  size: number;
}

/** A file of a module source with its content, to be read before the source moves on. */
export interface ModuleSourceBody extends ModuleSourceFile {
  /** The content, `size` bytes. Read it (or drop it) before asking for the next file. */
  body: AsyncIterable<Uint8Array>;
}

/**
 * Where kernel modules come from: a directory, a kernel `.deb`, a tar stream (LinuxKit's
 * `kernel.tar`, a layer), or an image's root filesystem. A source only lists and reads files;
 * everything about modules is worked out from them.
 *
 * Implement `files`; implement `read` as well when the source can open a file by its path
 * without passing over all the others (a directory can, a tar stream cannot).
 */
export interface ModuleSource {
  /** Names the source in messages: a path, a file name, an image reference. */
  readonly label: string;
  /**
   * One pass over the source's regular files below `lib/modules/` and `boot/` (others may be
   * offered too and are ignored), in the source's own order. `wanted` is asked for each file;
   * the content of the files it accepts comes with them. A second call makes a second pass;
   * a consumer that stops iterating ends the pass early.
   */
  files(wanted: (file: ModuleSourceFile) => boolean, signal?: AbortSignal): AsyncIterable<ModuleSourceBody>;
  /** The files at `paths`, in any order; a path the source lacks is left out. */
  read?(paths: readonly string[], signal?: AbortSignal): AsyncIterable<ModuleSourceBody>;
}

/** A source path in the canonical form: no `./` or `/` in front, `usr/lib/modules` as `lib/modules`. */
export function canonicalSourcePath(path: string): string {
  let p = path;
  while (p.startsWith('./')) p = p.slice(2);
  while (p.startsWith('/')) p = p.slice(1);
  if (p.startsWith('usr/lib/modules/')) p = p.slice(4);
  return p;
}
