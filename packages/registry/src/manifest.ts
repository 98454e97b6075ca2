/**
 * Manifests and indexes: fetching one by tag or digest (mirrors first, verified, cached by
 * digest) and parsing it into a checked {@link FetchedManifest}. Which media types irb reads,
 * and what a well-formed descriptor is, is decided here.
 */
import { IrbError } from '@irb/errors';
import type { BlobCache } from './cache.ts';
import { digestOf, isDigest, parseDigest, verifyBytes } from './digest.ts';
import { dump, formatSize, notFoundError, readErrorBody, readLimited, statusError } from './errors.ts';
import {
  DOCKER_MANIFEST,
  isImageManifestMediaType,
  isIndexMediaType,
  isSchema1MediaType,
  MANIFEST_ACCEPT,
  OCI_INDEX,
  OCI_MANIFEST,
} from './media-types.ts';
import type { Endpoint } from './mirrors.ts';
import type { Secrets } from './redact.ts';
import { formatReference, type Reference } from './reference.ts';
import { header } from './transport/http.ts';
import type { RegistryTransport } from './transport/request.ts';
import type { Descriptor, ImageConfigFile, ImageIndex, ImageManifest } from './types.ts';

/** A fetched, verified manifest or index. */
export interface FetchedManifest {
  /** The manifest's digest (verified). */
  digest: string;
  mediaType: string;
  /** The exact bytes, as the digest covers them. */
  bytes: Uint8Array;
  /** Parsed JSON. */
  json: ImageManifest | ImageIndex;
  /** True for an index / manifest list. */
  isIndex: boolean;
}

/**
 * Largest manifest or index accepted (the distribution spec's recommended limit), from a
 * registry, an OCI layout or a docker archive alike.
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Largest image config accepted, from a registry, an OCI layout or a docker archive alike. */
export const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

/**
 * Refuses a document (manifest, index, config) whose descriptor claims more than `limit` bytes,
 * before a byte is read: it is held in memory whole. `what` names the blob, digest included.
 */
export function checkDocumentSize(
  descriptor: Pick<Descriptor, 'digest' | 'size'>,
  limit: number,
  what: string,
): void {
  if (descriptor.size <= limit) return;
  throw new IrbError(
    'IRB_MANIFEST_INVALID',
    `${what} claims ${descriptor.size} bytes, over the ${formatSize(limit)} limit for this kind of blob; the image is malformed or hostile`,
  );
}

/** What {@link fetchManifest} needs from its client. */
export interface ManifestContext {
  cache: BlobCache;
  /** False when the cache is a throwaway temp dir: then a tag is not worth a HEAD request first. */
  persistentCache: boolean;
  requests: RegistryTransport;
  endpoints: readonly Endpoint[];
  secrets: Secrets;
}

/**
 * Fetches a manifest or index by tag or digest, verified: by digest against the digest, by
 * tag against `Docker-Content-Digest` when the registry sends it. Cached by digest, so a
 * warm pull by tag costs one HEAD request and a pull by digest none.
 */
