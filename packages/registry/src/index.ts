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
export * from './auth.ts';
export * from './cache.ts';
export * from './client.ts';
export * from './digest.ts';
export * from './media-types.ts';
export * from './platform.ts';
export { redactHeaders, redactUrl, scrub } from './redact.ts';
export * from './reference.ts';
export * from './source.ts';
export * from './sources/index.ts';
export { backoffDelay, parseRetryAfter, type RetryOptions } from './transport/retry.ts';
export type * from './types.ts';
