/** The contracts every image source (registry, OCI layout, docker-archive) fulfils. */

/** An OCI/Docker platform. `variant` is optional (`arm64` matches `arm64/v8`). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

/** An OCI image manifest or Docker schema 2 manifest (same shape). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** An OCI index or Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The runtime part of an image configuration. */
export interface ContainerConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

/** An OCI image configuration file. */
export interface ImageConfigFile {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; empty_layer?: boolean; comment?: string }>;
}

/** Options for a single client call. */
export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/** Options for opening a layer stream. */
export interface OpenOptions {
  signal?: AbortSignal;
}

/** One layer of an image. `open()` starts a new, digest-verified stream of the blob each time. */
export interface Layer {
  /** Digest of the blob as stored (compressed). */
  readonly digest: string;
  /** Digest of the uncompressed tar (from the config's rootfs.diff_ids). */
  readonly diffId: string;
  /** Media type of the blob (tells the compression when it is known). */
  readonly mediaType: string;
  /** Size of the blob in bytes. */
  readonly size: number;
  /** A new stream of the blob's bytes (compressed as stored). The stream throws if the bytes do not match `digest`. */
  open(options?: OpenOptions): AsyncIterable<Uint8Array>;
}

/** A single-platform image: what every source yields after platform selection. */
export interface Image {
  /** Digest of the manifest (`sha256:…`). */
  digest(): Promise<string>;
  /** The parsed manifest. */
  manifest(): Promise<ImageManifest>;
  /** The parsed config file. */
  config(): Promise<ImageConfigFile>;
  /** Layers, base first. */
  layers(): Promise<Layer[]>;
}

/** Where a credential is wanted. `registry` is the host[:port] as in the reference (`docker.io` for Docker Hub). */
export interface AuthScope {
  registry: string;
  repository: string;
}

/** A credential a keychain can supply. */
export type Credential =
  | { kind: 'anonymous' }
  | { kind: 'basic'; username: string; password: string }
  /** An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token endpoint. */
  | { kind: 'identity-token'; token: string }
  /** A ready bearer token sent as is. */
  | { kind: 'bearer'; token: string };

/** Supplies credentials for a registry and repository. Return `undefined` to let the next keychain answer. */
export interface Keychain {
  /** A short name for messages (never a secret). */
  readonly name: string;
  resolve(scope: AuthScope, options?: { signal?: AbortSignal }): Promise<Credential | undefined>;
}

/** Progress of one blob transfer. */
export interface BlobProgress {
  type: 'blob';
  digest: string;
  /** Bytes done so far (including bytes from cache or earlier attempts). */
  done: number;
  total: number;
  /** `network`, `cache` (served from the blob cache) or `done` once verified. */
  phase: 'network' | 'cache' | 'done';
}

/** Callback for progress events. */
export type ProgressListener = (event: BlobProgress) => void;
