import type { CompressionFormat, DetectedCompression } from './types.ts';

/** Bytes `detectCompression` needs to see to recognise every format it knows. */
export const DETECT_BYTES = 6;

/**
 * Recognises a compressed stream by its first bytes (at least {@link DETECT_BYTES} of
 * them for a sure answer): the formats the Linux kernel accepts for an initramfs.
 */
export function detectCompression(bytes: Uint8Array): DetectedCompression {
  const b = (i: number): number => bytes[i] ?? -1;
  if (b(0) === 0x1f && b(1) === 0x8b) return 'gzip';
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return 'zstd';
  // zstd skippable frames (0x184D2A50 … 0x184D2A5F, little endian) are zstd streams too.
  if ((b(0) & 0xf0) === 0x50 && b(1) === 0x2a && b(2) === 0x4d && b(3) === 0x18) return 'zstd';
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58 && b(4) === 0x5a && b(5) === 0x00) {
    return 'xz';
  }
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return 'bzip2';
  if (b(0) === 0x02 && b(1) === 0x21 && b(2) === 0x4c && b(3) === 0x18) return 'lz4';
  if (b(0) === 0x04 && b(1) === 0x22 && b(2) === 0x4d && b(3) === 0x18) return 'lz4';
  if (b(0) === 0x89 && b(1) === 0x4c && b(2) === 0x5a && b(3) === 0x4f) return 'lzo';
  if (b(0) === 0x5d && b(1) === 0x00 && b(2) === 0x00) return 'lzma';
  return 'none';
}

/**
 * The compression an OCI or Docker layer media type declares, or `undefined` when the
 * media type does not say (then detect by magic bytes).
 *
 * Knows `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]` (also the
 * non-distributable variants), Docker's `application/vnd.docker.image.rootfs.diff.tar.gzip`
 * and `…foreign.diff.tar.gzip`, and the generic suffixes `+gzip`, `+zstd`, `.gzip`, `.gz`,
 * `.zst`, `.zstd`, `+xz`…; a media type ending in `tar` is uncompressed.
 */
export function compressionFromMediaType(mediaType: string): DetectedCompression | undefined {
  const mt = mediaType.trim().toLowerCase().split(';')[0]!.trim();
  if (mt === '') return undefined;
  if (/[+.](gzip|gz)$/.test(mt)) return 'gzip';
  if (/[+.](zstd|zst)$/.test(mt)) return 'zstd';
  if (/[+.]xz$/.test(mt)) return 'xz';
  if (/[+.](bzip2|bz2)$/.test(mt)) return 'bzip2';
  if (/[+.]lz4$/.test(mt)) return 'lz4';
  if (/[+.]lzma$/.test(mt)) return 'lzma';
  if (/(^|[./+-])tar$/.test(mt)) return 'none';
  return undefined;
}

/** True when `format` is one {@link decompress} can decode. */
export function isDecodable(format: DetectedCompression): format is CompressionFormat {
  return format === 'gzip' || format === 'zstd' || format === 'lz4' || format === 'none';
}
