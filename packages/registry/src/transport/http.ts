import { readFileSync } from 'node:fs';
import type { SecureContext } from 'node:tls';
import { IrbError } from '@irb/errors';
import { redactUrl } from '../redact.ts';
import {
  type Engine,
  type EngineOptions,
  type HttpBody,
  type HttpHeaders,
  type HttpMethod,
  proxyFromEnv,
  type ResponseBody,
} from './engine.ts';
import { createLightEngine } from './light.ts';

export type { HttpBody, HttpHeaders, HttpMethod, ResponseBody } from './engine.ts';

/** A response whose body must be consumed or dumped by the caller. */
export interface HttpResponse {
  status: number;
  /** Lowercase names; a repeated header as an array; values as latin1 strings (see {@link headerBytes}). */
  headers: HttpHeaders;
  body: ResponseBody;
  /** The URL that answered (after redirects). */
  url: URL;
}

/** One HTTP request. */
export interface HttpRequest {
  url: URL;
  method: HttpMethod;
  headers: Record<string, string>;
  body?: HttpBody | undefined;
  signal?: AbortSignal | undefined;
}

interface TransportOptions {
  userAgent: string;
  connections: number;
  ca: string[] | undefined;
  timeoutMs: number;
}

const MAX_REDIRECTS = 10;

/**
 * `node:tls`, loaded when first needed (~25 ms with the crypto it pulls in): a process that
 * only talks plain HTTP, or only reads its cache, never needs it. Through
 * `process.getBuiltinModule`, which hands over the module without building an ESM namespace.
 */
const nodeTls = () => process.getBuiltinModule('node:tls');

/** First value of a header. */
export function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The bytes of a header value. Both engines hand values over as latin1 strings (one character per
 * byte, Buffer's real ISO-8859-1, not WHATWG's windows-1252), so this is exact.
 */
export function headerBytes(value: string): Uint8Array {
  return new Uint8Array(Buffer.from(value, 'latin1'));
}

/** Percent-encodes every byte outside printable ASCII, and `%` only where it starts no escape. */
function escapeBytes(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    const escapes =
      b === 0x25 && /^[0-9a-fA-F]{2}$/.test(String.fromCharCode(bytes[i + 1] ?? 0, bytes[i + 2] ?? 0));
    out +=
      b > 0x20 && b < 0x7f && (b !== 0x25 || escapes)
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * A URL from a header value (`Location`, a challenge's `realm`), relative to `base`, keeping the
 * server's bytes: a byte beyond ASCII is percent-encoded as that byte. Handing the latin1
 * string to `new URL` would re-encode each such byte as two UTF-8 bytes and ask for another URL.
 */
export function urlFromHeader(value: string, base?: URL): URL {
  return new URL(escapeBytes(headerBytes(value)), base);
}

/**
 * An `application/x-www-form-urlencoded` text built byte for byte: strings are UTF-8, and
 * `Uint8Array` values (header bytes, from {@link headerBytes}) are sent exactly as received.
 */
export function formEncode(pairs: ReadonlyArray<readonly [string, string | Uint8Array]>): string {
  const encode = (value: string | Uint8Array) => {
    const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : value;
    let out = '';
    for (const b of bytes) {
      const c = String.fromCharCode(b);
      out += /[A-Za-z0-9*\-._]/.test(c)
        ? c
        : b === 0x20
          ? '+'
          : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    return out;
  };
  return pairs.map(([name, value]) => `${encode(name)}=${encode(value)}`).join('&');
}

/**
 * The certificates to trust besides Node's default store, or `undefined` for none. Node already
 * adds `NODE_EXTRA_CA_CERTS` to its default store at startup, and both engines use that store
 * when given no secure context; we read the file ourselves too so that setting the variable later (or passing
 * `ca`) still works. Read here, at once, so that an unreadable file is reported before any
 * request; the default store is joined to them only when a TLS connection is made
 * ({@link trustedCa}).
 */
export function resolveCa(extra: readonly string[] | undefined): string[] | undefined {
  const fromEnv = process.env.NODE_EXTRA_CA_CERTS;
  const added: string[] = [...(extra ?? [])];
  if (fromEnv) {
    try {
      added.push(readFileSync(fromEnv, 'utf8'));
    } catch (error) {
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `NODE_EXTRA_CA_CERTS points to ${fromEnv}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}); fix or unset it`,
        { cause: error },
      );
    }
  }
  return added.length === 0 ? undefined : added;
}

/** The base64 bodies of the PEM certificates in `text`, whitespace removed. */
function certificateBodies(text: string): string[] {
  const bodies: string[] = [];
  for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g)) {
    bodies.push((m[1] as string).replace(/\s+/g, ''));
  }
  return bodies;
}

