import { IrbError } from '@irb/errors';
import { readVerified, verifyStream } from '../digest.ts';
import {
  checkDocumentSize,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  validateConfig,
  validateIndexDescriptors,
  validateManifestDescriptors,
} from '../manifest.ts';
import {
  DOCKER_CONFIG,
  isImageManifestMediaType,
  isIndexMediaType,
  isSchema1MediaType,
  OCI_CONFIG,
} from '../media-types.ts';
import { checkConfigPlatform, DEFAULT_PLATFORM, parsePlatform, selectManifest } from '../platform.ts';
import type {
  Descriptor,
  Image,
  ImageConfigFile,
  ImageIndex,
  ImageManifest,
  Layer,
  OpenOptions,
  Platform,
} from '../types.ts';

/** Where a local source reads content-addressed blobs from. */
export interface BlobReader {
  /** A new stream of the blob's raw bytes (not yet verified). */
  stream(descriptor: Pick<Descriptor, 'digest' | 'size'>, options?: OpenOptions): AsyncIterable<Uint8Array>;
}

/** The platform asked for, parsed; {@link DEFAULT_PLATFORM} when none. */
export function wantedPlatform(platform: string | Platform | undefined): Platform {
  if (platform === undefined) return { ...DEFAULT_PLATFORM };
  return typeof platform === 'string' ? parsePlatform(platform) : platform;
}

/**
 * Reads a small blob (manifest, index, config) whole, returning it only once it is verified. A
 * descriptor claiming more than `maxBytes` (the registry path's limit for its kind) is refused
 * before a byte is read.
 */
export async function readBlob(
  reader: BlobReader,
  descriptor: Pick<Descriptor, 'digest' | 'size'>,
  what: string,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  checkDocumentSize(descriptor, maxBytes, what);
  return readVerified(reader.stream(descriptor, signal ? { signal } : {}), {
    digest: descriptor.digest,
    size: descriptor.size,
    what,
  });
}

/** Parses JSON, turning a syntax error into an `IRB_MANIFEST_INVALID` naming what was parsed. */
export function parseJson(bytes: Uint8Array | string, what: string): unknown {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes));
  } catch (error) {
    throw new IrbError('IRB_MANIFEST_INVALID', `${what} is not valid JSON; the image is damaged`, {
      cause: error,
    });
  }
}

/**
 * The kind of a manifest document, from its descriptor's media type, its own, or its shape.
 * Its descriptors (index entries, or config and layers) are checked here, as it is parsed.
 */
export function manifestKind(
  doc: unknown,
  descriptorMediaType: string | undefined,
  what: string,
): 'index' | 'manifest' {
  const own = isObject(doc) && typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const mediaType = descriptorMediaType ?? own;
  if (
    isSchema1MediaType(mediaType) ||
    isSchema1MediaType(own) ||
    (isObject(doc) && doc.schemaVersion === 1)
  ) {
    throw new IrbError(
      'IRB_MANIFEST_UNSUPPORTED',
      `${what} is a Docker schema 1 manifest, which irb does not read; convert it (e.g. skopeo copy --format v2s2) first`,
    );
  }
  if (!isObject(doc)) throw new IrbError('IRB_MANIFEST_INVALID', `${what} is not a JSON object`);
  if (isIndexMediaType(mediaType) || (mediaType === undefined && Array.isArray(doc.manifests))) {
    if (!Array.isArray(doc.manifests))
      throw new IrbError('IRB_MANIFEST_INVALID', `${what} is an index without manifests`);
    validateIndexDescriptors(doc as unknown as ImageIndex, what);
    return 'index';
  }
  if (isImageManifestMediaType(mediaType) || (mediaType === undefined && isObject(doc.config))) {
    if (!isObject(doc.config) || !Array.isArray(doc.layers)) {
      throw new IrbError('IRB_MANIFEST_INVALID', `${what} is a manifest without config or layers`);
    }
    validateManifestDescriptors(doc as unknown as ImageManifest, what);
    return 'manifest';
  }
  throw new IrbError(
    'IRB_MANIFEST_UNSUPPORTED',
    `${what} has media type ${mediaType ?? '(none)'}, which is not an OCI/Docker image manifest or index`,
  );
}

/** A resolved single-platform manifest and whether an index chose it. */
export interface ResolvedManifest {
  descriptor: Descriptor;
  manifest: ImageManifest;
  /** True when a platform-tagged index entry chose it (so its config need not be checked again). */
  viaIndex: boolean;
}

