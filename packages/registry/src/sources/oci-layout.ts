import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { IrbError } from '@irb/errors';
import { parseDigest } from '../digest.ts';
import { MAX_MANIFEST_BYTES } from '../manifest.ts';
import { isIndexMediaType } from '../media-types.ts';
import { selectManifest } from '../platform.ts';
import { parseReference } from '../reference.ts';
import type { Descriptor, Image, ImageIndex, OpenOptions, Platform } from '../types.ts';
import {
  type BlobReader,
  checkPlatform,
  createImage,
  isObject,
  manifestKind,
  parseJson,
  readBlob,
  resolveManifest,
  wantedPlatform,
} from './common.ts';
import { openRegularFile, type RegularFile, readRange, readRegularFile } from './files.ts';

/** Options of {@link openOciLayout}. */
export interface OciLayoutOptions {
  /**
   * The image to open, matched against `org.opencontainers.image.ref.name` (or containerd's
   * `io.containerd.image.name`). Default: the only image in the layout.
   */
  tag?: string;
  /** `os/arch[/variant]` or a {@link Platform}. Default: `linux/amd64`. */
  platform?: string | Platform;
  signal?: AbortSignal;
}

/** The annotation the OCI image layout uses to name index.json entries. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';

/**
 * Reads blobs from `<dir>/blobs/<algorithm>/<hex>`: regular files only, whose size must be the
 * descriptor's, read no further than that.
 */
export function ociLayoutBlobReader(dir: string): BlobReader {
  return {
    stream(descriptor, options) {
      const { algorithm, hex } = parseDigest(descriptor.digest);
      return readBlobFile(join(dir, 'blobs', algorithm, hex), dir, descriptor, options);
    },
  };
}

async function* readBlobFile(
  path: string,
  dir: string,
  descriptor: Pick<Descriptor, 'digest' | 'size'>,
  options?: OpenOptions,
): AsyncGenerator<Uint8Array, void, undefined> {
  const { digest, size } = descriptor;
  options?.signal?.throwIfAborted();
  let file: RegularFile;
  try {
    file = await openRegularFile(path, 'OCI layout blob');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new IrbError(
        'IRB_BLOB_NOT_FOUND',
        `OCI layout ${dir} has no blob ${digest} (expected at ${path}); the layout is incomplete — copy the image into it again`,
        { cause: error },
      );
    }
    throw error;
  }
  try {
    if (file.size !== size) {
      throw new IrbError(
        'IRB_SIZE_MISMATCH',
        `OCI layout blob ${path} holds ${file.size} bytes, its descriptor says ${size}; the layout is damaged — copy the image into it again`,
      );
    }
    yield* readRange(file.handle, 0, size, options?.signal);
  } finally {
    await file.handle.close();
  }
}

/**
 * Opens an image from an OCI image layout directory (`oci:DIR[:TAG]`): picks the index.json
 * entry by tag, follows nested indexes to the manifest for the platform, and verifies every
 * blob against its digest when it is read.
 */
export async function openOciLayout(dir: string, options: OciLayoutOptions = {}): Promise<Image> {
  const name = `oci:${dir}${options.tag ? `:${options.tag}` : ''}`;
  const platform = wantedPlatform(options.platform);
  const { signal } = options;
  signal?.throwIfAborted();
  await checkLayout(dir, signal);
  const index = await readIndex(dir, signal);
  const entry = pickEntry(index, options.tag, dir);
  const reader = ociLayoutBlobReader(dir);
  const resolved =
    'manifests' in entry
      ? await resolveManifest(
          reader,
          // A synthetic index of same-tag entries: choose by platform, then follow the pick.
          selectManifest(entry, platform, name),
          platform,
          name,
          options.signal,
          true,
        )
      : await resolveManifest(reader, entry, platform, name, options.signal);
  const image = createImage({
    reader,
    manifestDigest: resolved.descriptor.digest,
    manifest: resolved.manifest,
    name,
    ...(signal && { signal }),
  });
  await checkPlatform(image, resolved, platform, name);
  return image;
}

/** What {@link ociLayoutPlatforms} found. */
export interface OciLayoutPlatforms {
  /** The nested index the platforms come from, when there is one. */
  indexDigest?: string;
  /** Each platform-tagged manifest: its platform and digest. */
  platforms: Array<{ platform: Platform; digest: string }>;
}

/**
 * The platforms an OCI layout offers under `tag` (default: every entry): the manifests of a
 * nested index the tag names, or several same-tag index.json entries with platforms (fewer than
 * two: none). Read as {@link openOciLayout} reads: regular files only, capped, the nested index
 * verified against its digest.
 */
export async function ociLayoutPlatforms(
  dir: string,
  options: { tag?: string; signal?: AbortSignal } = {},
): Promise<OciLayoutPlatforms> {
  const { tag, signal } = options;
  const index = await readIndex(dir, signal);
  const entries = index.manifests.filter((d) => tag === undefined || matchesTag(d, tag));
  const nested = entries.length === 1 && isIndexMediaType(entries[0]?.mediaType) ? entries[0] : undefined;
  let list = entries;
  if (nested) {
    const what = `oci:${dir} index (${nested.digest})`;
    const bytes = await readBlob(ociLayoutBlobReader(dir), nested, what, MAX_MANIFEST_BYTES, signal);
    const doc = parseJson(bytes, what);
    if (manifestKind(doc, nested.mediaType, what) === 'index') list = (doc as ImageIndex).manifests;
  }
  const platforms = list.flatMap((d) => (d.platform ? [{ platform: d.platform, digest: d.digest }] : []));
  if (nested) return { indexDigest: nested.digest, platforms };
  return { platforms: platforms.length < 2 ? [] : platforms };
}

