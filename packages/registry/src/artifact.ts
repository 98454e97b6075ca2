import { createHash } from 'node:crypto';
import { OCI_EMPTY, OCI_INDEX, OCI_MANIFEST } from './media-types.ts';
import type { Descriptor } from './types.ts';

/**
 * irb's initramfs as an OCI 1.1 artifact: an image manifest with irb's own `artifactType`, the
 * empty config and one layer, the archive itself. Container runtimes refuse it (its config is
 * not an image config), registries store and replicate it like any image, and the referrers API
 * (or its tag-schema fallback) finds it from the image it was built from.
 */

/** The `artifactType` of an irb initramfs manifest. */
export const INITRAMFS_ARTIFACT_TYPE = 'application/vnd.irb.initramfs.v1';

/** Compressions an initramfs layer can have. */
export type InitramfsLayerCompression = 'none' | 'gzip' | 'zstd' | 'lz4' | 'xz';

const LAYER_PREFIX = 'application/vnd.irb.initramfs.layer.v1.cpio';

/** The layer media type for an archive compressed with `compression`: `…cpio`, `…cpio+gzip`, `…cpio+zstd`… */
export function initramfsLayerMediaType(compression: InitramfsLayerCompression): string {
  return compression === 'none' ? LAYER_PREFIX : `${LAYER_PREFIX}+${compression}`;
}

/** The compression an initramfs layer media type names, or `undefined` when it is not one. */
export function initramfsLayerCompression(mediaType: string): InitramfsLayerCompression | undefined {
  if (mediaType === LAYER_PREFIX) return 'none';
  if (!mediaType.startsWith(`${LAYER_PREFIX}+`)) return undefined;
  const suffix = mediaType.slice(LAYER_PREFIX.length + 1);
  return (['gzip', 'zstd', 'lz4', 'xz'] as const).find((c) => c === suffix);
}

/** The OCI empty descriptor: the two bytes `{}`, inlined as `data`. */
export const EMPTY_CONFIG: Descriptor & { data: string } = {
  mediaType: OCI_EMPTY,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
  data: 'e30=',
};

/** The bytes of {@link EMPTY_CONFIG}. */
export const EMPTY_CONFIG_BYTES: Uint8Array = new TextEncoder().encode('{}');

/** Annotation keys irb writes on an initramfs manifest. */
export const INITRAMFS_ANNOTATIONS = {
  /** The image reference the archive was built from, as given (never with credentials). */
  source: 'dev.irb.source.ref',
  /** The manifest digest of the image the archive was built from. */
  sourceDigest: 'dev.irb.source.digest',
  /** The image's platform, `os/arch[/variant]`. */
  platform: 'dev.irb.platform',
  /** `none`, `gzip`, `zstd`, `lz4` or `xz`. */
  compression: 'dev.irb.compression',
  /** The irb version that built it. */
  version: 'dev.irb.version',
  /** Guest memory the build recommends, in MiB. */
  recommendedMemoryMiB: 'dev.irb.memory.recommended-mib',
  /** The build key (the same key the local output cache uses). */
  buildKey: 'dev.irb.build-key',
  /** When it was built: only from SOURCE_DATE_EPOCH, so that pushes stay reproducible. */
  created: 'org.opencontainers.image.created',
  /** The archive's file name (ORAS and registry UIs show it). */
  title: 'org.opencontainers.image.title',
} as const;

/** An OCI image manifest with the 1.1 artifact fields. */
export interface ArtifactManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  artifactType: string;
  config: Descriptor & { data?: string };
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** What {@link initramfsManifest} needs. */
export interface InitramfsManifestInput {
  /** The archive blob: its digest and size. */
  layer: { digest: string; size: number };
  compression: InitramfsLayerCompression;
  /** Annotations of the manifest (see {@link INITRAMFS_ANNOTATIONS}); empty values are dropped. */
  annotations?: Record<string, string | undefined>;
  /** The layer's file name, for `org.opencontainers.image.title`. */
  title?: string;
  /** The manifest of the source image, when the artifact goes to the same repository. */
  subject?: Descriptor;
}

