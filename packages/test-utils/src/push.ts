import { createHash } from 'node:crypto';
import { gzipSync, zstdCompressSync } from 'node:zlib';

/**
 * Builds images in memory (real tar layers, OCI or Docker media types, gzip/zstd/none,
 * configs with diff_ids, multi-platform indexes) and pushes them over the registry HTTP API.
 */

/** A blob with its descriptor fields. */
export interface TestBlob {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Uint8Array;
}

/** A single-platform image ready to push. */
export interface TestImage {
  kind: 'image';
  manifest: TestBlob;
  config: TestBlob;
  layers: TestBlob[];
  /** The uncompressed layer digests (config rootfs.diff_ids). */
  diffIds: string[];
  platform: { os: string; architecture: string; variant?: string };
}

/** A multi-platform index ready to push. */
export interface TestIndex {
  kind: 'index';
  manifest: TestBlob;
  images: TestImage[];
}

/** One layer of {@link buildImage}: a tar, compressed as the image's default or as said here. */
export type TestLayerSpec = Uint8Array | { tar: Uint8Array; compression?: 'gzip' | 'zstd' | 'none' };

/** Options of {@link buildImage}. */
export interface BuildImageOptions {
  /** Uncompressed layer tars (see `buildTar`), base first. */
  layers: TestLayerSpec[];
  /** Default `gzip`. */
  compression?: 'gzip' | 'zstd' | 'none';
  /** Media type family. Default `oci`. */
  format?: 'oci' | 'docker';
  /** Default linux/amd64. */
  platform?: { os: string; architecture: string; variant?: string };
  /** The config's `config` section. */
  runtime?: Record<string, unknown>;
  /** Extra manifest annotations (OCI only). */
  annotations?: Record<string, string>;
  /** The config's `rootfs.diff_ids`. Default: the sha256 of each layer tar (others make a corrupt image). */
  diffIds?: string[];
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

/** A blob from bytes. */
export function testBlob(mediaType: string, bytes: Uint8Array): TestBlob {
  return { mediaType, digest: sha256(bytes), size: bytes.byteLength, bytes };
}

const LAYER_TYPES = {
  oci: {
    none: 'application/vnd.oci.image.layer.v1.tar',
    gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  },
  docker: {
    none: 'application/vnd.docker.image.rootfs.diff.tar',
    gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
    zstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  },
} as const;

/** Builds a single-platform image from layer tars. */
export function buildImage(options: BuildImageOptions): TestImage {
  const format = options.format ?? 'oci';
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const diffIds: string[] = [];
  const layers = options.layers.map((spec) => {
    const tar = spec instanceof Uint8Array ? spec : spec.tar;
    const compression =
      (spec instanceof Uint8Array ? undefined : spec.compression) ?? options.compression ?? 'gzip';
    diffIds.push(sha256(tar));
    const bytes =
      compression === 'gzip'
        ? new Uint8Array(gzipSync(tar))
        : compression === 'zstd'
          ? new Uint8Array(zstdCompressSync(tar))
          : tar;
    return testBlob(LAYER_TYPES[format][compression], bytes);
  });
  const config = testBlob(
    format === 'oci'
      ? 'application/vnd.oci.image.config.v1+json'
      : 'application/vnd.docker.container.image.v1+json',
    json({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: options.runtime ?? { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: options.diffIds ?? diffIds },
      history: diffIds.map(() => ({ created_by: 'irb test harness' })),
    }),
  );
  const descriptor = (b: TestBlob) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });
  const manifestType =
    format === 'oci'
      ? 'application/vnd.oci.image.manifest.v1+json'
      : 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = testBlob(
    manifestType,
    json({
      schemaVersion: 2,
      mediaType: manifestType,
      config: descriptor(config),
      layers: layers.map(descriptor),
      ...(options.annotations && format === 'oci' ? { annotations: options.annotations } : {}),
    }),
  );
  return { kind: 'image', manifest, config, layers, diffIds: options.diffIds ?? diffIds, platform };
}