/**
 * The certificates of `added` that Node's default store lacks. Node loads NODE_EXTRA_CA_CERTS
 * into it at startup, so that file (often the whole system bundle) usually needs no context of
 * our own: making one parses every root again, ~30 ms.
 */
function missingFromDefaults(added: readonly string[]): string[] {
  const tls = nodeTls();
  if (typeof tls.getCACertificates !== 'function') return [...added];
  const loaded = new Set(tls.getCACertificates('extra').flatMap(certificateBodies));
  if (loaded.size === 0) return [...added];
  return added.filter((pem) => {
    const bodies = certificateBodies(pem);
    return bodies.length === 0 || !bodies.every((b) => loaded.has(b));
  });
}

/** The full CA list for `added` certificates: Node's default store plus them (added, never replacing). */
export function trustedCa(added: readonly string[]): string[] {
  const tls = nodeTls();
  const defaults =
    typeof tls.getCACertificates === 'function'
      ? tls.getCACertificates('default')
      : [...tls.rootCertificates];
  return [...defaults, ...added];
}

/** Options of one {@link Transport.send}. */
export interface SendOptions {
  /** Do not verify the server's certificate (registries in `insecureRegistries`). */
  skipTlsVerify?: boolean;
  /**
   * Which engine sends it. `true`: the bulk engine (undici), for blob downloads and uploads.
   * `false`: the light one (`node:http`), for small metadata requests. Default: bulk when the
   * request has a body, light otherwise. A proxy variable in the environment sends everything
   * through undici's `EnvHttpProxyAgent`, whatever this says.
   */
  bulk?: boolean;
}

/**
 * The bottom of the transport stack: two engines and the redirect loop they share. The light
 * engine (`node:http`, `light.ts`) sends the small metadata requests; the bulk engine (undici,
 * `undici.ts`) the blob downloads, the uploads and everything behind a proxy. undici is imported
 * at the first bulk request: it takes ~60 ms to load, a third of what an unchanged rebuild may
 * cost, and such a rebuild only revalidates a manifest. Redirects (dropping `Authorization` when
 * the origin changes), the TLS trust and the pools' lifetime are the same for both.
 */
export class Transport {
  readonly #options: TransportOptions;
  readonly #engineOptions: EngineOptions;
  #light: Engine | undefined;
  #bulk: Promise<Engine> | undefined;
  /** `null`: Node's default store is enough (see #tlsContext). */
  #secureContext: SecureContext | null | undefined;

