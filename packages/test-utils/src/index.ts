export * from './assert.ts';
export * from './bytes.ts';
export {
  type DebianImageOptions,
  type DetectDebianMirrorOptions,
  detectDebianMirror,
} from './debian-base.ts';
export * from './debian-image.ts';
export { type DebianRustImage, ensureDebianRustImage } from './debian-rust-image.ts';
export * from './fault-proxy.ts';
export * from './files.ts';
export { fixtureCacheRoot } from './fixture-cache.ts';
export * from './forward-proxy.ts';
export {
  ensureManyEntriesImage,
  type ManyEntriesImage,
  type ManyEntriesImageOptions,
  manyEntriesTar,
} from './many-entries-image.ts';
export * from './oci-layout.ts';
export * from './processes.ts';
export * from './public-surface.ts';
export * from './push.ts';
export * from './qemu-net.ts';
export * from './registry-server.ts';
export {
  ensureSyntheticImage,
  prng,
  type SyntheticImage,
  type SyntheticImageOptions,
} from './synthetic-image.ts';
export * from './tar.ts';
export * from './token-server.ts';
