export { COMPRESSION_LEVELS, compress } from './compress.ts';
export { decompress } from './decompress.ts';
export { compressionFromMediaType, DETECT_BYTES, detectCompression } from './detect.ts';
export { GZIP_BLOCK_SIZE } from './gzip.ts';
export { type DecodeInitramfsOptions, decodeInitramfs, type InitramfsMember } from './initramfs.ts';
export type { CompressionFormat, CompressOptions, DecompressOptions, DetectedCompression } from './types.ts';
export { ZSTD_MAX_WINDOW_LOG } from './zstd.ts';
