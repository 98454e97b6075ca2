/**
 * The write path of the distribution API: blob existence checks, cross-repository mounts,
 * monolithic and chunked uploads, and manifest PUTs. Every write asks for the
 * `repository:<name>:pull,push` scope through the same challenge flow reads use.
 *
 * An upload session is not worth saving when it breaks: after a transient failure the session
 * is abandoned (best-effort `DELETE`) and the upload starts again from `POST`, so a half-written
 * session can never be committed under the digest.
 */

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { IrbError, isIrbError } from '@irb/errors';
import { parseDigest } from './digest.ts';
import { dump, readErrorBody } from './errors.ts';
import type { Endpoint } from './mirrors.ts';
import type { Secrets } from './redact.ts';
import type { Reference } from './reference.ts';
import {
  type HttpResponse,
  header,
  isRetryableNetworkError,
  isRetryableStatus,
  urlFromHeader,
} from './transport/http.ts';
import type { RegistryTransport, RequestExtras } from './transport/request.ts';
import { backoffDelay, type RetryOptions, sleep, withRetry } from './transport/retry.ts';
import type { ProgressListener } from './types.ts';

/** A blob to upload: its digest and size, and a way to read it from the start (once per attempt). */
export interface BlobSource {
  digest: string;
  size: number;
  /** A fresh stream of the whole blob; called again when an upload restarts. */
  open(signal?: AbortSignal): AsyncIterable<Uint8Array>;
}

/** Options of {@link RegistryClient.pushBlob}. */
export interface PushBlobOptions {
  signal?: AbortSignal;
  /**
   * Upload in chunks of this many bytes (`POST`, `PATCH` with `Content-Range` per chunk, `PUT`).
   * Default: monolithic (`POST`, then one `PUT ?digest=` carrying the whole blob). Chunks suit
   * registries or proxies that cap request bodies; each chunk is held in memory.
   */
  chunkSize?: number;
  /**
   * Repositories of the same registry that may hold the blob already; the registry is asked to
   * mount it from them (`POST ?mount=&from=`) instead of receiving the bytes again.
   */
  mountFrom?: readonly string[];
  /** Upload progress (`phase: 'network'`, then `done`). */
  onProgress?: ProgressListener;
}

/** How a blob got into the repository. */
export type PushBlobResult = 'exists' | 'mounted' | 'uploaded';

/** What an upload shares with its client. */
export interface UploadContext {
  requests: RegistryTransport;
  endpoint: Endpoint;
  retry: Required<RetryOptions>;
  secrets: Secrets;
}

/** A blob from bytes in memory. */
export function blobFromBytes(bytes: Uint8Array, digest: string): BlobSource {
  return {
    digest,
    size: bytes.byteLength,
    async *open() {
      yield bytes;
    },
  };
}

/** A blob from a file: hashed once here (sha256), read from disk for every attempt. */
export async function blobFromFile(path: string, signal?: AbortSignal): Promise<BlobSource> {
  const hasher = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { signal }) as AsyncIterable<Buffer>) {
    hasher.update(chunk);
    size += chunk.byteLength;
  }
  const digest = `sha256:${hasher.digest('hex')}`;
  return {
    digest,
    size,
    async *open(openSignal?: AbortSignal) {
      const info = await stat(path);
      if (info.size !== size) {
        throw new IrbError(
          'IRB_INPUT_UNREADABLE',
          `${path} changed while it was being pushed (${size} bytes became ${info.size}); push it again once it is complete`,
        );
      }
      yield* createReadStream(path, { signal: openSignal }) as AsyncIterable<Buffer>;
    },
  };
}

/** A transient failure in the middle of an upload: the session is dropped and the upload restarts. */
class RestartUpload extends Error {
  readonly restart = true;
}

const PUSH: readonly string[] = ['push'];

/**
 * Makes sure the blob is in `ref`'s repository: `HEAD` first (skipped when present), then a
 * mount from `mountFrom`, else an upload. Transient failures restart the upload from `POST`.
 */
