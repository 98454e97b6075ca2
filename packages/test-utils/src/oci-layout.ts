import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';

/**
 * Writes OCI image layouts byte by byte (what skopeo/umoci/buildkit produce), so tests can build
 * multi-platform, nested-index and deliberately broken layouts without a daemon.
 */

/** One single-platform image of a layout. */
export interface LayoutImageSpec {
  /** Default `linux/amd64`. */
  platform?: { os: string; architecture: string; variant?: string };
  /** Layer tars (uncompressed); each is stored with `compression`. */
  layers: Uint8Array[];
  /** How layers are stored. Default `gzip`. */
  compression?: 'none' | 'gzip' | 'zstd';
  /** Use Docker media types instead of OCI ones. Default false. */
  docker?: boolean;
  /** Extra fields for the config's `config` section (Env, Cmd, …). */
  runtime?: Record<string, unknown>;
}

/** One entry of index.json. */
export interface LayoutEntrySpec {
  /** `org.opencontainers.image.ref.name`. */
  tag?: string;
  /** One image → index.json points at its manifest; several → at a nested index of them. */
  images: LayoutImageSpec[];
  /**
   * With several images: list each manifest directly in index.json (all with this tag and a
   * platform) instead of through a nested index. Default false.
   */
  flat?: boolean;
}

/** What was written for one image. */
export interface WrittenImage {
  manifestDigest: string;
  configDigest: string;
  layerDigests: string[];
  diffIds: string[];
  platform: string;
}

/** What was written for one index.json entry. */
export interface WrittenEntry {
  tag: string | undefined;
  /** The nested index's digest, when one was written. */
  indexDigest: string | undefined;
  images: WrittenImage[];
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Writes `bytes` as a blob of the layout and returns its descriptor fields. */
export async function writeLayoutBlob(
  dir: string,
  bytes: Uint8Array,
): Promise<{ digest: string; size: number }> {
  const digest = sha256(bytes);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.byteLength };
}

/** Where a layout keeps the blob of a sha256 `digest`. */
export function layoutBlobPath(dir: string, digest: string): string {
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** The fields of a manifest a test may rewrite (see {@link rewriteLayoutManifest}). */
export interface EditableManifest {
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: Array<{ mediaType: string; digest: string; size: number }>;
}

/**
 * Rewrites the manifest `digest` of a layout through `edit` (sizes that lie, other blobs), stores
 * the result as a new blob and makes it index.json's only entry. Returns its digest.
 */
export async function rewriteLayoutManifest(
  dir: string,
  digest: string,
  edit: (manifest: EditableManifest) => void,
): Promise<string> {
  const manifest = JSON.parse(await readFile(layoutBlobPath(dir, digest), 'utf8')) as EditableManifest;
  edit(manifest);
  const blob = await writeLayoutBlob(dir, new TextEncoder().encode(JSON.stringify(manifest)));
  await writeLayoutIndex(dir, [{ mediaType: manifest.mediaType, ...blob }]);
  return blob.digest;
}

/** Writes index.json with these entries, as given (valid or not). */
export async function writeLayoutIndex(dir: string, manifests: unknown[]): Promise<void> {
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
  );
}

/** Writes a complete OCI image layout (oci-layout, index.json, blobs) into `dir`. */
export async function writeOciLayout(dir: string, entries: LayoutEntrySpec[]): Promise<WrittenEntry[]> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const top: unknown[] = [];
  const written: WrittenEntry[] = [];
  for (const entry of entries) {
    const images: WrittenImage[] = [];
    const descriptors: Array<Record<string, unknown>> = [];
    for (const image of entry.images) {
      const { descriptor, info } = await writeImage(dir, image);
      images.push(info);
      descriptors.push(descriptor);
    }
    const annotations = entry.tag ? { 'org.opencontainers.image.ref.name': entry.tag } : undefined;
    let indexDigest: string | undefined;
    if (descriptors.length === 1 && !entry.flat) {
      const { platform: _platform, ...plain } = descriptors[0] as Record<string, unknown>;
      top.push({ ...plain, ...(annotations && { annotations }) });
    } else if (entry.flat) {
      for (const d of descriptors) top.push({ ...d, ...(annotations && { annotations }) });
    } else {
      const docker = entry.images[0]?.docker;
      const mediaType = docker
        ? 'application/vnd.docker.distribution.manifest.list.v2+json'
        : 'application/vnd.oci.image.index.v1+json';
      const bytes = new TextEncoder().encode(
        JSON.stringify({ schemaVersion: 2, mediaType, manifests: descriptors }),
      );
      const blob = await writeLayoutBlob(dir, bytes);
      indexDigest = blob.digest;
      top.push({ mediaType, ...blob, ...(annotations && { annotations }) });
    }
    written.push({ tag: entry.tag, indexDigest, images });
  }
  await writeLayoutIndex(dir, top);
  return written;
}

async function writeImage(
  dir: string,
  image: LayoutImageSpec,
): Promise<{ descriptor: Record<string, unknown>; info: WrittenImage }> {
  const platform = image.platform ?? { os: 'linux', architecture: 'amd64' };
  const compression = image.compression ?? 'gzip';
  const docker = image.docker ?? false;
  const layerType = docker
    ? {
        none: 'application/vnd.docker.image.rootfs.diff.tar',
        gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
        zstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
      }[compression]
    : {
        none: 'application/vnd.oci.image.layer.v1.tar',
        gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
        zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
      }[compression];
  const layers: Array<Record<string, unknown>> = [];
  const diffIds: string[] = [];
  for (const tar of image.layers) {
    diffIds.push(sha256(tar));
    const stored =
      compression === 'gzip'
        ? gzipSync(tar, { level: 6 })
        : compression === 'zstd'
          ? zstdCompressSync(tar)
          : tar;
    layers.push({ mediaType: layerType, ...(await writeLayoutBlob(dir, stored)) });
  }
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant && { variant: platform.variant }),
    created: '1970-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/bin:/bin'], ...image.runtime },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'irb test' })),
  };
  const configBlob = await writeLayoutBlob(dir, new TextEncoder().encode(JSON.stringify(config)));
  const manifestType = docker
    ? 'application/vnd.docker.distribution.manifest.v2+json'
    : 'application/vnd.oci.image.manifest.v1+json';
  const manifest = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: {
      mediaType: docker
        ? 'application/vnd.docker.container.image.v1+json'
        : 'application/vnd.oci.image.config.v1+json',
      ...configBlob,
    },
    layers,
  };
  const manifestBlob = await writeLayoutBlob(dir, new TextEncoder().encode(JSON.stringify(manifest)));
  const platformText = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
  return {
    descriptor: { mediaType: manifestType, ...manifestBlob, platform },
    info: {
      manifestDigest: manifestBlob.digest,
      configDigest: configBlob.digest,
      layerDigests: layers.map((l) => l.digest as string),
      diffIds,
      platform: platformText,
    },
  };
}
