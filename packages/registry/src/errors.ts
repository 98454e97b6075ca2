/**
 * How the registry client words what went wrong: HTTP statuses become `IrbError`s with a
 * stable code and advice, and a registry's error body becomes one short, scrubbed line.
 * Transport-level wording (TLS, plain HTTP, unreachable hosts) stays with the wrapper that
 * detects it; this file holds the wording shared by manifests, blobs and tokens.
 */
import { IrbError } from '@irb/errors';
import { type HttpResponse, isRetryableStatus } from './transport/http.ts';

/** The 404 of a manifest: the repository or tag does not exist. */
export function notFoundError(name: string, text: string | undefined): IrbError {
  return new IrbError(
    'IRB_IMAGE_NOT_FOUND',
    `image ${name} not found: the repository or tag does not exist${text ? ` (${text})` : ''}; check the name and tag`,
  );
}

/**
 * A final status other than the ones the caller handles (a 429 or 5xx left after the retries,
 * or a 4xx). `clean` scrubs secrets from the registry's error text.
 */
export async function statusError(
  res: HttpResponse,
  name: string,
  what: string,
  clean: (text: string) => string,
): Promise<IrbError> {
  const text = clean(await readErrorBody(res));
  if (res.status === 429) {
    return new IrbError(
      'IRB_REGISTRY_RATE_LIMITED',
      `registry rate limit hit fetching the ${what} of ${name} (429) even after retrying${text ? `: ${text}` : ''}; wait, log in for a higher limit, or use a mirror`,
    );
  }
  // Only the transient statuses (408, 5xx but 501/505) were retried; a 4xx came back at once.
  return new IrbError(
    'IRB_REGISTRY_FAILED',
    `registry answered ${res.status} fetching the ${what} of ${name}${isRetryableStatus(res.status) ? ' even after retrying' : ''}${text ? `: ${text}` : ''}`,
  );
}

/** Up to `limit` bytes of a body; a body that breaks off gives what arrived. */
export async function readBytes(res: HttpResponse, limit: number): Promise<Uint8Array> {
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
  const buffer = Buffer.concat(chunks).subarray(0, limit);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/**
 * Up to `limit` bytes of a body as text, for messages only: a bad UTF-8 byte shows as U+FFFD,
 * which is fine in a sentence and never used as data.
 */
export async function readText(res: HttpResponse, limit: number): Promise<string> {
  return new TextDecoder().decode(await readBytes(res, limit));
}

/** Collapses whitespace and cuts a text to 200 characters. */
export function summarize(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 200 ? `${oneLine.slice(0, 197)}...` : oneLine;
}

/** The registry's error list (`{"errors":[{"code","message"}]}`) as one short line. */
export async function readErrorBody(res: HttpResponse): Promise<string> {
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

/** A byte count as people say it: `4 MiB`, `64 KiB`, `1000 bytes`. */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/**
 * A whole body, refused with `IRB_MANIFEST_INVALID` once it grows past `limit` bytes;
 * `what` names it in the message (`docker.io/library/alpine:3: manifest`).
 */
export async function readLimited(res: HttpResponse, limit: number, what: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    length += chunk.byteLength;
    if (length > limit) {
      res.body.destroy();
      throw new IrbError('IRB_MANIFEST_INVALID', `${what} is larger than the ${formatSize(limit)} limit`);
    }
    chunks.push(chunk);
  }
  const buffer = Buffer.concat(chunks);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Reads and drops a body we will not use, so its connection returns to the pool. */
export async function dump(res: HttpResponse): Promise<void> {
  await res.body.dump().catch(() => undefined);
}
