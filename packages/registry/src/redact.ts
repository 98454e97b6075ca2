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