export async function fetchManifest(
  ctx: ManifestContext,
  ref: Reference,
  signal: AbortSignal | undefined,
  expected: Descriptor | undefined,
  parse: ParseManifestOptions = {},
): Promise<FetchedManifest> {
  const name = formatReference(ref);
  const { cache, requests, endpoints, secrets } = ctx;
  const path = `manifests/${ref.identifier}`;
  const accept = { accept: MANIFEST_ACCEPT };
  if (ref.digest) {
    const cached = await cache.readBytes(ref.digest, expected?.size);
    if (cached) return parseManifest(name, cached, ref.digest, expected?.mediaType, parse);
  } else if (ctx.persistentCache) {
    const res = await requests.first(endpoints, ref, 'HEAD', path, accept, signal, name);
    await dump(res);
    if (res.status === 404) throw notFoundError(name, undefined);
    const digest = header(res.headers, 'docker-content-digest');
    if (res.status === 200 && digest && isDigest(digest)) {
      const cached = await cache.readBytes(digest);
      if (cached) return parseManifest(name, cached, digest, header(res.headers, 'content-type'), parse);
    }
  }
  const res = await requests.first(endpoints, ref, 'GET', path, accept, signal, name);
  if (res.status === 404) throw notFoundError(name, secrets.clean(await readErrorBody(res)));
  if (res.status !== 200) throw await statusError(res, name, 'manifest', (t) => secrets.clean(t));
  const declared = Number(header(res.headers, 'content-length'));
  if (declared > MAX_MANIFEST_BYTES) {
    await dump(res);
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${name}: manifest is ${declared} bytes, over the ${formatSize(MAX_MANIFEST_BYTES)} limit`,
    );
  }
  const bytes = await readLimited(res, MAX_MANIFEST_BYTES, `${name}: manifest`);
  let digest: string;
  if (ref.digest) {
    verifyBytes(bytes, {
      digest: ref.digest,
      ...(expected ? { size: expected.size } : {}),
      what: `manifest of ${name}`,
    });
    digest = ref.digest;
  } else {
    const announced = header(res.headers, 'docker-content-digest');
    if (announced) {
      try {
        parseDigest(announced);
      } catch (error) {
        throw new IrbError(
          'IRB_MANIFEST_INVALID',
          `${name}: registry sent a malformed Docker-Content-Digest`,
          {
            cause: error,
          },
        );
      }
      verifyBytes(bytes, { digest: announced, what: `manifest of ${name}` });
      digest = announced;
    } else {
      digest = digestOf(bytes);
    }
  }
  const parsed = parseManifest(
    name,
    bytes,
    digest,
    expected?.mediaType ?? header(res.headers, 'content-type'),
    parse,
  );
  await cache.writeBytes(digest, bytes);
  return parsed;
}

/** Options of {@link parseManifest}. */
export interface ParseManifestOptions {
  /** Accept OCI artifact manifests (any config media type), e.g. irb's initramfs. Default false. */
  artifacts?: boolean;
}

/**
 * Parses manifest bytes: works out the media type (the JSON's own, else `Content-Type`, else
 * the shape), refuses schema 1 and artifacts, and checks every descriptor.
 */
export function parseManifest(
  name: string,
  bytes: Uint8Array,
  digest: string,
  contentType: string | undefined,
  options: ParseManifestOptions = {},
): FetchedManifest {
  const json = parseJsonBytes(bytes, `${name}: the manifest`) as Record<string, unknown>;
  if (!json || typeof json !== 'object') {
    throw new IrbError('IRB_MANIFEST_INVALID', `${name}: the manifest is not a JSON object`);
  }
  const type = contentType?.split(';')[0]?.trim();
  const mediaType =
    typeof json.mediaType === 'string'
      ? json.mediaType
      : type && type !== 'application/json' && type !== 'application/octet-stream'
        ? type
        : Array.isArray(json.manifests)
          ? OCI_INDEX
          : json.config && typeof json.config === 'object'
            ? String((json.config as { mediaType?: unknown }).mediaType).startsWith('application/vnd.docker')
              ? DOCKER_MANIFEST
              : OCI_MANIFEST
            : undefined;
  if (json.schemaVersion === 1 || isSchema1MediaType(mediaType) || isSchema1MediaType(type)) {
    throw new IrbError(
      'IRB_MANIFEST_UNSUPPORTED',
      `${name} uses the Docker schema 1 manifest format, retired in 2019 and not verifiable by digest; re-push the image with a current Docker, buildah or crane (e.g. "crane copy") to convert it to schema 2/OCI`,
    );
  }
  if (json.schemaVersion !== 2) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${name}: unsupported manifest schemaVersion ${String(json.schemaVersion)}`,
    );
  }
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(json.manifests)) {
      throw new IrbError('IRB_MANIFEST_INVALID', `${name}: the index has no manifests list`);
    }
    validateIndexDescriptors(json as unknown as ImageIndex, name);
    return {
      digest,
      mediaType: mediaType as string,
      bytes,
      json: json as unknown as ImageIndex,
      isIndex: true,
    };
  }
  if (isImageManifestMediaType(mediaType)) {
    if (!Array.isArray(json.layers)) {
      throw new IrbError('IRB_MANIFEST_INVALID', `${name}: the manifest has no layers list`);
    }
    validateManifestDescriptors(json as unknown as ImageManifest, name);
    const configType = (json.config as Descriptor).mediaType;
    if (
      !options.artifacts &&
      configType !== 'application/vnd.oci.image.config.v1+json' &&
      configType !== 'application/vnd.docker.container.image.v1+json'
    ) {
      throw new IrbError(
        'IRB_MANIFEST_UNSUPPORTED',
        `${name} is not a container image (config media type ${configType}); it looks like an OCI artifact`,
      );
    }
    return {
      digest,
      mediaType: mediaType as string,
      bytes,
      json: json as unknown as ImageManifest,
      isIndex: false,
    };
  }
  throw new IrbError(
    'IRB_MANIFEST_UNSUPPORTED',
    `${name} has manifest media type ${mediaType ?? '(none)'}; irb reads OCI image manifests/indexes and Docker schema 2 manifests/lists`,
  );
}

/**
 * Parses JSON bytes, which must be UTF-8 (the OCI spec says so). The decode is strict: a
 * replacement character silently standing in for a bad byte would change the config's `Env`
 * or `Cmd` that ends up in the initramfs, so such a document is refused instead.
 */
