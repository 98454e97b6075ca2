/**
 * The registry client facade: options, shared state and the public calls. The work happens in
 * the files it composes: `mirrors.ts` (where to fetch from), `transport/` (scheme, auth, retry,
 * HTTP), `manifest.ts`, `blobs.ts` and `image.ts`.
 */
import { IrbError } from '@irb/errors';
import { cacheLayout, defaultCacheRoot } from '@irb/store/paths';
import packageJson from '../package.json' with { type: 'json' };
import type { ReferrerDescriptor } from './artifact.ts';
import { sha256Digest } from './artifact.ts';
import { BlobFetcher } from './blobs.ts';
import { BlobCache } from './cache.ts';
import { loadImage, type RegistryImage } from './image.ts';
import { checkDocumentSize, type FetchedManifest, fetchManifest } from './manifest.ts';
import { type Endpoint, Mirrors } from './mirrors.ts';
import { DEFAULT_PLATFORM, parsePlatform } from './platform.ts';
import { Secrets } from './redact.ts';
import { formatReference, parseReference, type Reference } from './reference.ts';
import { attachReferrerTag, listReferrers, type Referrers } from './referrers.ts';
import { Authenticator } from './transport/authenticator.ts';
import { resolveCa, Transport } from './transport/http.ts';
import { RegistryTransport } from './transport/request.ts';
import { DEFAULT_RETRY, type RetryOptions } from './transport/retry.ts';
import { Schemes } from './transport/scheme.ts';
import type { CallOptions, Descriptor, Keychain, Platform, ProgressListener } from './types.ts';
import {
  type BlobSource,
  blobExists,
  type PushBlobOptions,
  type PushBlobResult,
  type PutManifestResult,
  pushBlob,
  putManifest,
  type UploadContext,
} from './upload.ts';

export { RegistryImage } from './image.ts';
export type { FetchedManifest } from './manifest.ts';
export { parseMirrorsEnv } from './mirrors.ts';
export type { Referrers } from './referrers.ts';
export {
  type BlobSource,
  blobFromBytes,
  blobFromFile,
  type PushBlobOptions,
  type PushBlobResult,
  type PutManifestResult,
} from './upload.ts';

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
  /**
   * The cache root (see @irb/store): blobs go to `<cacheDir>/blobs`, and every other file the
   * client keeps lives under it too. Default `IRB_CACHE_DIR`, else `$XDG_CACHE_HOME/irb`, else
   * `~/.cache/irb`.
   */
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

/** Options of {@link RegistryClient.image}. */
export interface ImageOptions extends CallOptions {
  /** `os/arch[/variant]` or a Platform. Default: the client's platform (`linux/amd64`). */
  platform?: Platform | string;
}

const VERSION: string = packageJson.version;

function combineSignals(...signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  return AbortSignal.any(present);
}

function toPlatform(value: Platform | string | undefined, fallback: Platform): Platform {
  if (value === undefined) return fallback;
  return typeof value === 'string' ? parsePlatform(value) : value;
}

function toReference(reference: string | Reference): Reference {
  return typeof reference === 'string' ? parseReference(reference) : reference;
}

/**
 * A client for OCI distribution registries (Docker Hub, GHCR, ECR, Harbor, distribution, …).
 *
 * It holds state worth sharing across pulls: connection pools, bearer tokens per scope,
 * resolved credentials, the negotiated scheme per host and the blob cache. Create one per
 * process (or per build) and `close()` it when done.
 */
export class RegistryClient {
  readonly #transport: Transport;
  readonly #requests: RegistryTransport;
  readonly #mirrors: Mirrors;
  readonly #blobs: BlobFetcher;
  readonly #secrets = new Secrets();
  readonly #signal: AbortSignal | undefined;
  /** Aborted by close(): stops background read-ahead and any transfer still running. */
  readonly #closing = new AbortController();
  readonly #readAhead: boolean;
  readonly #platform: Platform;
  readonly #cacheEnabled: boolean;
  readonly #cacheDir: string;
  #cache: Promise<BlobCache> | undefined;
  #closed = false;
  readonly #retry: Required<RetryOptions>;
  /** `registry|digest` → a repository that has the blob: candidates for a cross-repository mount. */
  readonly #knownBlobs = new Map<string, string>();