/**
 * Follows a descriptor through (possibly nested) indexes to the manifest for `platform`,
 * verifying every document it reads.
 */
export async function resolveManifest(
  reader: BlobReader,
  descriptor: Descriptor,
  platform: Platform,
  name: string,
  signal?: AbortSignal,
  viaIndex = false,
  depth = 0,
): Promise<ResolvedManifest> {
  if (depth > 8) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${name} nests indexes more than 8 deep; the image is malformed`,
    );
  }
  const what = `${name} (${descriptor.digest})`;
  const bytes = await readBlob(reader, descriptor, what, MAX_MANIFEST_BYTES, signal);
  const doc = parseJson(bytes, what);
  if (manifestKind(doc, descriptor.mediaType, what) === 'index') {
    const chosen = selectManifest(doc as ImageIndex, platform, name);
    return resolveManifest(reader, chosen, platform, name, signal, true, depth + 1);
  }
  return { descriptor, manifest: doc as ImageManifest, viaIndex };
}

/** Options of {@link createImage}. */
export interface CreateImageOptions {
  reader: BlobReader;
  manifestDigest: string;
  manifest: ImageManifest;
  /** Named in errors: `oci:DIR:TAG`, `docker-archive:FILE`. */
  name: string;
  /** Config bytes already read and verified (docker-archive reads them to pick the image). */
  configBytes?: Uint8Array;
  /** Aborts reading the config (when it is read later, on the first `config()`). */
  signal?: AbortSignal;
}

/** An {@link Image} over a manifest whose blobs `reader` serves; every blob is verified as it is read. */
export function createImage(options: CreateImageOptions): Image {
  const { reader, manifest, name } = options;
  const configMediaType = manifest.config.mediaType;
  if (configMediaType !== OCI_CONFIG && configMediaType !== DOCKER_CONFIG) {
    throw new IrbError(
      'IRB_MANIFEST_UNSUPPORTED',
      `${name} is not a container image (config media type ${configMediaType}); it may be an artifact such as a Helm chart or signature`,
    );
  }
  let configPromise: Promise<ImageConfigFile> | undefined;
  let layersPromise: Promise<Layer[]> | undefined;

  const config = () => {
    configPromise ??= (async () => {
      const bytes =
        options.configBytes ??
        (await readBlob(
          reader,
          manifest.config,
          `${name} config (${manifest.config.digest})`,
          MAX_CONFIG_BYTES,
          options.signal,
        ));
      return parseConfig(bytes, name);
    })();
    return configPromise;
  };

  return {
    digest: async () => options.manifestDigest,
    manifest: async () => manifest,
    config,
    layers() {
      layersPromise ??= config().then((cfg) => buildLayers(manifest.layers, cfg, reader, name));
      return layersPromise;
    },
  };
}

/** Parses and sanity-checks an image config (see {@link validateConfig}). */
export function parseConfig(bytes: Uint8Array, name: string): ImageConfigFile {
  return validateConfig(parseJson(bytes, `${name} config`), name);
}

/** Pairs manifest layers with the config's diff_ids into {@link Layer}s that verify on every `open()`. */
export function buildLayers(
  descriptors: readonly Descriptor[],
  config: ImageConfigFile,
  reader: BlobReader,
  name: string,
): Layer[] {
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== descriptors.length) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${name} lists ${descriptors.length} layers but its config has ${diffIds.length} diff_ids; the image is malformed`,
    );
  }
  return descriptors.map((descriptor, i) => createLayer(descriptor, diffIds[i] as string, reader, name));
}

/** One verified layer over a blob reader. */
export function createLayer(descriptor: Descriptor, diffId: string, reader: BlobReader, name: string): Layer {
  return {
    digest: descriptor.digest,
    diffId,
    mediaType: descriptor.mediaType,
    size: descriptor.size,
    open(options?: OpenOptions) {
      return verifiedStream(reader, descriptor, `${name} layer ${descriptor.digest}`, options);
    },
  };
}

function verifiedStream(
  reader: BlobReader,
  descriptor: Descriptor,
  what: string,
  options?: OpenOptions,
): AsyncIterable<Uint8Array> {
  return verifyStream(reader.stream(descriptor, options), {
    digest: descriptor.digest,
    size: descriptor.size,
    what,
  });
}

/** Checks a single-platform image's config against the request unless an index already chose it. */
export async function checkPlatform(
  image: Image,
  resolved: { viaIndex: boolean },
  want: Platform,
  name: string,
) {
  if (!resolved.viaIndex) checkConfigPlatform(await image.config(), want, name);
}

/** True for a plain JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
