/** Every format `compress` writes and `decompress` reads, in the order to offer them. */
export const COMPRESSION_FORMATS = ['gzip', 'zstd', 'lz4', 'none'] as const;

/**
 * Level ranges and defaults per format: the one table behind `compress`'s `level` check, the
 * defaults a build key records, and a CLI's `--level` help.
 */
export const COMPRESSION_LEVELS = {
  gzip: { min: 1, max: 9, default: 6 },
  zstd: { min: 1, max: 19, default: 3 },
  lz4: { min: 1, max: 1, default: 1 },
} as const;

/** A format `compress` can write: gzip, zstd, lz4 (the kernel's legacy lz4 format), or plain bytes. */
export type CompressionFormat = (typeof COMPRESSION_FORMATS)[number];

/** What magic-byte detection can recognise; gzip, zstd, lz4 (legacy format) and none can be decoded. */
export type DetectedCompression = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'lz4' | 'lzma' | 'lzo' | 'none';

/** Options of {@link compress}. */
export interface CompressOptions {
  /** Output format. */
  format: CompressionFormat;
  /**
   * Compression level. gzip: 1 (fastest) … 9 (smallest), default 6 (as gzip and pigz).
   * zstd: 1 … 19, default 3 (zstd's own default); levels above 19 are refused because
   * they need windows the kernel will not allocate. lz4: only 1 (lz4-napi has one level,
   * lz4's fast mode). Ignored for `none`.
   */
  level?: number;
  /**
   * Threads to compress on. Default `os.availableParallelism()`. The output bytes do not
   * depend on it: gzip, zstd and lz4 are byte-identical for every thread count. zstd's
   * node:zlib backend always runs on one thread; lz4 runs on libuv's pool (4 threads
   * unless `UV_THREADPOOL_SIZE` says otherwise).
   */
  threads?: number;
  /**
   * lz4 only. Default `false`: exactly the layout `lz4 -l` writes, which the `lz4` tool reads,
   * and which the kernel reads to the end of its input or on into another lz4 stream. `true`
   * ends the stream with a zero length word, padded with NULs to a multiple of 4 bytes: the
   * kernel then ends the lz4 member there and reads a member of another compression after it
   * (without it, it reads the next member as more lz4 blocks and fails), while the `lz4` tool
   * (1.9.4) decodes all the data and then reports "Decoding Failed" (exit 54) on that word.
   * `memberJoint` writes the same word only where a member of another compression follows.
   */
  endMark?: boolean;
  /**
   * gzip only: the original file name (the header's FNAME field, 1 to 255 printable ASCII
   * characters). Default none. irb names the first member of its archives
   * (`IRB_ARCHIVE_NAME` of `@irb/compress/framing`).
   */
  name?: string;
  /** Aborts the stream; the pending read rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link decompress}. */
export interface DecompressOptions {
  /**
   * Input format. Default `'auto'`: taken from `mediaType` when that names one, else
   * detected from the first bytes.
   */
  format?: CompressionFormat | 'auto';
  /** OCI or Docker media type of the blob, used when `format` is `'auto'`. */
  mediaType?: string;
  /** Names the input in error messages, e.g. a layer digest. Default `'input'`. */
  label?: string;
  /** Aborts the stream; the pending read rejects with the signal's reason. */
  signal?: AbortSignal;
}