export function parseJsonBytes(bytes: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new IrbError('IRB_MANIFEST_INVALID', `${what} is not UTF-8 text, so not valid JSON`, {
      cause: error,
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new IrbError('IRB_MANIFEST_INVALID', `${what} is not valid JSON`, { cause: error });
  }
}

/** Checks the config and layer descriptors of an image manifest (see {@link validateDescriptor}). */
export function validateManifestDescriptors(manifest: ImageManifest, name: string): void {
  validateDescriptor(manifest.config, `${name} config`);
  manifest.layers.forEach((layer, i) => {
    validateDescriptor(layer, `${name} layer ${i + 1}`);
  });
}

/**
 * Checks every entry of an index (see {@link validateDescriptor}), not only the one a platform
 * picks: a size of -1 or 2^60 is refused when the index is parsed, not when a blob is read.
 */
export function validateIndexDescriptors(index: ImageIndex, name: string): void {
  index.manifests.forEach((entry, i) => {
    validateDescriptor(entry, `${name} index entry ${i + 1}`);
  });
}

/** The fields of a config's `config` irb reads, with the type each must have when present (null too: Go writes nil lists so). */
const CONTAINER_FIELDS: Record<string, 'string' | 'strings'> = {
  User: 'string',
  WorkingDir: 'string',
  Env: 'strings',
  Entrypoint: 'strings',
  Cmd: 'strings',
};

/**
 * Checks an image config's shape where irb reads it: an object with `rootfs.diff_ids` a list of
 * digests, `os`, `architecture` and `variant` strings when present, and in `config` the user,
 * working directory, environment, entrypoint and command of the types the OCI spec gives them (a
 * `Cmd` that is a string is refused, not split into letters).
 *
 * @throws IrbError `IRB_MANIFEST_INVALID` naming the field.
 */
export function validateConfig(doc: unknown, name: string): ImageConfigFile {
  const bad = (what: string) =>
    new IrbError('IRB_MANIFEST_INVALID', `${name} config ${what}; the image is malformed`);
  const object = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!object(doc) || !object(doc.rootfs) || !Array.isArray(doc.rootfs.diff_ids)) {
    throw bad('has no rootfs.diff_ids');
  }
  validateDiffIds(doc.rootfs.diff_ids, name);
  for (const key of ['os', 'architecture', 'variant']) {
    if (doc[key] !== undefined && typeof doc[key] !== 'string') throw bad(`${key} is not a string`);
  }
  const container = doc.config;
  if (container === undefined || container === null) return doc as unknown as ImageConfigFile;
  if (!object(container)) throw bad('config is not an object');
  for (const [key, kind] of Object.entries(CONTAINER_FIELDS)) {
    const value = container[key];
    if (value === undefined || value === null) continue;
    const ok =
      kind === 'string'
        ? typeof value === 'string'
        : Array.isArray(value) && value.every((v) => typeof v === 'string');
    if (!ok) throw bad(`config.${key} is not ${kind === 'string' ? 'a string' : 'a list of strings'}`);
  }
  return doc as unknown as ImageConfigFile;
}

/** Checks that every `rootfs.diff_ids` entry of a config is a digest (sha256 or sha512). */
export function validateDiffIds(diffIds: readonly unknown[], name: string): void {
  for (const id of diffIds) {
    try {
      parseDigest(typeof id === 'string' ? id : String(id));
    } catch (error) {
      throw new IrbError(
        'IRB_MANIFEST_INVALID',
        `${name}: config rootfs.diff_ids: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
}

/**
 * Checks a descriptor's `platform`, when it has one: an object whose `os` and `architecture` are
 * strings, and `variant` too when present (the fields platform matching reads as text).
 */
function validatePlatform(platform: unknown, what: string): void {
  if (platform === undefined) return;
  const p = platform as Record<string, unknown> | null;
  if (
    p === null ||
    typeof p !== 'object' ||
    Array.isArray(p) ||
    typeof p.os !== 'string' ||
    typeof p.architecture !== 'string' ||
    (p.variant !== undefined && typeof p.variant !== 'string')
  ) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${what} has a malformed platform (needs os and architecture as strings, and a string variant if any)`,
    );
  }
}

/**
 * Checks that `descriptor` has a media type, a valid digest and a size that is a whole number
 * from 0 to 2^53 - 1 (JSON numbers beyond are not exact, so no blob could be checked against them).
 */
export function validateDescriptor(descriptor: unknown, what: string): Descriptor {
  const d = descriptor as Partial<Descriptor> | undefined;
  if (
    !d ||
    typeof d !== 'object' ||
    typeof d.digest !== 'string' ||
    typeof d.size !== 'number' ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0 ||
    typeof d.mediaType !== 'string'
  ) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${what} has a malformed descriptor (needs mediaType, digest, size)`,
    );
  }
  try {
    parseDigest(d.digest);
  } catch (error) {
    throw new IrbError('IRB_MANIFEST_INVALID', `${what}: ${(error as Error).message}`, { cause: error });
  }
  validatePlatform(d.platform, what);
  return d as Descriptor;
}