  constructor(options: RegistryClientOptions = {}) {
    this.#mirrors = new Mirrors(options.mirrors);
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#retry = retry;
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `\`concurrency\` must be a whole number ≥ 1, got ${concurrency}`,
      );
    }
    this.#transport = new Transport({
      userAgent: options.userAgent ?? `irb-registry/${VERSION}`,
      connections: Math.max(concurrency, 2),
      ca: resolveCa(options.ca),
      timeoutMs: options.timeoutMs ?? 60_000,
    });
    this.#secrets.addProxyCredentials();
    const cacheDir = options.cacheDir ?? defaultCacheRoot();
    const schemes = new Schemes(
      options.insecureRegistries,
      options.cache !== false ? cacheLayout(cacheDir).schemes : undefined,
    );
    const auth = new Authenticator({
      keychains: [...(options.keychains ?? [])],
      transport: this.#transport,
      schemes,
      retry,
      secrets: this.#secrets,
    });
    this.#requests = new RegistryTransport({
      transport: this.#transport,
      schemes,
      auth,
      retry,
      secrets: this.#secrets,
    });
    this.#blobs = new BlobFetcher({
      cache: () => this.cache(),
      requests: this.#requests,
      mirrors: this.#mirrors,
      retry,
      secrets: this.#secrets,
      concurrency,
      onProgress: options.onProgress,
    });
    this.#signal = combineSignals(options.signal, this.#closing.signal);
    this.#readAhead = options.readAhead !== false;
    this.#platform = toPlatform(options.platform, DEFAULT_PLATFORM);
    this.#cacheEnabled = options.cache !== false;
    this.#cacheDir = cacheDir;
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
    const ref = toReference(reference);
    const platform = toPlatform(options.platform, this.#platform);
    return loadImage(this, ref, platform, combineSignals(this.#signal, options.signal));
  }

  /**
   * Fetches a manifest or index by tag or digest, verified: by digest against the digest, by
   * tag against `Docker-Content-Digest` when the registry sends it. Cached by digest, so a
   * warm pull by tag costs one HEAD request and a pull by digest none.
   */
  async manifest(
    reference: string | Reference,
    options: { signal?: AbortSignal; expected?: Descriptor; artifacts?: boolean } = {},
  ): Promise<FetchedManifest> {
    const ref = toReference(reference);
    const context = {
      cache: await this.cache(),
      persistentCache: this.#cacheEnabled,
      requests: this.#requests,
      endpoints: this.#mirrors.endpoints(ref),
      secrets: this.#secrets,
    };
    return fetchManifest(context, ref, combineSignals(this.#signal, options.signal), options.expected, {
      artifacts: options.artifacts === true,
    });
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
    const signal = combineSignals(this.#signal, options.signal);
    await this.#blobs.ensureAll(toReference(reference), descriptors, signal, options.onProgress);
  }

  /** True when opening a layer should start downloading the image's other layers. */
  get readAhead(): boolean {
    return this.#readAhead;
  }

  /**
   * A stream of a blob, verified by the time it ends: read from the cache, or while it downloads
   * (following the download into the cache byte by byte). It throws at the end
   * (`IRB_DIGEST_MISMATCH`, …) when the bytes were not the blob: use what you built from them
   * only once it ended normally.
   */
  async *openBlob(
    reference: string | Reference,
    descriptor: Descriptor,
    options: CallOptions = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const signal = combineSignals(this.#signal, options.signal);
    const cache = await this.cache();
    yield* this.#blobs.open(toReference(reference), descriptor, cache, signal, options.onProgress);
  }

  /** A small blob's bytes (configs), verified. */
  async blobBytes(
    reference: string | Reference,
    descriptor: Descriptor,
    options: CallOptions & { maxBytes?: number } = {},
  ): Promise<Uint8Array> {
    const ref = toReference(reference);
    if (options.maxBytes !== undefined) {
      checkDocumentSize(descriptor, options.maxBytes, `${formatReference(ref)}: blob ${descriptor.digest}`);
    }
    const signal = combineSignals(this.#signal, options.signal);
    const cache = await this.cache();
    for (let round = 0; round < 2; round++) {
      await this.#blobs.ensure(ref, descriptor, signal, options.onProgress);
      const bytes = await cache.readBytes(descriptor.digest, descriptor.size);
      if (bytes) return bytes;
    }
    throw new IrbError(
      'IRB_CACHE_MISS',
      `blob ${descriptor.digest} vanished from the cache (${cache.dir}) twice; is something deleting it?`,
    );
  }

  /** What the write path needs: the registry itself (pushes never go to mirrors). */
  #uploads(ref: Reference): UploadContext {
    if (this.#closed)
      throw new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed; create a new one');
    const endpoint: Endpoint = {
      registry: ref.registry,
      base: '',
      host: ref.apiHost,
      mirror: false,
      scheme: undefined,
    };
    return { requests: this.#requests, endpoint, retry: this.#retry, secrets: this.#secrets };
  }

  /**
   * Makes sure a blob is in the repository of `reference`, with push scope: skipped when it is
   * there, mounted from another repository of the registry that has it (`mountFrom`, or one this
   * client pushed it to), else uploaded (monolithic, or in `chunkSize` chunks). An upload that
   * breaks restarts with a new session.
   */
  async pushBlob(
    reference: string | Reference,
    blob: BlobSource,
    options: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    const ref = toReference(reference);
    const known = this.#knownBlobs.get(`${ref.registry}|${blob.digest}`);
    const mountFrom = [...(options.mountFrom ?? []), ...(known ? [known] : [])];
    const signal = combineSignals(this.#signal, options.signal);
    const result = await pushBlob(this.#uploads(ref), ref, blob, {
      ...options,
      mountFrom,
      ...(signal ? { signal } : {}),
    });
    this.#knownBlobs.set(`${ref.registry}|${blob.digest}`, ref.repository);
    return result;
  }

  /** True when the repository of `reference` has the blob (`HEAD`, with push scope). */
  async hasBlob(reference: string | Reference, digest: string, options: CallOptions = {}): Promise<boolean> {
    const ref = toReference(reference);
    return blobExists(this.#uploads(ref), ref, digest, combineSignals(this.#signal, options.signal));
  }

  /**
   * Pushes manifest bytes (exactly as given) under `reference`'s tag, or under their digest when
   * the reference has none. `subjectHandled` tells whether the registry indexed a `subject`.
   */
  async pushManifest(
    reference: string | Reference,
    bytes: Uint8Array,
    mediaType: string,
    options: { signal?: AbortSignal; tag?: string } = {},
  ): Promise<PutManifestResult> {
    const ref = toReference(reference);
    const digest = sha256Digest(bytes);
    const target = options.tag ?? (ref.digest ? digest : (ref.tag ?? digest));
    if (ref.digest && ref.digest !== digest) {
      throw new IrbError(
        'IRB_DIGEST_MISMATCH',
        `the manifest's digest is ${digest}, not ${ref.digest} as the reference says`,
      );
    }
    return putManifest(
      this.#uploads(ref),
      ref,
      target,
      bytes,
      mediaType,
      digest,
      combineSignals(this.#signal, options.signal),
    );
  }

  /**
   * The referrers of the manifest `digest` in `reference`'s repository, filtered by
   * `artifactType`: through the referrers API, else the OCI 1.1 tag-schema fallback.
   */
  async referrers(
    reference: string | Reference,
    digest: string,
    options: { artifactType?: string; signal?: AbortSignal } = {},
  ): Promise<Referrers> {
    const ref = toReference(reference);
    return listReferrers(
      this.#uploads(ref),
      ref,
      digest,
      options.artifactType,
      combineSignals(this.#signal, options.signal),
    );
  }

  /**
   * Records `descriptor` as a referrer of `subject` in the tag-schema fallback index (for
   * registries that did not answer the manifest PUT with `OCI-Subject`).
   */
  async attachReferrer(
    reference: string | Reference,
    subject: string,
    descriptor: ReferrerDescriptor,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    const ref = toReference(reference);
    await attachReferrerTag(
      this.#uploads(ref),
      ref,
      subject,
      descriptor,
      combineSignals(this.#signal, options.signal),
    );
  }

  /** Closes connections and removes the temporary cache (when caching is off). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Cancel what is still running (read-ahead included) and let it clean up its temp files.
    this.#closing.abort(new IrbError('IRB_CLIENT_CLOSED', 'the registry client was closed'));
    await this.#blobs.settle();
    await this.#transport.close().catch(() => this.#transport.destroy());
    const cache = await this.#cache?.catch(() => undefined);
    await cache?.dispose();
  }

  /** `await using client = createRegistryClient()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Creates a {@link RegistryClient}. */
export function createRegistryClient(options: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient(options);
}