  constructor(options: TransportOptions) {
    this.#options = options;
    this.#engineOptions = {
      connections: options.connections,
      timeoutMs: options.timeoutMs,
      tls: () => this.#tlsContext(),
    };
  }

  /**
   * One secure context for every connection (passing `ca` would re-parse the whole CA list, often
   * the system bundle from NODE_EXTRA_CA_CERTS, on each TLS handshake), made on first use: parsing
   * the store takes ~30 ms, which a cache hit revalidating against a plain-HTTP registry should
   * not pay.
   */
  #tlsContext(): { secureContext?: SecureContext } {
    if (this.#secureContext === undefined) {
      const missing = this.#options.ca ? missingFromDefaults(this.#options.ca) : [];
      this.#secureContext =
        missing.length > 0 ? nodeTls().createSecureContext({ ca: trustedCa(missing) }) : null;
    }
    return this.#secureContext ? { secureContext: this.#secureContext } : {};
  }

  #engine(bulk: boolean): Engine | Promise<Engine> {
    if (!bulk && !proxyFromEnv()) {
      this.#light ??= createLightEngine(this.#engineOptions);
      return this.#light;
    }
    this.#bulk ??= import('./undici.ts').then(({ createUndiciEngine }) =>
      createUndiciEngine(this.#engineOptions),
    );
    return this.#bulk;
  }

  /** Sends one request, following redirects (dropping credentials when leaving the origin). */
  async send(req: HttpRequest, options: SendOptions = {}): Promise<HttpResponse> {
    let url = req.url;
    let method = req.method;
    let body = req.body;
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent, ...req.headers };
    const origin = url.origin;
    // Chosen once: a blob download redirected to storage stays a bulk transfer.
    const engine = await this.#engine(options.bulk ?? body !== undefined);
    for (let hop = 0; ; hop++) {
      const res = await engine.send({
        url,
        method,
        headers,
        body,
        signal: req.signal,
        skipTlsVerify: options.skipTlsVerify === true,
      });
      const location = header(res.headers, 'location');
      if (res.status >= 300 && res.status < 400 && res.status !== 304 && location) {
        await res.body.dump().catch(() => undefined);
        if (hop >= MAX_REDIRECTS) {
          throw new IrbError('IRB_REGISTRY_FAILED', `too many redirects fetching ${redactUrl(req.url)}`);
        }
        const next = urlFromHeader(location, url);
        if (next.protocol !== 'https:' && next.protocol !== 'http:') {
          throw new IrbError('IRB_REGISTRY_FAILED', `redirect to an unsupported URL scheme ${next.protocol}`);
        }
        if (url.protocol === 'https:' && next.protocol === 'http:' && next.origin !== origin) {
          throw new IrbError(
            'IRB_REGISTRY_INSECURE',
            `${redactUrl(url)} redirected to plain HTTP (${redactUrl(next)}); refusing to download over an unencrypted connection`,
          );
        }
        if (next.origin !== origin) {
          // Blob storage (S3, GCS, a CDN) authorizes with the signed URL; our token must never leak there.
          delete headers.authorization;
        }
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          delete headers['content-type'];
        }
        url = next;
        continue;
      }
      return { status: res.status, headers: res.headers, body: res.body, url };
    }
  }

  /** Closes every pooled connection. */
  async close(): Promise<void> {
    const bulk = await this.#bulk?.catch(() => undefined);
    await Promise.all([this.#light?.close(), bulk?.close()]);
  }

  /** Destroys every connection at once (used on abort). */
  async destroy(): Promise<void> {
    const bulk = await this.#bulk?.catch(() => undefined);
    await Promise.all([this.#light?.destroy(), bulk?.destroy()]);
  }
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RESPONSE_STATUS_CODE',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** The `code` of an error or of one of its causes. */
export function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True for connection-level failures worth another attempt. */
export function isRetryableNetworkError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** True for TLS failures that mean "the server speaks plain HTTP". */
export function isPlainHttpAnswer(error: unknown): boolean {
  const code = errorCode(error) ?? '';
  const message = String((error as Error)?.message ?? '');
  return (
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
    code === 'ERR_SSL_HTTP_REQUEST' ||
    /wrong version number|packet length too long|http request/i.test(message)
  );
}

/** True for certificate verification failures. */
export function isCertificateError(error: unknown): boolean {
  const code = errorCode(error) ?? '';
  return (
    code.startsWith('ERR_TLS_CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' ||
    code === 'CERT_HAS_EXPIRED'
  );
}

/** True for statuses worth another attempt: 408, 429 and 5xx except 501/505. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}
