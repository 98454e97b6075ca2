import type { CompressionFormat } from '@irb/compress';
import type { Keychain } from '@irb/registry';
import type { SlimPreset } from './slim.ts';

/** Compression of the archive: `gzip`, `zstd`, `lz4` (the kernel's legacy format) or `none`. */
export type InitramfsCompression = CompressionFormat;

/** Options of {@link InitramfsBuilder}. Only `image` is required. */
export interface InitramfsBuilderOptions {
  /** A registry reference (`alpine`, `host:5000/app:1`, `name@sha256:…`), `oci:DIR[:TAG]` or `docker-archive:FILE`. */
  image: string;
  /** `os/arch[/variant]` of a multi-platform image. Default `linux/amd64`. */
  platform?: string;
  /** Default `gzip`. */
  compression?: InitramfsCompression;
  /** gzip 1–9 (default 6), zstd 1–19 (default 3); lz4 has one level (1). */
  level?: number;
  /** Compression threads. Default: all cores. The output does not depend on it. */
  threads?: number;
  /** Globs of paths to leave out, anchored at the root (`*`, `**`, `?`). */
  exclude?: readonly string[];
  /**
   * Host files or directories to add, as `SRC:DEST` (files 0755, parents created), in the
   * overlay member: DEST is resolved through the image's symlinks, a file replaces a file or
   * symlink of the image but not a directory (refused).
   */
  inject?: readonly string[];
  /** A host file to use as `/init` instead of the generated one. */
  init?: string;
  /** Replace an `/init` the image already has. Default `false`: such an image is refused unless `init` or `keepImageInit` is given. */
  replaceImageInit?: boolean;
  /** Boot the image's own `/init`: generate none. Default `false`. */
  keepImageInit?: boolean;
  /**
   * How the generated `/init` ends the VM after the program exits. Default `poweroff`; use
   * `reboot` for Firecracker (x86), which ends a VM on reboot but not on power-off.
   */
  exitAction?: 'poweroff' | 'reboot';
  /**
   * Which generated `/init`: `static` is irb's own small static program (x86_64 and aarch64; the
   * image needs no shell, no mount, no user-switch tool), `sh` a POSIX shell script run by the
   * image's /bin/sh. Default `auto`: static where irb has the binary for the image's architecture,
   * sh elsewhere.
   */
  initKind?: 'auto' | 'static' | 'sh';
  /**
   * Build a tracing archive: irb's static init lists, after the program exits, every path of the
   * root filesystem it used (see `traceImage`). `{ stopAfterSeconds }` stops the program after
   * that long first (for servers). Needs the static init. Default `false`.
   */
  trace?: boolean | { stopAfterSeconds: number };
  /**
   * Build even when the program the generated `/init` execs (the image's command found along
   * PATH, the shell of `initKind: 'sh'`, or the interpreter of a `#!` script) is an ELF file for
   * another architecture than the image's platform, which the kernel cannot run (exit 126 at
   * boot). Default `false`: such a build fails with `IRB_IMAGE_ARCH_MISMATCH`; with `true` it is a
   * warning in the summary.
   */
  allowArchMismatch?: boolean;
  /** Slim presets: remove well-known dead weight (`docs`, `locales`, `caches`, `devel`; see SLIM_PRESET_INFO). */
  slim?: readonly SlimPreset[];
  /**
   * Trace files (JSON, written by `irb trace` / `traceImage`): keep only the paths they list (merged),
   * their parent directories, /etc/passwd and /etc/group, and what `keep` matches; injected files
   * and /init are added after.
   */
  keepOnly?: readonly string[];
  /** Globs (the `exclude` syntax) kept whatever `keepOnly` says: what tracing cannot see. */
  keep?: readonly string[];
  /** Hostname the generated `/init` sets. Default `irb`. */
  hostname?: string;
  /** Where credentials come from, asked in order. Default: `IRB_AUTH_*` variables, then Docker/Podman config. */
  keychains?: readonly Keychain[];
  /** Blob cache directory. Default `$IRB_CACHE_DIR`, else the XDG cache dir. */
  cacheDir?: string;
  /** `false` turns the blob, layer index and output caches off. Default `true`. */
  cache?: boolean;
  /** Registries (`host[:port]`) reached over plain HTTP. localhost and 127.0.0.1 always may. */
  insecureRegistries?: readonly string[];
  /** Mirrors tried before a registry: `{ 'docker.io': ['mirror.example:5000'] }`. */
  mirrors?: Readonly<Record<string, readonly string[]>>;
  /**
   * Tar members (all layers together) the build indexes at most; more fails the build with
   * `IRB_LAYER_TOO_MANY_ENTRIES` before anything is packed, as does a V8 heap close to full,
   * whatever this says. Default 8 000 000 (see `@irb/layers`' `maxEntries`).
   */
  maxEntries?: number;
  /**
   * Bytes of file content the image may unpack to (each inode once, sparse files at full size),
   * counted as the layers are indexed: more fails the build with `IRB_LAYER_UNPACKED_TOO_LARGE`.
   * `Infinity` turns it off. Default 64 GiB (see `@irb/layers`' `maxUnpackedBytes`).
   */
  maxUnpackedBytes?: number;
  /** Clamp mtimes to this (seconds since the epoch). Default `$SOURCE_DATE_EPOCH` when set. */
  sourceDateEpoch?: number;
  /** Cancels the build; the output file is not created. */
  signal?: AbortSignal;
  /** Progress events (see {@link BuildProgressEvent}). */
  onProgress?: (event: BuildProgressEvent) => void;
}

