/** A format `compress` can write: gzip, zstd, or plain bytes. */
export type CompressionFormat = 'gzip' | 'zstd' | 'none';

/** What magic-byte detection can recognise; only gzip, zstd and none can be decoded. */
export type DetectedCompression = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'lz4' | 'lzma' | 'lzo' | 'none';

/** Options of {@link compress}. */
export interface CompressOptions {
  /** Output format. */
  format: CompressionFormat;
  /**
   * Compression level. gzip: 1 (fastest) … 9 (smallest), default 6 (as gzip and pigz).
   * zstd: 1 … 19, default 3 (zstd's own default); levels above 19 are refused because
   * they need windows the kernel will not allocate. Ignored for `none`.
   */
  level?: number;
  /**
   * Threads to compress on. Default `os.availableParallelism()`. The output bytes do not
   * depend on it: gzip and zstd are byte-identical for every thread count.
   */
  threads?: number;
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
