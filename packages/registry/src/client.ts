import { open, unlink } from 'node:fs/promises';
import { IrbError, isIrbError } from '@irb/errors';
import packageJson from '../package.json' with { type: 'json' };
import {
  basicAuthorization,
  type Challenge,
  credentialSecrets,
  parseChallenges,
  parseTokenAnswer,
  type ResolvedCredential,
  resolveCredential,
} from './auth.ts';
import { BlobCache, cacheWriteError, defaultCacheDir } from './cache.ts';
import { createDigestHasher, digestOf, parseDigest, verifyBytes } from './digest.ts';
import {
  backoffDelay,
  errorCode,
  type HttpResponse,
  header,
  isCertificateError,
  isPlainHttpAnswer,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  type RetryOptions,
  resolveCa,
  sleep,
  Transport,
} from './http.ts';
import {
  DOCKER_MANIFEST,
  isImageManifestMediaType,
  isIndexMediaType,
  isSchema1MediaType,
  MANIFEST_ACCEPT,
  OCI_INDEX,
  OCI_MANIFEST,
} from './media-types.ts';
import {
  checkConfigPlatform,
  DEFAULT_PLATFORM,
  formatPlatform,
  parsePlatform,
  selectManifest,
} from './platform.ts';
import { redactUrl, scrub } from './redact.ts';
import {
  formatReference,
  isLoopbackRegistry,
  parseReference,
  type Reference,
  withDigest,
} from './reference.ts';
import type {
  Descriptor,
  Image,
  ImageConfigFile,
  ImageIndex,
  ImageManifest,
  Keychain,
  Layer,
  OpenOptions,
  Platform,
  ProgressListener,
} from './types.ts';

/** Options of {@link createRegistryClient}. */
export interface RegistryClientOptions {
  /** Credential sources, asked in order; the first answer wins. Default: none (anonymous). */
  keychains?: Keychain[];
  /**
   * Registries (`host[:port]`) that may be reached over plain HTTP or HTTPS with an unverified
   * certificate. `localhost`, `127.0.0.0/8` and `::1` may always use plain HTTP. Default `[]`.
   */
  insecureRegistries?: string[];
  /**
   * Mirrors tried before the registry itself, as base URLs (`{'docker.io': ['https://mirror.example']}`).
   * Merged after the ones in `IRB_REGISTRY_MIRRORS`. Default: none.
   */
  mirrors?: Record<string, string[]>;
  /** `User-Agent` header. Default `irb-registry/<version>`. */
  userAgent?: string;
  /** Blobs downloaded at once (also the connection pool size per host). Default 4. */
  concurrency?: number;
  /** Retry policy for transient failures. */
  retry?: RetryOptions;
  /** Keep blobs in the on-disk cache. `false` uses a per-client temp dir removed by `close()`. Default true. */
  cache?: boolean;
  /** Cache directory. Default `IRB_CACHE_DIR`, else `$XDG_CACHE_HOME/irb/blobs`, else `~/.cache/irb/blobs`. */
  cacheDir?: string;
  /**
   * Milliseconds to wait for response headers or for the next body bytes before the attempt
   * counts as failed (and is retried, resuming blobs). Default 60000.
   */
  timeoutMs?: number;
  /** Extra PEM CA certificates to trust, added to Node's roots and `NODE_EXTRA_CA_CERTS`. */
  ca?: string[];
  /** Cancels everything this client does. */
  signal?: AbortSignal;
  /** Receives blob progress events for every transfer. */
  onProgress?: ProgressListener;
  /** Platform used when a call gives none. Default `linux/amd64`. */
  platform?: Platform | string;
  /**
   * Opening one layer of an image starts downloading all its layers in the background
   * (`concurrency` at a time, base first), so a consumer reading layers one by one still gets
   * parallel downloads. Default true.
   */
  readAhead?: boolean;
}

/** Options for a single client call. */
export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/** Options of {@link RegistryClient.image}. */
export interface ImageOptions extends CallOptions {
  /** `os/arch[/variant]` or a Platform. Default: the client's platform (`linux/amd64`). */
  platform?: Platform | string;
}

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

const VERSION: string = packageJson.version;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;
const DEFAULT_RETRY: Required<RetryOptions> = { retries: 4, baseDelayMs: 250, maxDelayMs: 20_000 };

interface Endpoint {
  /** Registry name given to keychains (`docker.io`, or the mirror's host). */
  registry: string;
  /** `scheme://host[:port]` plus an optional path prefix; no trailing slash. */
  base: string;
  /** Host for scheme decisions (`host[:port]`). */
  host: string;
  mirror: boolean;
  /** Scheme fixed by configuration (mirror URL) or `undefined` to negotiate. */
  scheme: 'https' | 'http' | undefined;
}

interface AuthState {
  challenge: Challenge | undefined;
  resolved: Promise<ResolvedCredential> | undefined;
}

/** Thrown internally when a body ended early; retried with a Range request. */
class ShortBody extends Error {
  readonly code = 'IRB_BODY_TRUNCATED';
}

/** Parses `IRB_REGISTRY_MIRRORS` (`docker.io=https://a,docker.io=https://b,ghcr.io=https://c`). */
export function parseMirrorsEnv(value: string | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (!value) return out;
  for (const entry of value.split(/[,;\s]+/)) {
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0 || eq === entry.length - 1) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `IRB_REGISTRY_MIRRORS entry "${entry}" is not registry=URL (e.g. docker.io=https://mirror.example)`,
      );
    }
    const registry = entry.slice(0, eq);
    const url = entry.slice(eq + 1);
    const list = out[registry] ?? [];
    list.push(url);
    out[registry] = list;
  }
  return out;
}

