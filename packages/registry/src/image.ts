/**
 * A registry image as the `Image` interface: resolving a reference to one platform's manifest
 * and config (and checking they agree), and layers that open through the client's verified
 * cache, with read-ahead of the other layers.
 */
import { IrbError } from '@irb/errors';
import {
  type FetchedManifest,
  MAX_CONFIG_BYTES,
  parseJsonBytes,
  validateConfig,
  validateDescriptor,
} from './manifest.ts';
import { isImageManifestMediaType } from './media-types.ts';
import { checkConfigPlatform, formatPlatform, selectManifest } from './platform.ts';
import { formatReference, type Reference, withDigest } from './reference.ts';
import type {
  CallOptions,
  Descriptor,
  Image,
  ImageConfigFile,
  ImageIndex,
  ImageManifest,
  Layer,
  OpenOptions,
  Platform,
} from './types.ts';

/**
 * What an image needs of a registry client: its verified manifests and blobs, by reference.
 * `RegistryClient` is one; the image asks no more of it, so it does not depend on the client.
 */
export interface ImageFetcher {
  /** A manifest or index, verified (against `expected` when given). */
  manifest(
    ref: Reference,
    options: { signal?: AbortSignal; expected?: Descriptor },
  ): Promise<FetchedManifest>;
  /** A small blob's bytes (configs), verified, refused above `maxBytes`. */
  blobBytes(
    ref: Reference,
    descriptor: Descriptor,
    options: CallOptions & { maxBytes?: number },
  ): Promise<Uint8Array>;
  /** A blob as a stream, verified by the time it ends. */
  openBlob(ref: Reference, descriptor: Descriptor, options?: CallOptions): AsyncIterable<Uint8Array>;
  /** Makes sure blobs are in the cache, in parallel. */
  fetchBlobs(ref: Reference, descriptors: readonly Descriptor[], options?: CallOptions): Promise<void>;
  /** Opening a layer starts downloading the image's other layers. */
  readonly readAhead: boolean;
}

/**
 * Resolves `ref` to a single-platform image: fetches and verifies the manifest (selecting
 * `platform` from an index) and the config, and checks the platform and the layer count.
 */
export async function loadImage(
  client: ImageFetcher,
  ref: Reference,
  platform: Platform,
  signal: AbortSignal | undefined,
): Promise<RegistryImage> {
  const name = formatReference(ref);
  const top = await client.manifest(ref, signal ? { signal } : {});
  let chosen = top;
  // Without platform data in the index, the config is the only word on the platform.
  let checkConfig = !top.isIndex;
  if (top.isIndex) {
    const index = top.json as ImageIndex;
    const untagged = index.manifests.filter((d) => !d.platform && isImageManifestMediaType(d.mediaType));
    let descriptor: Descriptor;
    if (untagged.length === 1 && !index.manifests.some((d) => d.platform)) {
      descriptor = untagged[0] as Descriptor;
      checkConfig = true;
    } else {
      descriptor = selectManifest(index, platform, name);
    }
    validateDescriptor(descriptor, `index of ${name}`);
    chosen = await client.manifest(withDigest(ref, descriptor.digest), {
      ...(signal ? { signal } : {}),
      expected: descriptor,
    });
    if (chosen.isIndex) {
      throw new IrbError(
        'IRB_MANIFEST_UNSUPPORTED',
        `${name}: the ${formatPlatform(platform)} entry of the index is itself an index; nested indexes are not supported`,
      );
    }
  }
  const manifest = chosen.json as ImageManifest;
  const configBytes = await client.blobBytes(ref, manifest.config, {
    ...(signal ? { signal } : {}),
    maxBytes: MAX_CONFIG_BYTES,
  });
  const config = validateConfig(parseJsonBytes(configBytes, `${name}: the image config`), name);
  if (checkConfig) checkConfigPlatform(config, platform, name);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${name}: the config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers; the image is malformed`,
    );
  }
  return new RegistryImage(client, withDigest(ref, chosen.digest), name, platform, chosen, manifest, config);
}

/** A layer of a registry image; `open()` downloads into the verified cache, then streams from it. */
class RegistryLayer implements Layer {
  readonly digest: string;
  readonly diffId: string;
  readonly mediaType: string;
  readonly size: number;
  /** The descriptor from the manifest. */
  readonly descriptor: Descriptor;
  readonly #client: ImageFetcher;
  readonly #ref: Reference;
  readonly #onOpen: ((signal: AbortSignal | undefined) => void) | undefined;

  constructor(
    client: ImageFetcher,
    ref: Reference,
    descriptor: Descriptor,
    diffId: string,
    onOpen?: (signal: AbortSignal | undefined) => void,
  ) {
    this.#client = client;
    this.#onOpen = onOpen;
    this.#ref = ref;
    this.descriptor = descriptor;
    this.digest = descriptor.digest;
    this.diffId = diffId;
    this.mediaType = descriptor.mediaType;
    this.size = descriptor.size;
  }

  open(options: OpenOptions = {}): AsyncIterable<Uint8Array> {
    this.#onOpen?.(options.signal);
    return this.#client.openBlob(this.#ref, this.descriptor, options);
  }
}

/** A single-platform image from a registry. */
export class RegistryImage implements Image {
  /** The reference, pinned to the platform manifest's digest. */
  readonly reference: Reference;
  /** The reference as the user gave it, fully qualified. */
  readonly name: string;
  /** The platform asked for. */
  readonly platform: Platform;
  /** The manifest's media type. */
  readonly mediaType: string;
  readonly #client: ImageFetcher;
  readonly #fetched: FetchedManifest;
  readonly #manifest: ImageManifest;
  readonly #config: ImageConfigFile;
  readonly #layers: RegistryLayer[];
  #readAheadStarted = false;

  constructor(
    client: ImageFetcher,
    reference: Reference,
    name: string,
    platform: Platform,
    fetched: FetchedManifest,
    manifest: ImageManifest,
    config: ImageConfigFile,
  ) {
    this.#client = client;
    this.reference = reference;
    this.name = name;
    this.platform = platform;
    this.mediaType = fetched.mediaType;
    this.#fetched = fetched;
    this.#manifest = manifest;
    this.#config = config;
    const onOpen = client.readAhead
      ? (signal: AbortSignal | undefined) => this.#startReadAhead(signal)
      : undefined;
    this.#layers = manifest.layers.map(
      (d, i) => new RegistryLayer(client, reference, d, config.rootfs.diff_ids[i] as string, onOpen),
    );
  }

  #startReadAhead(signal: AbortSignal | undefined): void {
    if (this.#readAheadStarted) return;
    this.#readAheadStarted = true;
    // Failures surface when the consumer opens that layer (it then tries again itself).
    this.prefetch(signal ? { signal } : {}).catch(() => undefined);
  }

  async digest(): Promise<string> {
    return this.#fetched.digest;
  }

  async manifest(): Promise<ImageManifest> {
    return this.#manifest;
  }

  /** The manifest's exact bytes. */
  async rawManifest(): Promise<Uint8Array> {
    return this.#fetched.bytes;
  }

  async config(): Promise<ImageConfigFile> {
    return this.#config;
  }

  async layers(): Promise<Layer[]> {
    return [...this.#layers];
  }

  /** Downloads every layer into the cache in parallel (the client's `concurrency`). */
  async prefetch(options: CallOptions = {}): Promise<void> {
    await this.#client.fetchBlobs(
      this.reference,
      this.#layers.map((l) => l.descriptor),
      options,
    );
  }
}
