/**
 * The contract between the transport and its two HTTP engines (`light.ts` on `node:http`,
 * `undici.ts` on undici): what a hop is asked and answers, and what an engine is made from.
 * Both engines and `http.ts`'s `Transport` depend on this file; it depends on nothing.
 */
import type { SecureContext } from 'node:tls';

/**
 * A response body as callers use it, whichever engine sent the request: read it to the end
 * (async iteration gives `Buffer` chunks), `dump()` it so its connection returns to the pool,
 * or `destroy()` it to drop the connection.
 */
export interface ResponseBody extends AsyncIterable<Uint8Array> {
  /** Reads and drops a short rest; a long one closes the connection instead. */
  dump(): Promise<void>;
  /** Stops reading and closes the connection; a pending read fails with `error`. */
  destroy(error?: Error): void;
}

/** Response headers: lowercase names; a repeated header as an array; values as latin1 strings. */
export type HttpHeaders = Record<string, string | string[] | undefined>;

/** HTTP methods the client sends: reads, token requests, and the upload flow. */
export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A request body: text, bytes, or a stream (used once; a retry asks its factory for a new one). */
export type HttpBody = string | Uint8Array | AsyncIterable<Uint8Array>;

/** What the transport hands an engine for one hop (no redirects: the transport follows them). */
export interface EngineRequest {
  url: URL;
  method: HttpMethod;
  headers: Record<string, string>;
  body: HttpBody | undefined;
  signal: AbortSignal | undefined;
  skipTlsVerify: boolean;
}

/** One hop's answer, in undici's shape. */
export interface EngineResponse {
  status: number;
  headers: HttpHeaders;
  body: ResponseBody;
}

/** What both engines are made from. */
export interface EngineOptions {
  /** Connections per host. */
  connections: number;
  /** Wait for headers, and between body bytes, before the attempt fails (retryably). */
  timeoutMs: number;
  /** The TLS options for verified connections, made on first call (see `Transport`). */
  tls: () => { secureContext?: SecureContext };
}

/** An HTTP client with its own connection pools: the light one (`node:http`) or the bulk one (undici). */
export interface Engine {
  send(req: EngineRequest): Promise<EngineResponse>;
  /** Closes idle connections now and the others once their response ends. */
  close(): Promise<void>;
  /** Closes every connection at once. */
  destroy(): Promise<void>;
}

/** True when any proxy variable is set (upper or lower case): then every request goes through undici. */
export function proxyFromEnv(): boolean {
  return Boolean(
    process.env.HTTPS_PROXY || process.env.https_proxy || process.env.HTTP_PROXY || process.env.http_proxy,
  );
}