async function checkLayout(dir: string, signal: AbortSignal | undefined): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await readRegularFile(join(dir, 'oci-layout'), {
      what: 'OCI layout file',
      maxBytes: MAX_MANIFEST_BYTES,
      ...(signal && { signal }),
    });
  } catch (error) {
    if (error instanceof IrbError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const exists = await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!exists) {
      throw new IrbError(
        'IRB_SOURCE_NOT_FOUND',
        `OCI layout directory ${dir} does not exist; check the path after oci:`,
        {
          cause: error,
        },
      );
    }
    throw new IrbError(
      'IRB_SOURCE_INVALID',
      `${dir} is not an OCI image layout (${code === 'ENOENT' ? 'no oci-layout file' : `cannot read oci-layout: ${code}`}); create one with skopeo copy ... oci:${dir}:TAG`,
      { cause: error },
    );
  }
  const doc = parseJson(bytes, `${dir}/oci-layout`);
  const version = isObject(doc) ? doc.imageLayoutVersion : undefined;
  if (typeof version !== 'string' || !version.startsWith('1.')) {
    throw new IrbError(
      'IRB_SOURCE_INVALID',
      `${dir}/oci-layout declares image layout version ${String(version)}; irb reads version 1.x`,
    );
  }
}

async function readIndex(dir: string, signal: AbortSignal | undefined): Promise<ImageIndex> {
  let bytes: Uint8Array;
  try {
    bytes = await readRegularFile(join(dir, 'index.json'), {
      what: 'OCI layout file',
      maxBytes: MAX_MANIFEST_BYTES,
      ...(signal && { signal }),
    });
  } catch (error) {
    if (error instanceof IrbError) throw error;
    throw new IrbError(
      'IRB_SOURCE_INVALID',
      `OCI layout ${dir} has no readable index.json (${(error as NodeJS.ErrnoException).code}); the layout is incomplete`,
      { cause: error },
    );
  }
  const doc = parseJson(bytes, `${dir}/index.json`);
  manifestKind(doc, undefined, `${dir}/index.json`);
  if (!isObject(doc) || !Array.isArray(doc.manifests)) {
    throw new IrbError('IRB_SOURCE_INVALID', `${dir}/index.json is not an image index (no manifests list)`);
  }
  return doc as unknown as ImageIndex;
}

/** The names an index.json entry answers to. */
function entryNames(descriptor: Descriptor): string[] {
  const names: string[] = [];
  const ref = descriptor.annotations?.[REF_NAME_ANNOTATION];
  const containerd = descriptor.annotations?.[CONTAINERD_NAME_ANNOTATION];
  if (ref) names.push(ref);
  if (containerd && containerd !== ref) names.push(containerd);
  return names;
}

/** True when `wanted` names the entry: the exact ref name, or the same image reference written another way. */
function matchesTag(descriptor: Descriptor, wanted: string): boolean {
  const names = entryNames(descriptor);
  if (names.includes(wanted)) return true;
  const want = tryParse(wanted);
  if (!want) return false;
  return names.some((n) => {
    const have = tryParse(n);
    return (
      have !== undefined &&
      have.registry === want.registry &&
      have.repository === want.repository &&
      have.tag === want.tag
    );
  });
}

function tryParse(text: string) {
  if (!/[/:]/.test(text)) return undefined;
  try {
    return parseReference(text);
  } catch {
    return undefined;
  }
}

/**
 * Chooses what the layout's index.json offers for the tag: one descriptor, or (when several
 * entries share the tag, or an untagged layout lists one entry per platform) a synthetic index
 * to choose from by platform.
 */
function pickEntry(index: ImageIndex, tag: string | undefined, dir: string): Descriptor | ImageIndex {
  const manifests = index.manifests;
  const tags = [...new Set(manifests.flatMap((d) => entryNames(d).slice(0, 1)))];
  if (manifests.length === 0) {
    throw new IrbError('IRB_IMAGE_NOT_FOUND', `OCI layout ${dir} is empty (index.json lists no images)`);
  }
  if (tag !== undefined) {
    const matches = manifests.filter((d) => matchesTag(d, tag));
    if (matches.length === 0) {
      throw new IrbError(
        'IRB_IMAGE_NOT_FOUND',
        `OCI layout ${dir} has no image tagged "${tag}"; ${
          tags.length ? `it has: ${tags.join(', ')}` : 'its images carry no tags (open it without a tag)'
        }`,
      );
    }
    return matches.length === 1 ? (matches[0] as Descriptor) : { schemaVersion: 2, manifests: matches };
  }
  if (manifests.length === 1) return manifests[0] as Descriptor;
  if (tags.length <= 1 && manifests.every((d) => d.platform)) return { schemaVersion: 2, manifests };
  throw new IrbError(
    'IRB_TAG_REQUIRED',
    `OCI layout ${dir} holds ${manifests.length} images; name one as oci:${dir}:TAG${
      tags.length ? ` (tags: ${tags.join(', ')})` : ''
    }`,
  );
}