export async function pushBlob(
  ctx: UploadContext,
  ref: Reference,
  blob: BlobSource,
  options: PushBlobOptions = {},
): Promise<PushBlobResult> {
  const { signal } = options;
  parseDigest(blob.digest);
  const name = `${ref.registry}/${ref.repository}@${blob.digest}`;
  if (
    options.chunkSize !== undefined &&
    (!Number.isSafeInteger(options.chunkSize) || options.chunkSize < 1)
  ) {
    throw new IrbError(
      'IRB_OPTION_INVALID',
      `\`chunkSize\` must be a whole number of bytes ≥ 1, got ${options.chunkSize}`,
    );
  }
  const progress = (done: number, phase: 'network' | 'done') =>
    options.onProgress?.({ type: 'blob', digest: blob.digest, done, total: blob.size, phase });
  if (await blobExists(ctx, ref, blob.digest, signal)) {
    progress(blob.size, 'done');
    return 'exists';
  }
  let session: URL | undefined;
  for (const from of options.mountFrom ?? []) {
    if (from === ref.repository) continue;
    const res = await write(
      ctx,
      ref,
      'POST',
      `blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`,
      { 'content-length': '0' },
      signal,
      name,
      {
        scopes: ['push', `repository:${from}:pull`],
      },
    );
    if (res.status === 201) {
      await dump(res);
      progress(blob.size, 'done');
      return 'mounted';
    }
    if (res.status === 202) {
      // The registry could not mount (blob unknown there, or no pull access) and opened a session.
      session = locationOf(res);
      await dump(res);
      break;
    }
    await dump(res);
  }
  let sent = 0;
  let sentAtStart = 0;
  const onSent = (n: number) => {
    sent = n;
    progress(n, 'network');
  };
  await withRetry(
    async () => {
      sentAtStart = sent;
      const url = session ?? (await startSession(ctx, ref, signal, name));
      session = undefined;
      try {
        await (options.chunkSize === undefined
          ? uploadMonolithic(ctx, ref, url, blob, signal, name, onSent)
          : uploadChunked(ctx, ref, url, blob, options.chunkSize, signal, name, onSent));
      } catch (error) {
        if (error instanceof RestartUpload || (!isIrbError(error) && isRetryableNetworkError(error))) {
          await cancelSession(ctx, ref, url);
        }
        throw error;
      }
    },
    {
      ...ctx.retry,
      retryError: (error) =>
        error instanceof RestartUpload || (!isIrbError(error) && isRetryableNetworkError(error)),
      progressed: () => sent > sentAtStart,
    },
    signal,
  ).catch((error: unknown) => {
    if (signal?.aborted || (isIrbError(error) && !(error instanceof RestartUpload))) throw error;
    throw new IrbError(
      'IRB_REGISTRY_FAILED',
      `uploading ${name} failed even after retrying: ${ctx.secrets.clean((error as Error).message)}`,
      { cause: ctx.secrets.safeCause(error) },
    );
  });
  progress(blob.size, 'done');
  return 'uploaded';
}

/** True when the repository has the blob (`HEAD /v2/<name>/blobs/<digest>` answers 200). */
export async function blobExists(
  ctx: UploadContext,
  ref: Reference,
  digest: string,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const name = `${ref.registry}/${ref.repository}@${digest}`;
  const res = await ctx.requests.request(ctx.endpoint, ref, 'HEAD', `blobs/${digest}`, {}, signal, name, {
    scopes: PUSH,
  });
  await dump(res);
  if (res.status === 200) return true;
  if (res.status === 404) return false;
  throw await writeError(ctx, res, name, 'checking blob');
}

/** Result of {@link putManifest}. */
export interface PutManifestResult {
  /** The digest the registry computed (checked against ours). */
  digest: string;
  /**
   * True when the registry answered with `OCI-Subject`: it indexed the `subject` itself (the
   * referrers API), so the tag-schema fallback index need not be written.
   */
  subjectHandled: boolean;
}