function sortedRecord(
  record: Record<string, string | undefined> | undefined,
): Record<string, string> | undefined {
  if (!record) return undefined;
  const entries = Object.entries(record)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length ? Object.fromEntries(entries) : undefined;
}

/** The manifest of an initramfs artifact (key order fixed, annotations sorted: same input, same bytes). */
export function initramfsManifest(input: InitramfsManifestInput): ArtifactManifest {
  const layer: Descriptor = {
    mediaType: initramfsLayerMediaType(input.compression),
    digest: input.layer.digest,
    size: input.layer.size,
  };
  if (input.title) layer.annotations = { [INITRAMFS_ANNOTATIONS.title]: input.title };
  const manifest: ArtifactManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: INITRAMFS_ARTIFACT_TYPE,
    config: { ...EMPTY_CONFIG },
    layers: [layer],
  };
  if (input.subject) {
    manifest.subject = {
      mediaType: input.subject.mediaType,
      digest: input.subject.digest,
      size: input.subject.size,
    };
  }
  const annotations = sortedRecord(input.annotations);
  if (annotations) manifest.annotations = annotations;
  return manifest;
}

/** The canonical bytes of a manifest or index (compact JSON in the object's own key order). */
export function manifestBytes(manifest: object): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(manifest));
}

/** `sha256:<hex>` of some bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** True when a manifest (parsed JSON) is an irb initramfs artifact. */
export function isInitramfsManifest(manifest: unknown): manifest is ArtifactManifest {
  if (typeof manifest !== 'object' || manifest === null) return false;
  const m = manifest as Partial<ArtifactManifest>;
  return (
    m.artifactType === INITRAMFS_ARTIFACT_TYPE &&
    Array.isArray(m.layers) &&
    m.layers.length === 1 &&
    initramfsLayerCompression(m.layers[0]?.mediaType ?? '') !== undefined
  );
}

/**
 * The tag under which the referrers tag-schema fallback (OCI distribution 1.1) keeps the index of
 * referrers of `digest`: `<algorithm>-<hex>`, truncated to the 128 characters a tag may have.
 */
export function referrersTag(digest: string): string {
  const colon = digest.indexOf(':');
  if (colon <= 0) throw new RangeError(`not a digest: ${digest}`);
  const tag = `${digest.slice(0, colon)}-${digest.slice(colon + 1)}`;
  return tag.replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 128);
}

/** A descriptor in a referrers index: what a client filters on without fetching the manifest. */
export interface ReferrerDescriptor extends Descriptor {
  artifactType?: string;
}

/** An OCI image index listing referrers. */
export interface ReferrersIndex {
  schemaVersion: 2;
  mediaType: typeof OCI_INDEX;
  manifests: ReferrerDescriptor[];
}

/** The descriptor of a pushed artifact manifest, as it appears in a referrers index. */
export function referrerDescriptor(manifest: ArtifactManifest, bytes: Uint8Array): ReferrerDescriptor {
  const descriptor: ReferrerDescriptor = {
    mediaType: manifest.mediaType,
    digest: sha256Digest(bytes),
    size: bytes.byteLength,
    artifactType: manifest.artifactType,
  };
  if (manifest.annotations) descriptor.annotations = manifest.annotations;
  return descriptor;
}

/**
 * Adds `descriptor` to a referrers index (or starts one), keeping the entries that other tools
 * put there. An entry with the same digest is not added twice.
 */
export function addReferrer(
  index: ReferrersIndex | undefined,
  descriptor: ReferrerDescriptor,
): ReferrersIndex {
  const manifests = (index?.manifests ?? []).filter((m) => m.digest !== descriptor.digest);
  manifests.push(descriptor);
  return { schemaVersion: 2, mediaType: OCI_INDEX, manifests };
}
