export {
  type ArtifactManifest,
  addReferrer,
  EMPTY_CONFIG,
  EMPTY_CONFIG_BYTES,
  INITRAMFS_ANNOTATIONS,
  INITRAMFS_ARTIFACT_TYPE,
  type InitramfsLayerCompression,
  type InitramfsManifestInput,
  initramfsLayerCompression,
  initramfsLayerMediaType,
  initramfsManifest,
  isInitramfsManifest,
  manifestBytes,
  type ReferrerDescriptor,
  type ReferrersIndex,
  referrerDescriptor,
  referrersTag,
  sha256Digest,
} from './artifact.ts';
export { anonymousKeychain, createStaticKeychain } from './auth.ts';
export { BlobCache, type BlobCacheOptions } from './cache.ts';
export * from './client.ts';
export {
  digestOf,
  isDigest,
  type ParsedDigest,
  parseDigest,
  readVerified,
  type VerifyStreamOptions,
  verifyBytes,
  verifyStream,
} from './digest.ts';
export {
  DOCKER_CONFIG,
  DOCKER_LAYER_FOREIGN,
  DOCKER_LAYER_GZIP,
  DOCKER_LAYER_ZSTD,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_MANIFEST_V1,
  DOCKER_MANIFEST_V1_SIGNED,
  IMAGE_MANIFEST_TYPES,
  INDEX_TYPES,
  isImageManifestMediaType,
  isIndexMediaType,
  isSchema1MediaType,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER,
  OCI_LAYER_GZIP,
  OCI_LAYER_NONDIST,
  OCI_LAYER_NONDIST_GZIP,
  OCI_LAYER_NONDIST_ZSTD,
  OCI_LAYER_ZSTD,
  OCI_MANIFEST,
} from './media-types.ts';
export {
  checkConfigPlatform,
  DEFAULT_PLATFORM,
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from './platform.ts';
export {
  DOCKER_HUB,
  DOCKER_HUB_ALIASES,
  DOCKER_HUB_API,
  formatReference,
  normalizeRegistry,
  parseReference,
  type Reference,
  withDigest,
} from './reference.ts';
export * from './source.ts';
export * from './sources/index.ts';
export type { RetryOptions } from './transport/retry.ts';
export type * from './types.ts';
