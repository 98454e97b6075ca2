import { createHash } from 'node:crypto';
import { IrbError } from '@irb/errors';
import { digestOf, parseDigest, verifyBytes } from '../digest.ts';
import { formatSize } from '../errors.ts';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES } from '../manifest.ts';
import { DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_MANIFEST } from '../media-types.ts';
import { checkConfigPlatform } from '../platform.ts';
import { parseReference } from '../reference.ts';
import type { Descriptor, Image, ImageIndex, ImageManifest, OpenOptions, Platform } from '../types.ts';
import {
  type BlobReader,
  createImage,
  isObject,
  manifestKind,
  parseConfig,
  parseJson,
  wantedPlatform,
} from './common.ts';
import { openRegularFile, type RegularFile } from './files.ts';
import { indexTar, type TarIndex, type TarMember } from './tar-index.ts';

/** Options of {@link openDockerArchive}. */
export interface DockerArchiveOptions {
  /**
   * Which image of a multi-image archive: a name from its `RepoTags` (`alpine:3.20`,
   * `docker.io/library/alpine:3.20` — matched either way) or `@N`, the N-th entry of
   * manifest.json (from 0). Default: the only image in the archive.
   */
  tag?: string;
  /** `os/arch[/variant]` or a {@link Platform}; the image's config must match. Default: `linux/amd64`. */
  platform?: string | Platform;
  signal?: AbortSignal;
}

/** Docker's media type for an uncompressed layer tar (what `docker save` stores). */
export const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

interface ArchiveEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/**
 * Opens an image from a `docker save` tarball (`docker-archive:FILE[:NAME:TAG]`), both the legacy
 * layout (`<id>/layer.tar`, `<hex>.json`) and the OCI layout docker 25+ writes (`blobs/sha256/…`).
 * The tar's headers are indexed once; each `Layer.open()` then streams the layer's byte range
 * straight from the file, verified against its digest. The manifest is the archive's own OCI
 * manifest when it carries one, else a Docker schema 2 manifest built from manifest.json.
 */
