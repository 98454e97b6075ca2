/** Media types of the OCI image spec and Docker's image manifest v2 (schema 1 and 2). */

/** OCI image manifest. */
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** OCI image index (multi-platform). */
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
/** OCI image config. */
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
/** OCI layer, uncompressed tar. */
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
/** OCI layer, gzip-compressed tar. */
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** OCI layer, zstd-compressed tar. */
export const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
/** OCI non-distributable layer, uncompressed (deprecated by the spec, still found in Windows images). */
export const OCI_LAYER_NONDIST = 'application/vnd.oci.image.layer.nondistributable.v1.tar';
/** OCI non-distributable layer, gzip. */
export const OCI_LAYER_NONDIST_GZIP = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
/** OCI non-distributable layer, zstd. */
export const OCI_LAYER_NONDIST_ZSTD = 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd';
/** OCI empty descriptor (`{}`), used by artifacts. */
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** Docker image manifest v2, schema 2. */
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
/** Docker manifest list (multi-platform). */
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
/** Docker image config. */
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
/** Docker layer, gzip-compressed tar. */
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
/** Docker layer, zstd-compressed tar (written by newer buildkit with `compression=zstd`). */
export const DOCKER_LAYER_ZSTD = 'application/vnd.docker.image.rootfs.diff.tar.zstd';
/** Docker foreign (non-distributable) layer. */
export const DOCKER_LAYER_FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
/** Docker schema 1 manifest (unsigned). Refused: it carries no config and no verifiable layer list. */
export const DOCKER_MANIFEST_V1 = 'application/vnd.docker.distribution.manifest.v1+json';
/** Docker schema 1 manifest (signed, JWS). Refused for the same reason. */
export const DOCKER_MANIFEST_V1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/** Single-platform manifest types irb understands. */
export const IMAGE_MANIFEST_TYPES: readonly string[] = [OCI_MANIFEST, DOCKER_MANIFEST];
/** Multi-platform index types irb understands. */
export const INDEX_TYPES: readonly string[] = [OCI_INDEX, DOCKER_MANIFEST_LIST];
/** The `Accept` header sent for every manifest request: all four schema 2 / OCI manifest types. */
export const MANIFEST_ACCEPT: string = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST].join(
  ', ',
);

/** True for a media type naming a multi-platform index. */
export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && INDEX_TYPES.includes(mediaType);
}

/** True for a media type naming a single-platform image manifest. */
export function isImageManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && IMAGE_MANIFEST_TYPES.includes(mediaType);
}

/** True for Docker schema 1 manifests, which irb refuses. */
export function isSchema1MediaType(mediaType: string | undefined): boolean {
  return mediaType === DOCKER_MANIFEST_V1 || mediaType === DOCKER_MANIFEST_V1_SIGNED;
}

/** The compression a layer media type announces, or `undefined` when the media type does not say. */
export function layerCompression(mediaType: string): 'gzip' | 'zstd' | 'none' | undefined {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.tar.zstd')) return 'zstd';
  if (mediaType.endsWith('.tar') || mediaType === 'application/x-tar') return 'none';
  return undefined;
}
