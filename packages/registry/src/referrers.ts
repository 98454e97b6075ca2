/**
 * Finding the artifacts that refer to a manifest (its `subject`), per OCI distribution 1.1:
 * the referrers API (`GET /v2/<name>/referrers/<digest>`) where the registry has it, else the
 * tag-schema fallback — an index tagged `<alg>-<hex>` that pushers keep up to date themselves.
 * distribution 2.8 (Debian's docker-registry) has no referrers API and answers 404.
 */
import { IrbError } from '@irb/errors';
import {
  addReferrer,
  manifestBytes,
  type ReferrerDescriptor,
  type ReferrersIndex,
  referrersTag,
  sha256Digest,
} from './artifact.ts';
import { digestOf, verifyBytes } from './digest.ts';
import { dump, readErrorBody, readLimited } from './errors.ts';
import { MAX_MANIFEST_BYTES, parseJsonBytes } from './manifest.ts';
import { OCI_INDEX } from './media-types.ts';
import type { Reference } from './reference.ts';
import { header } from './transport/http.ts';
import { putManifest, type UploadContext } from './upload.ts';

/** What {@link listReferrers} found, and how. */
export interface Referrers {
  /** Referrer descriptors (filtered by `artifactType` when one was asked). */
  manifests: ReferrerDescriptor[];
  /** `api`: the registry's referrers API; `tag`: the tag-schema fallback index (or none). */
  via: 'api' | 'tag';
}

const INDEX_ACCEPT = { accept: OCI_INDEX };

/**
 * The referrers of `digest` in `ref`'s repository, through the referrers API, falling back to
 * the `<alg>-<hex>` tag when the registry answers 404 (no API). No fallback tag: no referrers.
 */
export async function listReferrers(
  ctx: UploadContext,
  ref: Reference,
  digest: string,
  artifactType: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Referrers> {
  const name = `${ref.registry}/${ref.repository}@${digest}`;
  const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
  const res = await ctx.requests.request(
    ctx.endpoint,
    ref,
    'GET',
    `referrers/${digest}${query}`,
    INDEX_ACCEPT,
    signal,
    `referrers of ${name}`,
  );
  const filter = (list: ReferrerDescriptor[]) =>
    artifactType ? list.filter((m) => m.artifactType === artifactType) : list;
  if (res.status === 200 && (header(res.headers, 'content-type') ?? '').startsWith(OCI_INDEX)) {
    const index = parseIndex(await readLimited(res, MAX_MANIFEST_BYTES, `referrers of ${name}`), name);
    return { manifests: filter(index.manifests), via: 'api' };
  }
  // The spec says to fall back on a 404. Registries also answer a missing API otherwise: GHCR
  // redirects to its web UI (HTML, often rate-limited), some send 400 or 405. Anything that is
  // not an index of referrers means "no API here": the tag schema is asked instead.
  await dump(res);
  const fallback = await readTagIndex(ctx, ref, digest, signal, false);
  return { manifests: filter(fallback?.index.manifests ?? []), via: 'tag' };
}

/**
 * Adds `descriptor` to the tag-schema index of `subject` (read, add, write), then reads it back:
 * another pusher writing at the same moment can overwrite our entry, so the write is repeated
 * until the entry is there (up to 5 rounds). Entries other tools put there are kept.
 */
export async function attachReferrerTag(
  ctx: UploadContext,
  ref: Reference,
  subject: string,
  descriptor: ReferrerDescriptor,
  signal: AbortSignal | undefined,
): Promise<void> {
  const tag = referrersTag(subject);
  for (let round = 0; round < 5; round++) {
    const current = await readTagIndex(ctx, ref, subject, signal, true);
    if (current?.index.manifests.some((m) => m.digest === descriptor.digest)) return;
    const next = addReferrer(current?.index, descriptor);
    const bytes = manifestBytes(next);
    await putManifest(ctx, ref, tag, bytes, OCI_INDEX, sha256Digest(bytes), signal);
    const check = await readTagIndex(ctx, ref, subject, signal, true);
    if (check?.index.manifests.some((m) => m.digest === descriptor.digest)) return;
  }
  throw new IrbError(
    'IRB_REGISTRY_FAILED',
    `could not add ${descriptor.digest} to the referrers index ${ref.registry}/${ref.repository}:${tag}: other pushers kept replacing it; push again`,
  );
}

async function readTagIndex(
  ctx: UploadContext,
  ref: Reference,
  subject: string,
  signal: AbortSignal | undefined,
  push: boolean,
): Promise<{ index: ReferrersIndex; digest: string } | undefined> {
  const tag = referrersTag(subject);
  const name = `${ref.registry}/${ref.repository}:${tag}`;
  const res = await ctx.requests.request(
    ctx.endpoint,
    ref,
    'GET',
    `manifests/${tag}`,
    INDEX_ACCEPT,
    signal,
    name,
    push ? { scopes: ['push'] } : {},
  );
  if (res.status === 404) {
    await dump(res);
    return undefined;
  }
  if (res.status !== 200) {
    const text = ctx.secrets.clean(await readErrorBody(res));
    throw new IrbError(
      'IRB_REGISTRY_FAILED',
      `registry answered ${res.status} reading the referrers index ${name}${text ? `: ${text}` : ''}`,
    );
  }
  const bytes = await readLimited(res, MAX_MANIFEST_BYTES, name);
  const announced = header(res.headers, 'docker-content-digest');
  if (announced) verifyBytes(bytes, { digest: announced, what: name });
  const digest = announced ?? digestOf(bytes);
  // A registry that resolves the tag `sha256-<hex>` to the digest itself (GitLab does) hands
  // back the subject, not an index of its referrers: there is no fallback index then.
  if (digest === subject) return undefined;
  return { index: parseIndex(bytes, name), digest };
}

function parseIndex(bytes: Uint8Array, name: string): ReferrersIndex {
  const json = parseJsonBytes(bytes, `referrers index of ${name}`) as Partial<ReferrersIndex> | null;
  if (!json || typeof json !== 'object' || !Array.isArray(json.manifests)) {
    throw new IrbError('IRB_MANIFEST_INVALID', `the referrers index of ${name} has no manifests list`);
  }
  return { schemaVersion: 2, mediaType: OCI_INDEX, manifests: json.manifests };
}