export async function openDockerArchive(file: string, options: DockerArchiveOptions = {}): Promise<Image> {
  const name = `docker-archive:${file}${options.tag ? `:${options.tag}` : ''}`;
  const platform = wantedPlatform(options.platform);
  const signal = options.signal;
  await refuseCompressed(file);
  const tar = await indexTar(file, signal ? { signal } : {});
  const entries = await readManifestJson(tar, file, signal);
  const entry = pickEntry(entries, options.tag, file);

  const configMember = member(tar, entry.Config, file, 'config');
  const configBytes = await readSmall(
    tar,
    configMember,
    MAX_CONFIG_BYTES,
    `config ${entry.Config} in ${file}`,
    signal,
  );
  const configDigest = contentDigest(entry.Config, configBytes, file);
  const config = parseConfig(configBytes, name);
  checkConfigPlatform(config, platform, name);
  if (config.rootfs.diff_ids.length !== entry.Layers.length) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${name} lists ${entry.Layers.length} layers but its config has ${config.rootfs.diff_ids.length} diff_ids; the archive is damaged`,
    );
  }

  const layerMembers = entry.Layers.map((path) => member(tar, path, file, 'layer'));
  const layers: Descriptor[] = [];
  for (const [i, layer] of layerMembers.entries()) {
    const path = entry.Layers[i] as string;
    const compression = await sniffCompression(tar, layer);
    const diffId = config.rootfs.diff_ids[i] as string;
    layers.push({
      mediaType:
        compression === 'gzip'
          ? DOCKER_LAYER_GZIP
          : compression === 'zstd'
            ? DOCKER_LAYER_ZSTD
            : DOCKER_LAYER_TAR,
      // An uncompressed layer's digest is its diff_id; Layer.open() proves it on every read.
      digest:
        blobPathDigest(path) ?? (compression === 'none' ? diffId : await hashMember(tar, layer, signal)),
      size: layer.size,
    });
  }

  const reader = memberReader(tar, file, entry, layerMembers, layers);
  const own = await findOciManifest(tar, configDigest, layers, signal);
  const manifest: ImageManifest = own?.manifest ?? {
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: DOCKER_CONFIG, digest: configDigest, size: configBytes.byteLength },
    layers,
  };
  const manifestDigest = own?.digest ?? digestOf(new TextEncoder().encode(JSON.stringify(manifest)));
  return createImage({ reader, manifest, manifestDigest, name, configBytes });
}

/** A member held in memory whole (manifest.json, index.json, a config), refused over `limit` before it is read. */
function readSmall(
  tar: TarIndex,
  m: TarMember,
  limit: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  if (m.size > limit) {
    throw new IrbError(
      'IRB_MANIFEST_INVALID',
      `${what} is ${m.size} bytes, over the ${formatSize(limit)} limit for this kind of document; the archive is malformed or hostile`,
    );
  }
  return tar.read(m, signal ? { signal } : {});
}

/** `docker save | gzip` output cannot be read by byte range: say how to fix it. */
async function refuseCompressed(file: string): Promise<void> {
  let opened: RegularFile;
  try {
    opened = await openRegularFile(file, 'docker archive');
  } catch (error) {
    if (error instanceof IrbError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new IrbError(
      code === 'ENOENT' ? 'IRB_SOURCE_NOT_FOUND' : 'IRB_SOURCE_INVALID',
      code === 'ENOENT'
        ? `docker archive ${file} does not exist; check the path after docker-archive:`
        : `cannot open docker archive ${file} (${code})`,
      { cause: error },
    );
  }
  const { handle } = opened;
  try {
    const head = new Uint8Array(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    const kind = magic(head.subarray(0, bytesRead));
    if (kind !== 'none') {
      throw new IrbError(
        'IRB_SOURCE_INVALID',
        `docker archive ${file} is ${kind}-compressed; decompress it first (e.g. ${kind === 'gzip' ? 'gunzip' : 'unzstd'} -k ${file}) so its layers can be read in place`,
      );
    }
  } finally {
    await handle.close();
  }
}

function magic(head: Uint8Array): 'gzip' | 'zstd' | 'none' {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

async function sniffCompression(tar: TarIndex, m: TarMember): Promise<'gzip' | 'zstd' | 'none'> {
  if (m.size < 4) return 'none';
  for await (const chunk of tar.stream({ ...m, size: 4 })) return magic(chunk);
  return 'none';
}

async function hashMember(tar: TarIndex, m: TarMember, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of tar.stream(m, signal ? { signal } : {})) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

/** `blobs/sha256/<hex>` names its digest; other names say nothing. */
function blobPathDigest(path: string): string | undefined {
  const match = /^(?:\.\/)?blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(path);
  if (!match) return undefined;
  const digest = `${match[1]}:${match[2]}`;
  try {
    parseDigest(digest);
    return digest;
  } catch {
    return undefined;
  }
}

/**
 * The config's digest, checked against what its name claims: `blobs/sha256/<hex>` (docker 25+)
 * or `<hex>.json` (legacy: the image ID, which is the config's sha256).
 */
function contentDigest(path: string, bytes: Uint8Array, file: string): string {
  const legacy = /^(?:\.\/)?([0-9a-f]{64})\.json$/.exec(path);
  const claimed = blobPathDigest(path) ?? (legacy ? `sha256:${legacy[1]}` : undefined);
  if (claimed) {
    verifyBytes(bytes, { digest: claimed, what: `config ${path} in ${file}` });
    return claimed;
  }
  return digestOf(bytes);
}

async function readManifestJson(tar: TarIndex, file: string, signal?: AbortSignal): Promise<ArchiveEntry[]> {
  const m = tar.resolve('manifest.json');
  if (!m) {
    const hint = tar.resolve('index.json')
      ? 'it looks like an OCI layout in a tar; extract it and use oci:DIR'
      : 'produce it with docker save or skopeo copy ... docker-archive:FILE';
    throw new IrbError(
      'IRB_SOURCE_INVALID',
      `${file} has no manifest.json, so it is not a docker save archive; ${hint}`,
    );
  }
  const doc = parseJson(
    await readSmall(tar, m, MAX_MANIFEST_BYTES, `${file} manifest.json`, signal),
    `${file} manifest.json`,
  );
  if (!Array.isArray(doc) || doc.length === 0) {
    throw new IrbError('IRB_SOURCE_INVALID', `${file} manifest.json lists no images`);
  }
  return doc.map((e, i) => {
    if (
      !isObject(e) ||
      typeof e.Config !== 'string' ||
      !Array.isArray(e.Layers) ||
      !e.Layers.every((l) => typeof l === 'string')
    ) {
      throw new IrbError('IRB_SOURCE_INVALID', `${file} manifest.json entry ${i} lacks Config or Layers`);
    }
    const tags = Array.isArray(e.RepoTags)
      ? e.RepoTags.filter((t): t is string => typeof t === 'string')
      : [];
    return { Config: e.Config, RepoTags: tags, Layers: e.Layers as string[] };
  });
}

function sameImage(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    const x = parseReference(a);
    const y = parseReference(b);
    return x.registry === y.registry && x.repository === y.repository && x.tag === y.tag;
  } catch {
    return false;
  }
}

function pickEntry(entries: ArchiveEntry[], tag: string | undefined, file: string): ArchiveEntry {
  const all = entries.flatMap((e) => e.RepoTags ?? []);
  const listing = all.length ? `it has: ${all.join(', ')}` : 'its images carry no tags (use @0, @1, …)';
  if (tag === undefined) {
    if (entries.length === 1) return entries[0] as ArchiveEntry;
    throw new IrbError(
      'IRB_TAG_REQUIRED',
      `docker archive ${file} holds ${entries.length} images; name one as docker-archive:${file}:NAME:TAG or :@N (${listing})`,
    );
  }
  const index = /^@(\d+)$/.exec(tag);
  if (index) {
    const entry = entries[Number(index[1])];
    if (entry) return entry;
    throw new IrbError(
      'IRB_IMAGE_NOT_FOUND',
      `docker archive ${file} has no image ${tag}; it holds ${entries.length} (@0 to @${entries.length - 1})`,
    );
  }
  const found = entries.find((e) => (e.RepoTags ?? []).some((t) => sameImage(t, tag)));
  if (found) return found;
  throw new IrbError(
    'IRB_IMAGE_NOT_FOUND',
    `docker archive ${file} has no image tagged "${tag}"; ${listing}`,
  );
}

function member(tar: TarIndex, path: string, file: string, what: string): TarMember {
  const m = tar.resolve(path);
  if (!m) {
    throw new IrbError(
      'IRB_SOURCE_INVALID',
      `docker archive ${file} lacks the ${what} ${path} that its manifest.json names; the archive is truncated or damaged`,
    );
  }
  return m;
}

/** Serves the archive's config and layers by digest from their byte ranges. */
function memberReader(
  tar: TarIndex,
  file: string,
  entry: ArchiveEntry,
  layerMembers: TarMember[],
  layers: Descriptor[],
): BlobReader {
  const byDigest = new Map<string, TarMember>();
  for (const [i, d] of layers.entries()) byDigest.set(d.digest, layerMembers[i] as TarMember);
  return {
    stream(descriptor, options) {
      const m = byDigest.get(descriptor.digest) ?? tar.resolve(blobPath(descriptor.digest));
      if (!m) {
        throw new IrbError(
          'IRB_BLOB_NOT_FOUND',
          `docker archive ${file} (${entry.RepoTags?.[0] ?? entry.Config}) has no blob ${descriptor.digest}`,
        );
      }
      return tar.stream(m, options);
    },
  };
}

function blobPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

/**
 * Docker 25+ archives are also OCI layouts: find the real manifest of this config there, so the
 * image keeps its true manifest digest. It is only used when its layers are exactly the archive's.
 */
async function findOciManifest(
  tar: TarIndex,
  configDigest: string,
  layers: Descriptor[],
  signal?: AbortSignal,
): Promise<{ manifest: ImageManifest; digest: string } | undefined> {
  const indexMember = tar.resolve('index.json');
  if (!indexMember) return undefined;
  const opts: OpenOptions = signal ? { signal } : {};
  const queue: Descriptor[] = [];
  try {
    const indexBytes = await readSmall(tar, indexMember, MAX_MANIFEST_BYTES, 'index.json', signal);
    const index = parseJson(indexBytes, 'index.json') as ImageIndex;
    if (Array.isArray(index.manifests)) queue.push(...index.manifests);
    for (let seen = 0; queue.length > 0 && seen < 64; seen++) {
      const d = queue.shift() as Descriptor;
      const m = tar.resolve(blobPath(d.digest));
      if (!m || m.size > MAX_MANIFEST_BYTES) continue;
      const bytes = await tar.read(m, opts);
      verifyBytes(bytes, { digest: d.digest, size: d.size });
      const doc = parseJson(bytes, d.digest);
      if (manifestKind(doc, d.mediaType, d.digest) === 'index') {
        queue.push(...(doc as ImageIndex).manifests);
        continue;
      }
      const manifest = doc as ImageManifest;
      const same =
        manifest.config.digest === configDigest &&
        manifest.layers.length === layers.length &&
        manifest.layers.every((l, i) => l.digest === layers[i]?.digest);
      if (same) return { manifest, digest: d.digest };
    }
  } catch {
    // The OCI side is a bonus; manifest.json is authoritative, so a damaged index.json is not fatal.
    return undefined;
  }
  return undefined;
}