/** Builds an index (OCI) or manifest list (Docker) over images. */
export function buildIndex(
  images: TestImage[],
  options: { format?: 'oci' | 'docker'; extra?: Array<Record<string, unknown>> } = {},
): TestIndex {
  const format = options.format ?? 'oci';
  const type =
    format === 'oci'
      ? 'application/vnd.oci.image.index.v1+json'
      : 'application/vnd.docker.distribution.manifest.list.v2+json';
  const manifest = testBlob(
    type,
    json({
      schemaVersion: 2,
      mediaType: type,
      manifests: [
        ...images.map((image) => ({
          mediaType: image.manifest.mediaType,
          digest: image.manifest.digest,
          size: image.manifest.size,
          platform: image.platform,
        })),
        ...(options.extra ?? []),
      ],
    }),
  );
  return { kind: 'index', manifest, images };
}

/** Where to push and as whom. */
export interface PushTarget {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Credentials for registries with auth. */
  pushCredentials?: { username: string; password: string };
}

class PushSession {
  readonly #target: PushTarget;
  readonly #repo: string;
  #authorization: string | undefined;

  constructor(target: PushTarget, repo: string) {
    this.#target = target;
    this.#repo = repo;
  }

  async fetch(url: string, init: RequestInit): Promise<Response> {
    for (let round = 0; round < 2; round++) {
      const headers = new Headers(init.headers);
      if (this.#authorization) headers.set('authorization', this.#authorization);
      const res = await fetch(url, { ...init, headers });
      if (res.status !== 401 || round === 1) return res;
      await res.arrayBuffer();
      await this.#login(res.headers.get('www-authenticate') ?? '');
    }
    throw new Error('unreachable');
  }

  async #login(challenge: string): Promise<void> {
    const creds = this.#target.pushCredentials;
    if (!creds) throw new Error(`registry wants auth (${challenge}) but no pushCredentials were given`);
    const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    if (/^basic/i.test(challenge)) {
      this.#authorization = basic;
      return;
    }
    const param = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(challenge)?.[1];
    const realm = param('realm');
    if (!realm) throw new Error(`unexpected challenge: ${challenge}`);
    const url = new URL(realm);
    const service = param('service');
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', `repository:${this.#repo}:pull,push`);
    const res = await fetch(url, { headers: { authorization: basic } });
    if (!res.ok) throw new Error(`token request failed: ${res.status}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    this.#authorization = `Bearer ${body.token ?? body.access_token}`;
  }
}

/* Uploads one blob (monolithic: POST then PUT with the digest); skips blobs already there. */
async function pushBlob(
  session: PushSession,
  target: PushTarget,
  repo: string,
  blob: TestBlob,
): Promise<void> {
  const head = await session.fetch(`${target.url}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
  if (head.status === 200) return;
  const start = await session.fetch(`${target.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`blob upload start failed: ${start.status}`);
  const location = new URL(start.headers.get('location') ?? '', target.url);
  location.searchParams.set('digest', blob.digest);
  const put = await session.fetch(location.toString(), {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: blob.bytes as never,
  });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`blob upload of ${blob.digest} failed: ${put.status} ${text}`);
}

/* Uploads a manifest (or index) under a tag or its digest. */
async function pushManifest(
  session: PushSession,
  target: PushTarget,
  repo: string,
  reference: string,
  manifest: TestBlob,
): Promise<void> {
  const res = await session.fetch(`${target.url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType },
    body: manifest.bytes as never,
  });
  const text = await res.text();
  if (res.status !== 201)
    throw new Error(`manifest push to ${repo}:${reference} failed: ${res.status} ${text}`);
}

/**
 * Pushes an image or index (all blobs, child manifests by digest, then the top manifest under
 * `tagOrDigest`). Returns the top manifest's digest.
 */
export async function pushImage(
  registry: PushTarget,
  repo: string,
  tagOrDigest: string,
  image: TestImage | TestIndex,
): Promise<string> {
  const session = new PushSession(registry, repo);
  const images = image.kind === 'index' ? image.images : [image];
  for (const one of images) {
    for (const blob of [...one.layers, one.config]) await pushBlob(session, registry, repo, blob);
    if (image.kind === 'index')
      await pushManifest(session, registry, repo, one.manifest.digest, one.manifest);
  }
  await pushManifest(session, registry, repo, tagOrDigest, image.manifest);
  return image.manifest.digest;
}
