import { createHash } from 'node:crypto';
import fc from 'fast-check';

/*
 * Image documents for the fuzz properties: an index, a manifest and a config as JSON values, one
 * of them damaged where a hostile registry or layout would damage it (a field of another type,
 * a size of -1 or 2^60, a digest that is not one, a platform that is a number, a document that
 * is not an object), then serialized with the digests and sizes of what they point at filled in,
 * so the damage is what a parser meets, not a digest mismatch in front of it.
 */

/** JSON as the documents hold it; `@digest:NAME` and `@size:NAME` stand for a document's digest and size. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The documents of one image, as JSON values with placeholders. */
export interface ImageDocs {
  /** Absent for a single-platform image. */
  index?: Json;
  manifest: Json;
  config: Json;
}

/** The documents serialized: bytes by name, each with its sha256 digest. */
export interface SerializedDocs {
  index?: Blob;
  manifest: Blob;
  config: Blob;
}

/** One serialized document. */
export interface Blob {
  bytes: Uint8Array;
  digest: string;
  mediaType: string | undefined;
}

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
const diffId = hex64.map((h) => `sha256:${h}`);

const platform = fc.record(
  {
    os: fc.constantFrom('linux', 'windows', 'unknown', 'Linux'),
    architecture: fc.constantFrom('amd64', 'arm64', 'arm', 'x86_64', 'aarch64', 'unknown', '386'),
    variant: fc.constantFrom('v7', 'v8', '8', 'v6', ''),
  },
  { requiredKeys: ['os', 'architecture'] },
);

/** An intact image: config, manifest, and (sometimes) an index with other platforms beside it. */
const intact: fc.Arbitrary<ImageDocs> = fc
  .record({
    layers: fc.nat(3),
    platform,
    dockerTypes: fc.boolean(),
    ownMediaType: fc.boolean(),
    index: fc.boolean(),
    others: fc.array(platform, { maxLength: 3 }),
    env: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }),
  })
  .chain((r) =>
    fc.array(diffId, { minLength: r.layers, maxLength: r.layers }).map((diffIds): ImageDocs => {
      const config: Json = {
        architecture: r.platform.architecture,
        os: r.platform.os,
        ...(r.platform.variant !== undefined && { variant: r.platform.variant }),
        config: { Env: r.env, Cmd: ['/bin/sh'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: diffIds },
      };
      const manifest: Json = {
        schemaVersion: 2,
        ...(r.ownMediaType && { mediaType: r.dockerTypes ? DOCKER_MANIFEST : OCI_MANIFEST }),
        config: {
          mediaType: r.dockerTypes ? 'application/vnd.docker.container.image.v1+json' : OCI_CONFIG,
          digest: '@digest:config',
          size: '@size:config',
        },
        layers: diffIds.map((_, i) => ({
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${createHash('sha256').update(`layer ${i}`).digest('hex')}`,
          size: 100 + i,
        })),
      };
      if (!r.index) return { manifest, config };
      const entry = (p: typeof r.platform, digest: string, size: Json): Json => ({
        mediaType: r.dockerTypes ? DOCKER_MANIFEST : OCI_MANIFEST,
        digest,
        size,
        platform: p,
      });
      const index: Json = {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          ...r.others.map((p, i) =>
            entry(p, `sha256:${createHash('sha256').update(`other ${i}`).digest('hex')}`, 10),
          ),
          entry(r.platform, '@digest:manifest', '@size:manifest'),
        ],
      };
      return { index, manifest, config };
    }),
  );

/** Values a hostile document puts where another type belongs. */
const hostileValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    -1,
    2 ** 60,
    1.5,
    0,
    '',
    'sha256:',
    'sha256:xyz',
    'md5:00',
    [],
    {},
    true,
    '@digest:config',
  ),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

/** Every path to a value inside `value` (object keys and array indexes), the root included. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const out = [prefix];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) out.push(...paths(v, [...prefix, i]));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  }
  return out;
}

/** `value` with the value at `path` replaced (or, with `remove`, deleted from its object or array). */
function replaced(value: Json, path: readonly (string | number)[], by: Json, remove: boolean): Json {
  if (path.length === 0) return by;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  if (Array.isArray(value)) {
    const copy = [...value];
    if (remove && rest.length === 0) copy.splice(head as number, 1);
    else copy[head as number] = replaced(value[head as number] as Json, rest, by, remove);
    return copy;
  }
  const object = { ...(value as Record<string, Json>) };
  if (remove && rest.length === 0) delete object[head as string];
  else object[head as string] = replaced(object[head as string] as Json, rest, by, remove);
  return object;
}

/** Where one damage lands in a document (by position in its list of paths), and what it leaves there. */
export interface JsonDamage {
  at: number;
  by: Json;
  remove: boolean;
}

/** One damage to some JSON document. */
export const jsonDamage: fc.Arbitrary<JsonDamage> = fc.record({
  at: fc.nat(),
  by: hostileValue,
  remove: fc.boolean(),
});

/** `doc` with `damage` done to it: one of its values replaced or removed. */
export function damaged(doc: Json, damage: JsonDamage): Json {
  const all = paths(doc);
  return replaced(doc, all[damage.at % all.length] as (string | number)[], damage.by, damage.remove);
}

/** An image whose documents carry zero to three damages. */
export const imageDocs: fc.Arbitrary<ImageDocs> = fc
  .tuple(
    intact,
    fc.array(
      fc.tuple(fc.constantFrom('index' as const, 'manifest' as const, 'config' as const), jsonDamage),
      { maxLength: 3 },
    ),
  )
  .map(([docs, damages]) => {
    const out = { ...docs };
    for (const [which, damage] of damages) {
      const doc = out[which];
      if (doc !== undefined) out[which] = damaged(doc, damage);
    }
    return out;
  });

function fill(value: Json, blobs: Record<string, Blob>): Json {
  if (typeof value === 'string') {
    const m = /^@(digest|size):(\w+)$/.exec(value);
    const blob = m ? blobs[m[2] as string] : undefined;
    if (m && blob) return m[1] === 'digest' ? blob.digest : blob.bytes.byteLength;
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => fill(v, blobs));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v, blobs)]));
  }
  return value;
}

function blob(value: Json, blobs: Record<string, Blob>): Blob {
  const bytes = new TextEncoder().encode(JSON.stringify(fill(value, blobs)));
  const mediaType =
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    typeof value.mediaType === 'string'
      ? value.mediaType
      : undefined;
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, mediaType };
}

/** Serializes the documents bottom-up, filling each placeholder with the digest or size it stands for. */
export function serialize(docs: ImageDocs): SerializedDocs {
  const blobs: Record<string, Blob> = {};
  blobs.config = blob(docs.config, blobs);
  blobs.manifest = blob(docs.manifest, blobs);
  if (docs.index !== undefined) blobs.index = blob(docs.index, blobs);
  return blobs as unknown as SerializedDocs;
}