/** `PUT /v2/<name>/manifests/<tag|digest>` of exact bytes; retried like any idempotent request. */
export async function putManifest(
  ctx: UploadContext,
  ref: Reference,
  reference: string,
  bytes: Uint8Array,
  mediaType: string,
  digest: string,
  signal: AbortSignal | undefined,
): Promise<PutManifestResult> {
  const name = `${ref.registry}/${ref.repository}${reference.includes(':') ? '@' : ':'}${reference}`;
  const send = () =>
    ctx.requests.request(
      ctx.endpoint,
      ref,
      'PUT',
      `manifests/${reference}`,
      { 'content-type': mediaType, 'content-length': String(bytes.byteLength) },
      signal,
      name,
      { scopes: PUSH, body: () => bytes },
    );
  // distribution writes a blob's repository link in place, not atomically: while another
  // pusher commits the same blob, the manifest check can find the link empty and answer
  // MANIFEST_BLOB_UNKNOWN for a blob that is there. That answer is retried with backoff.
  let res = await send();
  for (let retry = 0; res.status === 400 || res.status === 404; retry++) {
    const text = ctx.secrets.clean(await readErrorBody(res));
    if (!/MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN/.test(text) || retry >= ctx.retry.retries) {
      throw new IrbError(
        'IRB_REGISTRY_FAILED',
        /BLOB_UNKNOWN/.test(text)
          ? `registry ${ctx.endpoint.host} refused the manifest ${name}: it does not have a blob the manifest names (${text}); push again`
          : `registry answered ${res.status} pushing the manifest ${name}${text ? `: ${text}` : ''}`,
      );
    }
    await sleep(backoffDelay(retry, ctx.retry), signal);
    res = await send();
  }
  if (res.status !== 201 && res.status !== 200) {
    const text = ctx.secrets.clean(await readErrorBody(res));
    throw new IrbError(
      'IRB_REGISTRY_FAILED',
      `registry answered ${res.status} pushing the manifest ${name}${isRetryableStatus(res.status) ? ' even after retrying' : ''}${text ? `: ${text}` : ''}`,
    );
  }
  await dump(res);
  const announced = header(res.headers, 'docker-content-digest');
  if (announced && announced !== digest) {
    throw new IrbError(
      'IRB_DIGEST_MISMATCH',
      `registry ${ctx.endpoint.host} stored the manifest ${name} under ${announced}, not ${digest}; it rewrote the manifest, so references by digest would not match — use a registry that keeps manifests byte for byte`,
    );
  }
  return { digest, subjectHandled: header(res.headers, 'oci-subject') !== undefined };
}

async function write(
  ctx: UploadContext,
  ref: Reference,
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
  name: string,
  extras: RequestExtras,
): Promise<HttpResponse> {
  return ctx.requests.request(ctx.endpoint, ref, method, path, headers, signal, name, {
    scopes: PUSH,
    retry: false,
    ...extras,
  });
}

async function startSession(
  ctx: UploadContext,
  ref: Reference,
  signal: AbortSignal | undefined,
  name: string,
): Promise<URL> {
  const res = await write(ctx, ref, 'POST', 'blobs/uploads/', { 'content-length': '0' }, signal, name, {});
  if (res.status !== 202) throw await writeError(ctx, res, name, 'starting the upload');
  const url = locationOf(res);
  await dump(res);
  return url;
}

function locationOf(res: HttpResponse): URL {
  const location = header(res.headers, 'location');
  if (!location) {
    throw new IrbError(
      'IRB_REGISTRY_FAILED',
      `registry answered ${res.status} to an upload without a Location header`,
    );
  }
  return urlFromHeader(location, res.url);
}

/** The session URL with `digest=` added, keeping the registry's own query bytes as they are. */
function withDigest(url: URL, digest: string): URL {
  const next = new URL(url);
  next.search = `${url.search ? `${url.search}&` : '?'}digest=${encodeURIComponent(digest)}`;
  return next;
}

