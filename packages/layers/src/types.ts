import type { CpioPath } from '@irb/cpio';

/**
 * One layer blob. Structurally the `Layer` of `@irb/registry`, so registry, OCI-layout and
 * docker-archive layers pass straight in; anything else that can open the blob works too.
 */
export interface LayerSource {
  /** Digest of the blob as stored; names the layer in messages. */
  readonly digest: string;
  /** Digest of the uncompressed tar, when known (informational). */
  readonly diffId?: string;
  /** Media type; tells gzip/zstd/plain when it names one, else the first bytes decide. */
  readonly mediaType: string;
  /** Size of the blob in bytes (informational, for progress). */
  readonly size: number;
  /** A NEW stream of the blob's bytes (compressed as stored) on every call. */
  open(options?: { signal?: AbortSignal }): AsyncIterable<Uint8Array>;
}

/** Progress of {@link indexLayers} and {@link Rootfs.entries}. */
export interface LayersProgress {
  /** `index` while reading headers, `emit` while streaming bodies out of a layer. */
  phase: 'index' | 'emit';
  /** Position of the layer, base layer = 0. */
  layer: number;
  /** Number of layers. */
  layers: number;
  digest: string;
  /** Tar members of this layer read so far. */
  entries: number;
  /** True on the last event of this layer in this phase. */
  done: boolean;
}

/** Options of {@link indexLayers}. */
export interface IndexLayersOptions {
  /**
   * Globs of paths to leave out, anchored at the root, with or without a leading `/`:
   * `*` and `?` stay inside one component, `**` spans any number. Excluding a directory
   * excludes everything below it. Default: none.
   */
  exclude?: readonly string[];
  /**
   * Decides, after the layers and `exclude`, which paths stay: called for every path, deepest
   * first; `false` removes it. A directory stays while anything below it stays, whatever the
   * filter says of it. For slimming presets and keeping only what a traced run used. Default: all stay.
   */
  keep?: (entry: PathFilterEntry) => boolean;
  /** Aborts reading; the pending promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * SOURCE_DATE_EPOCH: mtimes later than this (seconds) are lowered to it, and injected or
   * synthesized entries get it. Default: mtimes as in the layers, synthesized entries 0.
   */
  sourceDateEpoch?: number;
  /** Called as layers are read (and later streamed by `entries()`). */
  onProgress?: (event: LayersProgress) => void;
  /**
   * How many layers are decompressed and parsed at once while indexing. Records are still
   * applied in layer order, so the result does not depend on it. Default
   * `os.availableParallelism()`.
   */
  concurrency?: number;
  /**
   * Where the parsed headers of each layer are kept between builds (see
   * `createDirectoryIndexCache`). A layer found there is not opened in the index pass. Only
   * use it for layers whose blobs are verified against their digest (registry, OCI layout and
   * docker-archive sources are). Default: none.
   */
  indexCache?: IndexCache;
  /**
   * Where the file bodies of each layer this pass decompresses may be kept, so that
   * `entries()` and `readFile()` read them back instead of decompressing the layer blob again:
   * returns a new path (that does not exist yet) for the layer, in a directory on a local file
   * system with room for the layers' uncompressed file contents. The file is unlinked as soon as
   * it is open, so nothing is left behind by an error, an abort or a killed process, and each
   * layer's file is released once `entries()` streamed its bodies, or by {@link Rootfs.close}.
   * A spool that cannot be created or written (disk full) is dropped: that layer is read from its
   * blob again, as without this option. Default: none (`entries()` decompresses every layer again).
   */
  spoolPath?: (layer: LayerSource, index: number) => string;
  /**
   * Tar members (all layers together) the index pass reads at most, so the index of a huge image
   * fails in one line (`IRB_LAYER_TOO_MANY_ENTRIES`) instead of exhausting memory; the pass also
   * stops that way when the V8 heap is nearly full, whatever this says. Default 8 000 000.
   */
  maxEntries?: number;
  /**
   * Bytes of file content (each inode once, sparse files at their full size) the image may unpack
   * to, counted as the layers are applied: a layer that takes the total over it fails at once
   * with `IRB_LAYER_UNPACKED_TOO_LARGE`. `Infinity` turns the check off. Default 64 GiB.
   */
  maxUnpackedBytes?: number;
}

/**
 * Storage for the header records of layers, by key (layer digest, media type and format
 * version). What `get` returns is validated before use; anything malformed counts as a miss.
 * A failing `set` is ignored: the cache only saves work.
 */
export interface IndexCache {
  /** The bytes stored under `key`, or `undefined`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores `bytes` under `key`, replacing what was there. */
  set(key: string, bytes: Uint8Array): Promise<void>;
}

/** Kinds of node in the root filesystem. */
export type RootfsNodeType = 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo';

/** What {@link Rootfs.lookup} tells about a path after all layers and injections. */
export interface RootfsNodeInfo {
  type: RootfsNodeType;
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, after clamping. */
  mtime: number;
  /** File size in bytes (0 for everything but files). */
  size: number;
  /** Symlink target, as stored. */
  target?: CpioPath;
  /** Device numbers of char/block devices. */
  rdevMajor?: number;
  rdevMinor?: number;
  /** Names of this inode (hard links); 1 for everything but hard-linked files. */
  nlink: number;
  /** Where the node sits, parent symlinks resolved (no leading `/`; `.` is the root). */
  path: CpioPath;
  /** Extended attributes the layers carried for it (they cannot be stored in newc). */
  xattrs: string[];
}

/** Contents of an injected file: bytes in memory, or a host file streamed at emit time. */
export type InjectSource = { bytes: Uint8Array } | { hostPath: string };

/** Metadata of an injected file. */
export interface InjectOptions {
  /** Permission bits. Default 0o755. */
  mode?: number;
  /** Default 0. */
  uid?: number;
  /** Default 0. */
  gid?: number;
  /** Seconds since the epoch. Default `sourceDateEpoch`, else 0. */
  mtime?: number;
}

/** What the {@link IndexLayersOptions.keep} filter sees of a path. */
export interface PathFilterEntry {
  /** Absolute path as text (bytes that are not UTF-8 shown as U+FFFD: use `bytes` to compare exactly). */
  path: string;
  /** The path's exact bytes, without the leading `/`. */
  bytes: Uint8Array;
  type: 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo';
}

/** Counts describing the root filesystem as it will be emitted. */
export interface RootfsStats {
  /** Archive records `entries()` will produce: every path, hard-link names included, and the root. */
  entries: number;
  /** Regular files, counted once per inode. */
  files: number;
  /** Directories, including the root and synthesized parents. */
  directories: number;
  /** Extra names of hard-linked files (a file with 3 names adds 2). */
  hardlinks: number;
  /** Paths removed by `exclude` globs (a directory counts with everything that was below it). */
  excluded: number;
  /** Paths removed by the `keep` filter. */
  filtered: number;
  /** Total file body bytes, each inode once. */
  uncompressedBytes: number;
  /** Paths that carried extended attributes, which a newc archive cannot hold. */
  lostXattrs: Array<{ path: string; keys: string[] }>;
  /** Tar names and hard-link targets whose `..` tried to leave the root and were clamped. */
  clampedPaths: number;
  /** Entries whose mtime was lowered to `sourceDateEpoch` or into the 0 … 2^32-1 range. */
  clampedMtimes: number;
}