/** One layer as reported in progress and inspection. */
export interface LayerInfo {
  digest: string;
  diffId: string;
  mediaType: string;
  /** Blob size (compressed, as stored). */
  size: number;
}

/** Progress of a build, in order: resolve, resolved, blob…, index…, pack/compress…, done. */
export type BuildProgressEvent =
  | { type: 'resolve'; image: string }
  | { type: 'resolved'; image: string; digest: string; platform: string; layers: LayerInfo[] }
  | { type: 'blob'; digest: string; done: number; total: number; phase: 'network' | 'cache' | 'done' }
  | { type: 'index'; layer: number; layers: number; entries: number }
  | { type: 'pack'; entries: number; bytes: number; totalBytes: number }
  | { type: 'compress'; inputBytes: number; bytes: number }
  | { type: 'done'; summary: BuildSummary };

/** A file that lost extended attributes newc cannot carry. */
export interface LostXattr {
  path: string;
  names: string[];
}

/** What {@link InitramfsBuilder.build} returns: what a user wants to log. */
export interface BuildSummary {
  /** The output file (`-` for {@link InitramfsBuilder.stream}). */
  output: string;
  /** The image as given. */
  image: string;
  /** Digest of the platform manifest used. */
  manifestDigest: string;
  /** Digest of the image config. */
  configDigest: string;
  /** `os/arch[/variant]` of the image used. */
  platform: string;
  compression: InitramfsCompression;
  /** Entries in the archive (a hard-linked file counts once). */
  entries: number;
  /** Entries left out by `exclude`. */
  excluded: number;
  /** Entries left out by `slim` and `keepOnly`. */
  filtered: number;
  /** Bytes of the CPIO archive before compression. */
  uncompressedBytes: number;
  /** Bytes of the output file. */
  compressedBytes: number;
  /** Bytes the files take once unpacked in the guest's tmpfs (each file rounded up to 4 KiB pages). */
  unpackedBytes: number;
  /** Guest RAM (MiB) needed to unpack the archive: see `recommendGuestMemory`. Pass it as `mem=`/`-m`. */
  recommendedMemoryMiB: number;
  /** Files whose extended attributes (e.g. `security.capability`) newc could not keep. */
  lostXattrs: LostXattr[];
  /** Where `/init` came from. */
  init: 'generated' | 'file' | 'image';
  /** For a generated `/init`: irb's static program or a shell script. */
  initKind?: 'static' | 'sh';
  /** The program a generated `/init` runs (Entrypoint + Cmd). */
  command?: string[];
  /** What the build noticed that will likely stop the VM from working (e.g. the image's program is missing). */
  warnings: string[];
  /** Wall time of the build in milliseconds. */
  durationMs: number;
}

/** What {@link InitramfsBuilder.stream} returns: the archive bytes, and the summary once they were all read. */
export interface BuildStream extends AsyncIterable<Uint8Array> {
  /** Resolves after the last byte was read; rejects when the build failed or reading stopped early. */
  readonly summary: Promise<BuildSummary>;
}