async function uploadMonolithic(
  ctx: UploadContext,
  ref: Reference,
  url: URL,
  blob: BlobSource,
  signal: AbortSignal | undefined,
  name: string,
  onSent: (bytes: number) => void,
): Promise<void> {
  const body = async function* () {
    let sent = 0;
    for await (const chunk of blob.open(signal)) {
      sent += chunk.byteLength;
      onSent(sent);
      yield chunk;
    }
  };
  const res = await write(
    ctx,
    ref,
    'PUT',
    '',
    { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    signal,
    name,
    { url: withDigest(url, blob.digest), body },
  );
  await finish(ctx, res, blob, name);
}

async function uploadChunked(
  ctx: UploadContext,
  ref: Reference,
  start: URL,
  blob: BlobSource,
  chunkSize: number,
  signal: AbortSignal | undefined,
  name: string,
  onSent: (bytes: number) => void,
): Promise<void> {
  let url = start;
  let offset = 0;
  const patch = async (chunk: Uint8Array) => {
    const res = await write(
      ctx,
      ref,
      'PATCH',
      '',
      {
        'content-type': 'application/octet-stream',
        'content-length': String(chunk.byteLength),
        'content-range': `${offset}-${offset + chunk.byteLength - 1}`,
      },
      signal,
      name,
      { url, body: () => chunk },
    );
    if (res.status !== 202) throw await writeError(ctx, res, name, `uploading bytes ${offset}+`);
    url = locationOf(res);
    await dump(res);
    offset += chunk.byteLength;
    onSent(offset);
  };
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const piece of blob.open(signal)) {
    let rest = piece;
    while (rest.byteLength > 0) {
      const take = Math.min(rest.byteLength, chunkSize - pendingBytes);
      pending.push(rest.subarray(0, take));
      pendingBytes += take;
      rest = rest.subarray(take);
      if (pendingBytes === chunkSize) {
        await patch(Buffer.concat(pending));
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) await patch(Buffer.concat(pending));
  if (offset !== blob.size) {
    throw new IrbError(
      'IRB_SIZE_MISMATCH',
      `${name}: read ${offset} bytes to upload, the blob should have ${blob.size}; did the file change?`,
    );
  }
  const res = await write(ctx, ref, 'PUT', '', { 'content-length': '0' }, signal, name, {
    url: withDigest(url, blob.digest),
  });
  await finish(ctx, res, blob, name);
}

async function finish(ctx: UploadContext, res: HttpResponse, blob: BlobSource, name: string): Promise<void> {
  if (res.status !== 201) throw await writeError(ctx, res, name, 'completing the upload');
  await dump(res);
  const announced = header(res.headers, 'docker-content-digest');
  if (announced && announced !== blob.digest) {
    throw new IrbError(
      'IRB_DIGEST_MISMATCH',
      `registry ${ctx.endpoint.host} stored ${name} as ${announced}; the upload was corrupted on the way — push again`,
    );
  }
}

/** Abandons a broken session so the registry can free it; a failure here changes nothing. */
async function cancelSession(ctx: UploadContext, ref: Reference, url: URL): Promise<void> {
  try {
    const res = await write(ctx, ref, 'DELETE', '', {}, undefined, 'upload session', { url });
    await dump(res);
  } catch {
    // The registry purges stale sessions on its own.
  }
}

/**
 * The error for a final status of a write. Transient statuses and a lost session (404, 416)
 * restart the upload; `400 DIGEST_INVALID` means the bytes arrived damaged.
 */
async function writeError(ctx: UploadContext, res: HttpResponse, name: string, what: string): Promise<Error> {
  const text = ctx.secrets.clean(await readErrorBody(res));
  if (
    isRetryableStatus(res.status) ||
    res.status === 416 ||
    (res.status === 404 && /BLOB_UPLOAD_UNKNOWN/.test(text))
  ) {
    return new RestartUpload(`registry answered ${res.status} ${what} of ${name}${text ? `: ${text}` : ''}`);
  }
  if (res.status === 400 && /DIGEST_INVALID/.test(text)) {
    return new RestartUpload(
      `registry found the uploaded bytes of ${name} do not match the digest (${text})`,
    );
  }
  if (res.status === 404 && /NAME_UNKNOWN/.test(text)) {
    return new IrbError(
      'IRB_IMAGE_NOT_FOUND',
      `registry ${ctx.endpoint.host} has no repository ${name.replace(/[@:][^/]*$/, '')} to push to (${text}); create it first (ECR: aws ecr create-repository) or check the name`,
    );
  }
  return new IrbError(
    'IRB_REGISTRY_FAILED',
    `registry answered ${res.status} ${what} of ${name}${text ? `: ${text}` : ''}`,
  );
}
