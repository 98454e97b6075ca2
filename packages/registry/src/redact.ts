import { isIrbError } from '@irb/errors';

/**
 * Removes secrets from a URL for messages: user info (`user:pass@`) and the query string
 * (presigned blob-storage URLs carry signatures and tokens there).
 */
export function redactUrl(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    return '<invalid URL>';
  }
  if (parsed.username || parsed.password) {
    parsed.username = '';
    parsed.password = '';
  }
  const query = parsed.search ? '?<redacted>' : '';
  parsed.search = '';
  parsed.hash = '';
  return `${parsed.toString()}${query}`;
}

const SECRET_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-registry-auth',
]);

/** A copy of `headers` with secret values replaced by `<redacted>` (for debug output). */
export function redactHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = SECRET_HEADERS.has(name.toLowerCase()) ? '<redacted>' : String(value);
  }
  return out;
}

/**
 * Scrubs known secret strings from a text (last line of defence for messages that quote a
 * server's answer: some token servers echo the request).
 */
export function scrub(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= 3) out = out.split(secret).join('<redacted>');
  }
  return out;
}

/**
 * The secrets one client has seen (passwords, tokens, proxy credentials), so every message it
 * builds from a server's answer or a low-level error can be scrubbed of them.
 */
export class Secrets {
  readonly #known = new Set<string>();

  /** Remembers secret strings. */
  add(...secrets: string[]): void {
    for (const secret of secrets) this.#known.add(secret);
  }

  /** Remembers the credentials of the proxy URLs in the environment (`HTTPS_PROXY`, …). */
  addProxyCredentials(env: NodeJS.ProcessEnv = process.env): void {
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) {
      const value = env[name];
      if (!value) continue;
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        continue; // undici reports a malformed proxy URL itself
      }
      if (!url.password) continue;
      this.add(url.password);
      try {
        this.add(decodeURIComponent(url.password));
      } catch {
        // A malformed %-escape: the raw form above is what a message would quote.
      }
      if (url.username) this.add(`${url.username}:${url.password}`);
    }
  }

  /** `text` with every known secret replaced by `<redacted>`. */
  clean(text: string): string {
    return scrub(text, this.#known);
  }

  /**
   * A copy of a low-level error (and its causes) with known secrets scrubbed from the messages:
   * transport errors can quote a proxy URL with its password, and causes get printed.
   * `IrbError`s pass unchanged: they were worded with redaction already.
   */
  safeCause(error: unknown, depth = 0): unknown {
    if (!(error instanceof Error) || depth > 4 || isIrbError(error)) return error;
    const copy = new Error(this.clean(error.message), {
      ...(error.cause !== undefined ? { cause: this.safeCause(error.cause, depth + 1) } : {}),
    }) as Error & { code?: unknown };
    copy.name = error.name;
    const code = (error as { code?: unknown }).code;
    if (code !== undefined) copy.code = code;
    return copy;
  }
}
