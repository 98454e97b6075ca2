import type { ModuleReason, ResolvedRequest } from './closure.ts';
import type { ModuleCompression } from './names.ts';

/** Options of {@link resolveModules}. */
export interface ResolveModulesOptions {
  /**
   * What to load: module names (`virtio_net`, `virtio-net`), aliases from modules.alias
   * (`fs-overlay`, `virtio:d00000001v*`, or a modalias such as `virtio:d00000001v00001AF4`) and
   * presets (`net`, `vsock`, `console`, `blk`, `fs`; see {@link MODULE_PRESETS}). A builtin
   * module is accepted and needs nothing.
   */
  modules: readonly string[];
  /** The kernel release (`lib/modules/<release>`). Required only when the source holds several. */
  release?: string;
  /**
   * `decompress` (default): `.ko.gz`, `.ko.xz` and `.ko.zst` are stored decompressed as `.ko`,
   * which every kernel loads. `keep`: stored as they are, for kernels that decompress modules
   * themselves (`CONFIG_MODULE_DECOMPRESS`, with the matching `CONFIG_MODULE_COMPRESS_*`; the
   * loader must pass `MODULE_INIT_COMPRESSED_FILE` to `finit_module`). Refused when the source's
   * `boot/config-<release>` says the kernel cannot.
   */
  compressed?: 'decompress' | 'keep';
  /**
   * Where dependencies come from. `auto` (default): the tree's modules.dep; without one, each
   * module's `.modinfo` for sources read whole anyway (a `.deb`, a tar), an error for a directory.
   * `modules.dep` requires it; `modinfo` always derives them (for a directory: reads every module).
   */
  index?: 'auto' | 'modules.dep' | 'modinfo';
  /** Follow soft dependencies (modules.softdep, `softdep=`). Default true. */
  softdeps?: boolean;
  /**
   * Directory of the module tree in the archive. Default `usr/lib/modules`: a later member's
   * `lib` directory would replace a merged-/usr image's `lib -> usr/lib` symlink (the kernel
   * removes an entry of another type), while `usr/lib` is a directory in every image.
   */
  prefix?: string;
  /** mtime of every entry (seconds). Default `$SOURCE_DATE_EPOCH`, else 0. */
  sourceDateEpoch?: number;
  signal?: AbortSignal;
}

/** One module of a resolved set. */
export interface ResolvedModule {
  /** Module name, normalized (`virtio_net`). */
  name: string;
  /** Why it is in the set. */
  reason: ModuleReason;
  /** Its path in the archive (`usr/lib/modules/<release>/kernel/drivers/net/virtio_net.ko`). */
  path: string;
  /** Its path in the source (`lib/modules/<release>/kernel/drivers/net/virtio_net.ko.xz`). */
  sourcePath: string;
  /** Bytes stored in the archive. */
  size: number;
  /** How it is stored: `none` unless `compressed: 'keep'` kept a compressed file. */
  compression: ModuleCompression;
  /** `sha256:<hex>` of the stored bytes. */
  sha256: string;
  /** Its `vermagic` (`6.1.0-57-amd64 SMP preempt mod_unload modversions `). */
  vermagic: string;
  /** The kernel release its vermagic names (the first word). */
  release: string;
  /** Every module of the set it needs, directly or through others, in load order. */
  deps: string[];
}

/** A resolved module set: what to pack and in which order to load it. */
export interface ResolvedModules {
  /** The kernel release. */
  release: string;
  /** The source's label. */
  source: string;
  /** The modules in load order: each after every module it needs. */
  modules: ResolvedModule[];
  /** Absolute guest paths in load order, for the init to pass to `finit_module`. */
  loadList: string[];
  /** What each word of the list became. */
  requests: ResolvedRequest[];
  /** Builtin modules asked for or depended on: nothing to load. */
  builtin: string[];
  /** Soft dependencies this kernel has in no form: skipped, as modprobe skips them. */
  missingSoftdeps: string[];
  /** Where the dependencies came from. */
  index: 'modules.dep' | 'modinfo';
  /** The storage choice. */
  compressed: 'decompress' | 'keep';
  /** The archive directory of the tree (`usr/lib/modules`). */
  prefix: string;
  /** mtime of every entry. */
  mtime: number;
  /** Things to know that do not stop the build (a compressed module kept without a kernel config to check). */
  warnings: string[];
  /**
   * `sha256:<hex>` of everything the member's bytes depend on: release, prefix, storage, mtime,
   * and each module's path, size and content digest in load order. Equal keys, equal bytes.
   */
  key: string;
}
