export type { DockerArchiveOptions } from './docker-archive.ts';
export { DOCKER_LAYER_TAR, openDockerArchive } from './docker-archive.ts';
export type { OciLayoutOptions, OciLayoutPlatforms } from './oci-layout.ts';
export { ociLayoutPlatforms, openOciLayout, REF_NAME_ANNOTATION } from './oci-layout.ts';
export type { TarIndex, TarMember } from './tar-index.ts';
export { indexTar } from './tar-index.ts';
