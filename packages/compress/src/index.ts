export { compress } from './compress.ts';
export { decompress } from './decompress.ts';
export { compressionFromMediaType, DETECT_BYTES, detectCompression } from './detect.ts';
export { IRB_ARCHIVE_NAME, memberJoint, TRAILER_RECORD, trailerMember } from './framing.ts';
export { type DecodeInitramfsOptions, decodeInitramfs, type InitramfsMember } from './initramfs.ts';
export { ByteReader, drain } from './reader.ts';
export {
  COMPRESSION_FORMATS,
  COMPRESSION_LEVELS,
  type CompressionFormat,
  type CompressOptions,
  type DecompressOptions,
  type DetectedCompression,
} from './types.ts';
export { ZSTD_BACKEND_ENV, type ZstdBackend, zstdBackend } from './zstd.ts';