function validateMirror(registry: string, raw: string): Endpoint {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `mirror "${redactUrl(raw)}" for ${registry} is not a URL; write it as https://host[:port][/prefix]`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `mirror ${redactUrl(raw)} for ${registry} must be an http(s) URL`,
    );
  }
  if (url.username || url.password) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `mirror ${redactUrl(raw)} for ${registry} has credentials in its URL; supply them through a keychain instead`,
    );
  }
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v2$/, '');
  return {
    registry: url.host,
    base: `${url.protocol}//${url.host}${path}`,
    host: url.host,
    mirror: true,
    scheme: url.protocol === 'https:' ? 'https' : 'http',
  };
}

/** A semaphore limiting parallel blob downloads. */
class Limiter {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(size: number) {
    this.#free = size;
  }
  async run<T>(task: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (this.#free > 0) this.#free--;
    else {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const at = this.#waiting.indexOf(wake);
          if (at !== -1) this.#waiting.splice(at, 1);
          reject(signal?.reason);
        };
        this.#waiting.push(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

function combineSignals(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  return AbortSignal.any(present);
}

/**
 * What a cancelled operation rejects with: the signal's reason, as fetch and Node's streams do
 * (an `AbortError` DOMException unless the caller gave a reason; `IRB_CLIENT_CLOSED` after close()).
 */
function abortError(_what: string, signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function toPlatform(value: Platform | string | undefined, fallback: Platform): Platform {
  if (value === undefined) return fallback;
  return typeof value === 'string' ? parsePlatform(value) : value;
}

function validateDescriptor(descriptor: unknown, what: string): Descriptor {
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
  return d as Descriptor;
}

/**
 * A client for OCI distribution registries (Docker Hub, GHCR, ECR, Harbor, distribution, …).
 *
 * It holds state worth sharing across pulls: connection pools, bearer tokens per scope,
 * resolved credentials, the negotiated scheme per host and the blob cache. Create one per
 * process (or per build) and `close()` it when done.
 */
export class RegistryClient {
  readonly #keychains: Keychain[];
  readonly #insecure: Set<string>;
  readonly #mirrors: Record<string, string[]>;
  readonly #retry: Required<RetryOptions>;
  readonly #transport: Transport;
  readonly #signal: AbortSignal | undefined;
  /** Aborted by close(): stops background read-ahead and any transfer still running. */
  readonly #closing = new AbortController();
  readonly #readAhead: boolean;
  readonly #onProgress: ProgressListener | undefined;
  readonly #platform: Platform;
  readonly #limiter: Limiter;
  readonly #cacheEnabled: boolean;
  readonly #cacheDir: string;
  #cache: Promise<BlobCache> | undefined;
  readonly #schemes = new Map<string, 'https' | 'http'>();
  readonly #auth = new Map<string, AuthState>();
  readonly #tokens = new Map<string, { token: string; expiresAt: number }>();
  readonly #inflight = new Map<string, { task: Promise<void>; signal: AbortSignal | undefined }>();
  readonly #secrets = new Set<string>();
  #closed = false;

  constructor(options: RegistryClientOptions = {}) {
    this.#keychains = [...(options.keychains ?? [])];
    // Accept what people paste: `http://host:5000/` means `host:5000`.
    this.#insecure = new Set(
      (options.insecureRegistries ?? []).map((r) =>
        r
          .trim()
          .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
          .replace(/\/+$/, '')
          .toLowerCase(),
      ),
    );
    const fromEnv = parseMirrorsEnv(process.env.IRB_REGISTRY_MIRRORS);
    const mirrors: Record<string, string[]> = { ...fromEnv };
    for (const [registry, urls] of Object.entries(options.mirrors ?? {})) {
      mirrors[registry] = [...(mirrors[registry] ?? []), ...urls];
    }
    // Docker Hub goes by several names; references always normalize to docker.io.
    for (const alias of ['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']) {
      const urls = mirrors[alias];
      if (!urls) continue;
      mirrors['docker.io'] = [...(mirrors['docker.io'] ?? []), ...urls];
      delete mirrors[alias];
    }
    for (const [registry, urls] of Object.entries(mirrors))
      for (const url of urls) validateMirror(registry, url);
    this.#mirrors = mirrors;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new IrbError('IRB_OPTION_INVALID', `concurrency must be a whole number ≥ 1, got ${concurrency}`);
    }
    this.#limiter = new Limiter(concurrency);
    this.#transport = new Transport({
      userAgent: options.userAgent ?? `irb-registry/${VERSION}`,
      connections: Math.max(concurrency, 2),
      ca: resolveCa(options.ca),
      timeoutMs: options.timeoutMs ?? 60_000,
    });
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) {
      const value = process.env[name];
      if (!value) continue;
      try {
        const url = new URL(value);
        if (url.password) this.#secrets.add(decodeURIComponent(url.password)).add(url.password);
        if (url.username && url.password) this.#secrets.add(`${url.username}:${url.password}`);
      } catch {
        // undici reports a malformed proxy URL itself
      }
    }
    this.#signal = combineSignals(options.signal, this.#closing.signal);
    this.#readAhead = options.readAhead !== false;
    this.#onProgress = options.onProgress;
    this.#platform = toPlatform(options.platform, DEFAULT_PLATFORM);
    this.#cacheEnabled = options.cache !== false;
    this.#cacheDir = options.cacheDir ?? defaultCacheDir();
  }

  /** The blob cache in use (a temp dir when caching is off). */
  async cache(): Promise<BlobCache> {
    if (this.#closed)
      throw new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed; create a new one');
    this.#cache ??= this.#cacheEnabled
      ? Promise.resolve(new BlobCache(this.#cacheDir))
      : BlobCache.createTemporary();
    return this.#cache;
  }

  /**
   * Resolves `reference` to a single-platform image: fetches and verifies the manifest
   * (selecting `platform` from an index) and the config, and checks the platform.
   * Layers are downloaded when opened or by `image.prefetch()`.
   */
  async image(reference: string | Reference, options: ImageOptions = {}): Promise<RegistryImage> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const platform = toPlatform(options.platform, this.#platform);
    const signal = combineSignals(this.#signal, options.signal);
    const name = formatReference(ref);
    const top = await this.manifest(ref, signal ? { signal } : {});
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
      chosen = await this.manifest(withDigest(ref, descriptor.digest), {
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
    const configBytes = await this.blobBytes(ref, manifest.config, {
      ...(signal ? { signal } : {}),
      maxBytes: MAX_CONFIG_BYTES,
    });
    let config: ImageConfigFile;
    try {
      config = JSON.parse(new TextDecoder().decode(configBytes)) as ImageConfigFile;
    } catch (error) {
      throw new IrbError('IRB_MANIFEST_INVALID', `${name}: the image config is not valid JSON`, {
        cause: error,
      });
    }
    if (checkConfig) checkConfigPlatform(config, platform, name);
    const diffIds = config.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length) {
      throw new IrbError(
        'IRB_MANIFEST_INVALID',
        `${name}: the config lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff_ids for ${manifest.layers.length} layers; the image is malformed`,
      );
    }
    for (const id of diffIds) {
      try {
        parseDigest(id);
      } catch (error) {
        throw new IrbError(
          'IRB_MANIFEST_INVALID',
          `${name}: config rootfs.diff_ids: ${(error as Error).message}`,
        );
      }
    }
    return new RegistryImage(this, withDigest(ref, chosen.digest), name, platform, chosen, manifest, config);
  }

  /**
   * Fetches a manifest or index by tag or digest, verified: by digest against the digest, by
   * tag against `Docker-Content-Digest` when the registry sends it. Cached by digest, so a
   * warm pull by tag costs one HEAD request and a pull by digest none.
   */
  async manifest(
    reference: string | Reference,
    options: { signal?: AbortSignal; expected?: Descriptor } = {},
  ): Promise<FetchedManifest> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const signal = combineSignals(this.#signal, options.signal);
    const name = formatReference(ref);
    const cache = await this.cache();
    const expected = options.expected;
    if (ref.digest) {
      const cached = await cache.readBytes(ref.digest, expected?.size);
      if (cached) return this.#parseManifest(name, cached, ref.digest, expected?.mediaType);
    } else if (this.#cacheEnabled) {
      const res = await this.#request(
        ref,
        'HEAD',
        `manifests/${ref.identifier}`,
        { accept: MANIFEST_ACCEPT },
        signal,
        name,
      );
      await res.body.dump().catch(() => undefined);
      if (res.status === 404) throw this.#notFound(name, undefined);
      const digest = header(res.headers, 'docker-content-digest');
      if (res.status === 200 && digest) {
        let valid = true;
        try {
          parseDigest(digest);
        } catch {
          valid = false;
        }
        const cached = valid ? await cache.readBytes(digest) : undefined;
        if (cached) return this.#parseManifest(name, cached, digest, header(res.headers, 'content-type'));
      }
    }
    const res = await this.#request(
      ref,
      'GET',
      `manifests/${ref.identifier}`,
      { accept: MANIFEST_ACCEPT },
      signal,
      name,
    );
    if (res.status === 404) throw this.#notFound(name, this.#clean(await readErrorBody(res)));
    if (res.status !== 200) throw await this.#statusError(res, name, 'manifest');
    const declared = Number(header(res.headers, 'content-length'));
    if (declared > MAX_MANIFEST_BYTES) {
      await res.body.dump().catch(() => undefined);
      throw new IrbError(
        'IRB_MANIFEST_INVALID',
        `${name}: manifest is ${declared} bytes, over the 4 MiB limit`,
      );
    }
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, name);
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
    const parsed = this.#parseManifest(
      name,
      bytes,
      digest,
      expected?.mediaType ?? header(res.headers, 'content-type'),
    );
    await cache.writeBytes(digest, bytes);
    return parsed;
  }

  #parseManifest(
    name: string,
    bytes: Uint8Array,
    digest: string,
    contentType: string | undefined,
  ): FetchedManifest {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    } catch (error) {
      throw new IrbError('IRB_MANIFEST_INVALID', `${name}: the manifest is not valid JSON`, { cause: error });
    }
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
              ? (json.config as { mediaType?: string }).mediaType?.startsWith('application/vnd.docker')
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
      validateDescriptor(json.config, `${name} config`);
      json.layers.forEach((layer, i) => {
        validateDescriptor(layer, `${name} layer ${i + 1}`);
      });
      const configType = (json.config as Descriptor).mediaType;
      if (
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
   * Makes sure blobs are in the cache (downloaded in parallel, `concurrency` at a time, each
   * verified before it becomes visible). Resolves when all are there.
   */
  async fetchBlobs(
    reference: string | Reference,
    descriptors: readonly Descriptor[],
    options: CallOptions = {},
  ): Promise<void> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const signal = combineSignals(this.#signal, options.signal);
    const controller = new AbortController();
    const both = combineSignals(signal, controller.signal);
    // First failure cancels the siblings so no download is left running behind an error.
    const results = await Promise.allSettled(
      descriptors.map((d) =>
        this.#ensureBlob(ref, d, both, options.onProgress).catch((error: unknown) => {
          controller.abort(error);
          throw error;
        }),
      ),
    );
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // The first failure (or the caller's abort reason) is what every sibling was cancelled with.
    if (failure) throw signal?.aborted ? signal.reason : controller.signal.reason;
  }

  /** True when opening a layer should start downloading the image's other layers. */
  get readAhead(): boolean {
    return this.#readAhead;
  }

  /** A verified stream of a blob: downloaded into the cache first, then read from it. */
  async *openBlob(
    reference: string | Reference,
    descriptor: Descriptor,
    options: CallOptions = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const signal = combineSignals(this.#signal, options.signal);
    await this.#ensureBlob(ref, descriptor, signal, options.onProgress);
    const cache = await this.cache();
    yield* cache.open(descriptor.digest, descriptor.size, signal);
  }

  /** A small blob's bytes (configs), verified. */
  async blobBytes(
    reference: string | Reference,
    descriptor: Descriptor,
    options: CallOptions & { maxBytes?: number } = {},
  ): Promise<Uint8Array> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    if (options.maxBytes !== undefined && descriptor.size > options.maxBytes) {
      throw new IrbError(
        'IRB_MANIFEST_INVALID',
        `${formatReference(ref)}: blob ${descriptor.digest} claims ${descriptor.size} bytes, over the ${options.maxBytes}-byte limit for this kind of blob`,
      );
    }
    const signal = combineSignals(this.#signal, options.signal);
    const cache = await this.cache();
    for (let round = 0; round < 2; round++) {
      await this.#ensureBlob(ref, descriptor, signal, options.onProgress);
      const bytes = await cache.readBytes(descriptor.digest, descriptor.size);
      if (bytes) return bytes;
    }
    throw new IrbError(
      'IRB_CACHE_MISS',
      `blob ${descriptor.digest} vanished from the cache (${cache.dir}) twice; is something deleting it?`,
    );
  }

  async #ensureBlob(
    ref: Reference,
    descriptor: Descriptor,
    signal: AbortSignal | undefined,
    onProgress: ProgressListener | undefined,
  ): Promise<void> {
    validateDescriptor(descriptor, formatReference(ref));
    const progress = (event: Parameters<ProgressListener>[0]) => {
      this.#onProgress?.(event);
      onProgress?.(event);
    };
    const cache = await this.cache();
    const { digest, size } = descriptor;
    for (;;) {
      if (signal?.aborted) throw abortError(`download of ${digest}`, signal);
      if (await cache.has(digest, size)) {
        progress({ type: 'blob', digest, done: size, total: size, phase: 'cache' });
        return;
      }
      const running = this.#inflight.get(digest);
      if (!running) break;
      try {
        await running.task;
      } catch (error) {
        // Someone else's cancelled download is not our failure: try ourselves.
        if (!running.signal?.aborted || signal?.aborted) throw error;
      }
    }
    const task = this.#limiter
      .run(() => this.#download(ref, descriptor, signal, progress), signal)
      .catch((error: unknown) => {
        if (signal?.aborted) throw abortError(`download of ${digest}`, signal);
        throw error;
      });
    const entry = { task, signal };
    this.#inflight.set(digest, entry);
    try {
      await task;
    } finally {
      if (this.#inflight.get(digest) === entry) this.#inflight.delete(digest);
    }
  }

  async #download(
    ref: Reference,
    descriptor: Descriptor,
    signal: AbortSignal | undefined,
    progress: ProgressListener,
  ): Promise<void> {
    const cache = await this.cache();
    const { digest, size } = descriptor;
    const name = formatReference(ref);
    const staged = await cache.stage(digest);
    const handle = await open(staged.path, 'w').catch((error: unknown) => {
      throw cacheWriteError(cache.dir, error);
    });
    let closed = false;
    try {
      let hasher = createDigestHasher(digest);
      let offset = 0;
      let lastError: unknown;
      let totalAttempts = 0;
      let verified = false;
      const endpoints = this.#endpoints(ref);
      tryEndpoints: for (const endpoint of endpoints) {
        for (let attempt = 0; ; attempt++) {
          if (signal?.aborted) throw abortError(`download of ${digest} from ${name}`, signal);
          // Another client or process may have stored it while we queued or retried.
          if (await cache.has(digest, size)) {
            progress({ type: 'blob', digest, done: size, total: size, phase: 'cache' });
            return;
          }
          const offsetAtStart = offset;
          totalAttempts++;
          try {
            const headers: Record<string, string> = {};
            if (offset > 0) headers.range = `bytes=${offset}-`;
            const res = await this.#requestAt(endpoint, ref, 'GET', `blobs/${digest}`, headers, signal, name);
            if (res.status === 404) {
              await res.body.dump().catch(() => undefined);
              throw new IrbError(
                'IRB_IMAGE_NOT_FOUND',
                `blob ${digest} of ${name} is not in the registry (404); the image is incomplete there`,
              );
            }
            let start = 0;
            if (res.status === 206) {
              const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res.headers, 'content-range') ?? '');
              start = range ? Number(range[1]) : -1;
            } else if (res.status !== 200) {
              throw await this.#statusError(res, name, `blob ${digest}`);
            }
            if (start !== offset) {
              if (start !== 0 && res.status === 206) {
                // A range we did not ask for: start over rather than guess.
                await res.body.dump().catch(() => undefined);
                await handle.truncate(0);
                hasher = createDigestHasher(digest);
                offset = 0;
                throw new ShortBody('unexpected Content-Range');
              }
              // The server ignored Range (200): discard what we had.
              await handle.truncate(0);
              hasher = createDigestHasher(digest);
              offset = 0;
            }
            for await (const chunk of res.body as AsyncIterable<Buffer>) {
              if (offset + chunk.byteLength > size) {
                throw new IrbError(
                  'IRB_SIZE_MISMATCH',
                  `blob ${digest} of ${name}: the registry sent more than the ${size} bytes the manifest declares; the content was discarded`,
                );
              }
              hasher.update(chunk);
              await handle.write(chunk, 0, chunk.byteLength, offset).catch((error: unknown) => {
                throw cacheWriteError(cache.dir, error);
              });
              offset += chunk.byteLength;
              progress({ type: 'blob', digest, done: offset, total: size, phase: 'network' });
            }
            if (offset < size) throw new ShortBody(`body ended after ${offset} of ${size} bytes`);
            const actual = `${parseDigest(digest).algorithm}:${hasher.digest('hex')}`;
            if (actual !== digest) {
              throw new IrbError(
                'IRB_DIGEST_MISMATCH',
                `blob ${digest} of ${name}${endpoint.mirror ? ` (from mirror ${endpoint.host})` : ''}: the downloaded bytes hash to ${actual}; they are corrupt or were tampered with and were discarded (nothing was cached)`,
              );
            }
            verified = true;
            break tryEndpoints;
          } catch (error) {
            if (signal?.aborted) throw abortError(`download of ${digest} from ${name}`, signal);
            lastError = error;
            const transient = error instanceof ShortBody || isRetryableNetworkError(error);
            // An attempt that moved the download forward does not use up a retry: offsets only
            // grow, so a flaky but working connection still finishes a large layer.
            if (transient && offset > offsetAtStart && totalAttempts < 10 * (this.#retry.retries + 1))
              attempt = -1;
            if (transient && attempt < this.#retry.retries) {
              await sleep(backoffDelay(Math.max(attempt, 0), this.#retry), signal).catch(() => {
                throw abortError(`download of ${digest} from ${name}`, signal as AbortSignal);
              });
              continue;
            }
            if (endpoint.mirror) {
              // A mirror failing is not fatal: fall back to the next mirror or the origin, from scratch.
              await handle.truncate(0);
              hasher = createDigestHasher(digest);
              offset = 0;
              continue tryEndpoints;
            }
            if (error instanceof ShortBody || (transient && !isIrbError(error))) {
              throw new IrbError(
                'IRB_REGISTRY_UNREACHABLE',
                `download of blob ${digest} from ${name} kept failing after ${totalAttempts} attempts (${offset} of ${size} bytes received): ${this.#clean(String((error as Error).message))}; check the network and retry`,
                { cause: this.#safeCause(error) },
              );
            }
            throw error;
          }
        }
      }
      if (!verified) throw lastError;
      // No fsync before the rename: every read of a cached blob is verified against its digest,
      // so a file a crash left damaged is found, removed and fetched again. Syncing every layer
      // would put the disk's write-back time on every cold build.
      await handle.close();
      closed = true;
      await cache.commit(staged);
      progress({ type: 'blob', digest, done: size, total: size, phase: 'done' });
    } finally {
      if (!closed) await handle.close().catch(() => undefined);
      await unlink(staged.path).catch(() => undefined);
    }
  }

  #endpoints(ref: Reference): Endpoint[] {
    const mirrors = (this.#mirrors[ref.registry] ?? []).map((url) => validateMirror(ref.registry, url));
    return [
      ...mirrors,
      { registry: ref.registry, base: '', host: ref.apiHost, mirror: false, scheme: undefined },
    ];
  }

  /** A request against the first endpoint that answers (mirrors first), for manifests. */
  async #request(
    ref: Reference,
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    name: string,
  ): Promise<HttpResponse> {
    const endpoints = this.#endpoints(ref);
    for (const endpoint of endpoints) {
      if (!endpoint.mirror) return this.#requestAt(endpoint, ref, method, path, headers, signal, name);
      try {
        const res = await this.#requestAt(endpoint, ref, method, path, headers, signal, name);
        if (res.status === 200) return res;
        await res.body.dump().catch(() => undefined);
      } catch {
        // A failing mirror is skipped; the origin is the last word.
        if (signal?.aborted) throw abortError(`request to ${name}`, signal);
      }
    }
    throw new IrbError('IRB_REGISTRY_UNREACHABLE', `no endpoint for ${name}`);
  }

  #schemeFor(endpoint: Endpoint): {
    scheme: 'https' | 'http';
    mayDowngrade: boolean;
    skipTlsVerify: boolean;
  } {
    if (endpoint.scheme) return { scheme: endpoint.scheme, mayDowngrade: false, skipTlsVerify: false };
    const listed =
      this.#insecure.has(endpoint.host.toLowerCase()) || this.#insecure.has(endpoint.registry.toLowerCase());
    const mayDowngrade = listed || isLoopbackRegistry(endpoint.host);
    return { scheme: this.#schemes.get(endpoint.host) ?? 'https', mayDowngrade, skipTlsVerify: listed };
  }

  /**
   * One logical request to one endpoint: negotiates the scheme, authenticates (anonymous →
   * challenge → token/basic), retries transient failures with backoff (honouring Retry-After).
   * Returns any final response; the caller handles statuses other than 401/408/429/5xx.
   */
  async #requestAt(
    endpoint: Endpoint,
    ref: Reference,
    method: 'GET' | 'HEAD',
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    name: string,
  ): Promise<HttpResponse> {
    const authKey = `${endpoint.host}|${ref.repository}`;
    let state = this.#auth.get(authKey);
    if (!state) {
      state = { challenge: this.#challengeFor(endpoint.host), resolved: undefined };
      this.#auth.set(authKey, state);
    }
    let authTried = false;
    let attempt = 0;
    for (;;) {
      if (signal?.aborted) throw abortError(`request to ${name}`, signal);
      const { scheme, mayDowngrade, skipTlsVerify } = this.#schemeFor(endpoint);
      const url = new URL(
        `${scheme}://${endpoint.host}${endpoint.base ? new URL(endpoint.base).pathname : ''}/v2/${ref.repository}/${path}`,
      );
      const authorization = state.challenge
        ? await this.#authorization(endpoint, ref, state, signal, false)
        : undefined;
      let res: HttpResponse;
      try {
        res = await this.#transport.send(
          {
            url,
            method,
            headers: { ...headers, ...(authorization ? { authorization } : {}) },
            signal,
          },
          { skipTlsVerify },
        );
      } catch (error) {
        if (signal?.aborted) throw abortError(`request to ${name}`, signal);
        if (isIrbError(error)) throw error;
        if (
          scheme === 'https' &&
          (isPlainHttpAnswer(error) || (mayDowngrade && errorCode(error) === 'ECONNREFUSED'))
        ) {
          if (mayDowngrade && !this.#schemes.has(endpoint.host)) {
            this.#schemes.set(endpoint.host, 'http');
            continue;
          }
          if (!mayDowngrade) {
            throw new IrbError(
              'IRB_REGISTRY_INSECURE',
              `registry ${endpoint.host} answers in plain HTTP; irb uses plain HTTP only for localhost and registries marked insecure. If you trust the network, allow it with insecureRegistries: ['${endpoint.host}'] (CLI: --insecure-registry ${endpoint.host})`,
              { cause: this.#safeCause(error) },
            );
          }
        }
        if (isCertificateError(error)) {
          throw new IrbError(
            'IRB_TLS_FAILED',
            `the TLS certificate of ${endpoint.host} is not trusted (${errorCode(error)}); add its CA with NODE_EXTRA_CA_CERTS=/path/ca.pem (or the ca option), or mark the registry insecure if you accept the risk`,
            { cause: this.#safeCause(error) },
          );
        }
        if (isRetryableNetworkError(error) && attempt < this.#retry.retries) {
          await this.#wait(attempt++, undefined, signal, name);
          continue;
        }
        throw new IrbError(
          'IRB_REGISTRY_UNREACHABLE',
          `cannot reach registry ${endpoint.host} for ${name}: ${errorCode(error) ?? this.#clean((error as Error).message)}${attempt > 0 ? ` (after ${attempt + 1} attempts)` : ''}; check the registry name, your network and proxy settings (HTTPS_PROXY, NO_PROXY)`,
          { cause: this.#safeCause(error) },
        );
      }
      if (res.status === 401) {
        const text = this.#clean(await readErrorBody(res));
        const challenge = parseChallenges(header(res.headers, 'www-authenticate') ?? '').find(
          (c) => c.scheme === 'bearer' || c.scheme === 'basic',
        );
        if (!challenge) {
          throw new IrbError(
            'IRB_REGISTRY_UNAUTHORIZED',
            `registry ${endpoint.host} refused ${name} (401) without saying how to authenticate${text ? `: ${text}` : ''}`,
          );
        }
        if (authTried) throw await this.#unauthorized(endpoint, state, name, text);
        authTried = true;
        state.challenge = challenge;
        this.#rememberChallenge(endpoint.host, challenge);
        await this.#authorization(endpoint, ref, state, signal, true);
        continue;
      }
      if (res.status === 403) {
        const text = this.#clean(await readErrorBody(res));
        throw new IrbError(
          'IRB_REGISTRY_UNAUTHORIZED',
          `registry ${endpoint.host} denied access to ${name} (403)${text ? `: ${text}` : ''}; the credentials${await this.#keychainNote(state)} lack pull permission for ${ref.repository}`,
        );
      }
      if (isRetryableStatus(res.status) && attempt < this.#retry.retries) {
        const retryAfter = parseRetryAfter(header(res.headers, 'retry-after'));
        await res.body.dump().catch(() => undefined);
        await this.#wait(attempt++, retryAfter, signal, name);
        continue;
      }
      return res;
    }
  }

  async #wait(
    attempt: number,
    retryAfter: number | undefined,
    signal: AbortSignal | undefined,
    name: string,
  ): Promise<void> {
    try {
      await sleep(backoffDelay(attempt, this.#retry, retryAfter), signal);
    } catch {
      throw abortError(`request to ${name}`, signal as AbortSignal);
    }
  }

  readonly #challenges = new Map<string, Challenge>();
  #challengeFor(host: string): Challenge | undefined {
    return this.#challenges.get(host);
  }
  #rememberChallenge(host: string, challenge: Challenge): void {
    this.#challenges.set(host, challenge);
  }

  async #credential(endpoint: Endpoint, ref: Reference, state: AuthState, signal: AbortSignal | undefined) {
    state.resolved ??= resolveCredential(
      this.#keychains,
      { registry: endpoint.registry, repository: ref.repository },
      signal,
    );
    let resolved: ResolvedCredential;
    try {
      resolved = await state.resolved;
    } catch (error) {
      state.resolved = undefined;
      throw error;
    }
    for (const secret of credentialSecrets(resolved.credential)) this.#secrets.add(secret);
    return resolved;
  }

  /** The Authorization header for the endpoint's current challenge; `fresh` skips the token cache. */
  async #authorization(
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    signal: AbortSignal | undefined,
    fresh: boolean,
  ): Promise<string | undefined> {
    const challenge = state.challenge;
    if (!challenge) return undefined;
    const { credential } = await this.#credential(endpoint, ref, state, signal);
    if (credential.kind === 'bearer') return `Bearer ${credential.token}`;
    if (challenge.scheme === 'basic') {
      return credential.kind === 'basic'
        ? basicAuthorization(credential.username, credential.password)
        : undefined;
    }
    const realm = challenge.params.realm;
    if (!realm) {
      throw new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} sent a Bearer challenge without a realm`,
      );
    }
    const scopes = [`repository:${ref.repository}:pull`];
    const asked = challenge.params.scope;
    if (asked && fresh) for (const s of asked.split(' ')) if (s && !scopes.includes(s)) scopes.push(s);
    const service = challenge.params.service ?? '';
    const key = `${realm}|${service}|${scopes.join(' ')}|${endpoint.registry}|${ref.repository}`;
    const cached = this.#tokens.get(key);
    if (!fresh && cached && cached.expiresAt > Date.now() + 5_000) return `Bearer ${cached.token}`;
    const token = await this.#fetchToken(endpoint, ref, state, realm, service, scopes, signal);
    this.#tokens.set(key, token);
    this.#secrets.add(token.token);
    return `Bearer ${token.token}`;
  }

  async #fetchToken(
    endpoint: Endpoint,
    ref: Reference,
    state: AuthState,
    realm: string,
    service: string,
    scopes: string[],
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresAt: number }> {
    const { credential, keychain } = await this.#credential(endpoint, ref, state, signal);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} named an invalid token realm`,
      );
    }
    if (
      realmUrl.protocol === 'http:' &&
      !isLoopbackRegistry(realmUrl.host) &&
      !this.#insecure.has(endpoint.host)
    ) {
      throw new IrbError(
        'IRB_REGISTRY_INSECURE',
        `registry ${endpoint.host} asks for credentials at a plain-HTTP token service (${redactUrl(realmUrl)}); refusing to send them unencrypted. Mark the registry insecure if you accept that`,
      );
    }
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        if (credential.kind === 'identity-token') {
          const form = new URLSearchParams({
            grant_type: 'refresh_token',
            refresh_token: credential.token,
            service,
            client_id: 'irb',
          });
          for (const s of scopes) form.append('scope', s);
          res = await this.#transport.send({
            url: realmUrl,
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form.toString(),
            signal,
          });
        } else {
          const url = new URL(realmUrl);
          if (service) url.searchParams.set('service', service);
          for (const s of scopes) url.searchParams.append('scope', s);
          const headers: Record<string, string> = {};
          if (credential.kind === 'basic') {
            headers.authorization = basicAuthorization(credential.username, credential.password);
          }
          res = await this.#transport.send({ url, method: 'GET', headers, signal });
        }
      } catch (error) {
        if (signal?.aborted) throw abortError(`authentication with ${endpoint.host}`, signal);
        if (isIrbError(error)) throw error;
        if (isRetryableNetworkError(error) && attempt < this.#retry.retries) {
          await this.#wait(attempt, undefined, signal, `token for ${ref.repository}`);
          continue;
        }
        throw new IrbError(
          'IRB_REGISTRY_UNREACHABLE',
          `cannot reach the token service of ${endpoint.host} (${redactUrl(realmUrl)}): ${errorCode(error) ?? 'connection failed'}`,
          { cause: this.#safeCause(error) },
        );
      }
      if (isRetryableStatus(res.status) && attempt < this.#retry.retries) {
        const retryAfter = parseRetryAfter(header(res.headers, 'retry-after'));
        await res.body.dump().catch(() => undefined);
        await this.#wait(attempt, retryAfter, signal, `token for ${ref.repository}`);
        continue;
      }
      const text = await readText(res, 256 * 1024);
      if (res.status === 401 || res.status === 403) {
        throw new IrbError(
          'IRB_REGISTRY_UNAUTHORIZED',
          credential.kind === 'anonymous'
            ? `registry ${endpoint.host} requires credentials for ${ref.repository} and no keychain supplied any; log in (e.g. docker login ${endpoint.registry}) or configure a keychain`
            : `registry ${endpoint.host} rejected the ${credential.kind === 'identity-token' ? 'identity token' : 'username/password'} from keychain "${keychain}" (token service answered ${res.status}): the password or token is wrong or expired; log in again (docker login ${endpoint.registry}) or fix the credentials`,
        );
      }
      if (res.status !== 200) {
        throw new IrbError(
          'IRB_REGISTRY_FAILED',
          `the token service of ${endpoint.host} answered ${res.status}${text ? `: ${this.#clean(summarize(text))}` : ''}`,
        );
      }
      const answer = parseTokenAnswer(text);
      if (!answer) {
        throw new IrbError('IRB_REGISTRY_FAILED', `the token service of ${endpoint.host} sent no token`);
      }
      return answer;
    }
  }

  async #keychainNote(state: AuthState): Promise<string> {
    if (!state.resolved) return '';
    try {
      const { keychain } = await state.resolved;
      return keychain ? ` from keychain "${keychain}"` : ' (anonymous)';
    } catch {
      return '';
    }
  }

  async #unauthorized(endpoint: Endpoint, state: AuthState, name: string, text: string): Promise<IrbError> {
    const resolved = state.resolved ? await state.resolved.catch(() => undefined) : undefined;
    if (!resolved || resolved.credential.kind === 'anonymous') {
      return new IrbError(
        'IRB_REGISTRY_UNAUTHORIZED',
        `registry ${endpoint.host} requires authentication for ${name} and no keychain supplied credentials (or the repository does not exist)${text ? `: ${text}` : ''}; log in (e.g. docker login ${endpoint.registry}) or configure a keychain`,
      );
    }
    return new IrbError(
      'IRB_REGISTRY_UNAUTHORIZED',
      `registry ${endpoint.host} rejected the credentials from keychain "${resolved.keychain}" for ${name}${text ? `: ${text}` : ''}; the username or password is wrong or lacks access — log in again (docker login ${endpoint.registry}) or fix the credentials`,
    );
  }

  #notFound(name: string, text: string | undefined): IrbError {
    return new IrbError(
      'IRB_IMAGE_NOT_FOUND',
      `image ${name} not found: the repository or tag does not exist${text ? ` (${text})` : ''}; check the name and tag`,
    );
  }

  async #statusError(res: HttpResponse, name: string, what: string): Promise<IrbError> {
    const text = this.#clean(await readErrorBody(res));
    if (res.status === 429) {
      return new IrbError(
        'IRB_REGISTRY_RATE_LIMITED',
        `registry rate limit hit fetching the ${what} of ${name} (429) even after retrying${text ? `: ${text}` : ''}; wait, log in for a higher limit, or use a mirror`,
      );
    }
    return new IrbError(
      res.status >= 500 ? 'IRB_REGISTRY_FAILED' : 'IRB_REGISTRY_FAILED',
      `registry answered ${res.status} fetching the ${what} of ${name}${res.status >= 500 ? ' even after retrying' : ''}${text ? `: ${text}` : ''}`,
    );
  }

  #clean(text: string): string {
    return scrub(text, this.#secrets);
  }

  /**
   * A copy of a low-level error (and its causes) with known secrets scrubbed from the messages:
   * transport errors can quote a proxy URL with its password, and causes get printed.
   */
  #safeCause(error: unknown, depth = 0): unknown {
    if (!(error instanceof Error) || depth > 4 || isIrbError(error)) return error;
    const copy = new Error(this.#clean(error.message), {
      ...(error.cause !== undefined ? { cause: this.#safeCause(error.cause, depth + 1) } : {}),
    }) as Error & { code?: unknown };
    copy.name = error.name;
    const code = (error as { code?: unknown }).code;
    if (code !== undefined) copy.code = code;
    return copy;
  }

  /** Closes connections and removes the temporary cache (when caching is off). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Cancel what is still running (read-ahead included) and let it clean up its temp files.
    this.#closing.abort(new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed'));
    await Promise.allSettled([...this.#inflight.values()].map((e) => e.task));
    await this.#transport.close().catch(() => this.#transport.destroy());
    const cache = await this.#cache?.catch(() => undefined);
    await cache?.dispose();
  }

  /** `await using client = createRegistryClient()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function readText(res: HttpResponse, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (length < limit) chunks.push(chunk);
      length += chunk.byteLength;
    }
  } catch {
    // An unreadable error body must not hide the status we already have.
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit);
}

function summarize(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 200 ? `${oneLine.slice(0, 197)}...` : oneLine;
}

/** The registry's error list (`{"errors":[{"code","message"}]}`) as one short line. */
async function readErrorBody(res: HttpResponse): Promise<string> {
  const text = await readText(res, 64 * 1024);
  if (!text) return '';
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (Array.isArray(parsed.errors)) {
      return summarize(parsed.errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; '));
    }
  } catch {
    // Not JSON: fall through to a short excerpt.
  }
  return /^\s*</.test(text) ? '' : summarize(text);
}

async function readLimited(res: HttpResponse, limit: number, name: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    length += chunk.byteLength;
    if (length > limit) {
      res.body.destroy();
      throw new IrbError('IRB_MANIFEST_INVALID', `${name}: manifest is larger than the 4 MiB limit`);
    }
    chunks.push(chunk);
  }
  const buffer = Buffer.concat(chunks);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** A layer of a registry image; `open()` downloads into the verified cache, then streams from it. */
class RegistryLayer implements Layer {
  readonly digest: string;
  readonly diffId: string;
  readonly mediaType: string;
  readonly size: number;
  /** The descriptor from the manifest. */
  readonly descriptor: Descriptor;
  readonly #client: RegistryClient;
  readonly #ref: Reference;

  readonly #onOpen: ((signal: AbortSignal | undefined) => void) | undefined;

  constructor(
    client: RegistryClient,
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
  readonly #client: RegistryClient;
  readonly #fetched: FetchedManifest;
  readonly #manifest: ImageManifest;
  readonly #config: ImageConfigFile;
  readonly #layers: RegistryLayer[];

  constructor(
    client: RegistryClient,
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

  #readAheadStarted = false;

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

/** Creates a {@link RegistryClient}. */
export function createRegistryClient(options: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient(options);
}
