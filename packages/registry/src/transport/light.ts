/**
 * The light engine, on `node:http` / `node:https` (part of Node's core, ~1 ms to load): small
 * metadata requests (manifests, tags, referrers, tokens, blob HEADs, `/v2/` pings). It answers
 * in the shape of the undici engine (lowercase header names, duplicates as arrays, values as
 * latin1 strings; a body with `dump()` and `destroy()`; the same timeout codes), so nothing
 * above {@link Transport} can tell which engine sent a request.
 */
import type http from 'node:http';
import type https from 'node:https';
import type { Engine, EngineOptions, EngineRequest, EngineResponse, ResponseBody } from './engine.ts';

/*
 * `node:http` and `node:https` are taken with `process.getBuiltinModule`, not `import`: an ESM
 * import of a builtin reads every export to build its namespace, and `http.WebSocket` is a
 * getter that loads Node's own bundled undici (~50 ms), the very cost this engine avoids. And
 * `node:https` (with `node:tls`, ~25 ms) only at the first https request.
 */
const nodeHttp = () => process.getBuiltinModule('node:http');
const nodeHttps = () => process.getBuiltinModule('node:https');

/** How long an idle pooled connection is kept (undici's `keepAliveTimeout` in the bulk engine). */
const KEEP_ALIVE_MS = 10_000;
/** `dump()` reads at most this much of a body; past it the connection is dropped instead. */
const DUMP_LIMIT = 128 * 1024;

/** A timeout with the code undici gives the same failure, so both engines read alike. */
function timeoutError(phase: 'headers' | 'body', ms: number, url: URL): Error {
  const error = new Error(
    phase === 'headers'
      ? `no response headers from ${url.host} within ${ms} ms`
      : `no body bytes from ${url.host} for ${ms} ms`,
  ) as Error & { code: string };
  error.name = phase === 'headers' ? 'HeadersTimeoutError' : 'BodyTimeoutError';
  error.code = phase === 'headers' ? 'UND_ERR_HEADERS_TIMEOUT' : 'UND_ERR_BODY_TIMEOUT';
  return error;
}

/**
 * Headers as undici hands them over, from `rawHeaders` (Node's parser gives each value as a
 * latin1 string, one character per byte): names lowercased, a repeated name as an array in
 * arrival order. A null prototype, so a header named `__proto__` is just a header.
 */
function headersFromRaw(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    const previous = out[name];
    out[name] =
      previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
  }
  return out;
}

/** A response body over an `IncomingMessage`, with the body timeout counted while we wait for bytes. */
class LightBody implements ResponseBody {
  readonly #res: http.IncomingMessage;
  readonly #timeout: () => Error;
  readonly #timeoutMs: number;

  constructor(res: http.IncomingMessage, timeoutMs: number, timeout: () => Error) {
    this.#res = res;
    this.#timeoutMs = timeoutMs;
    this.#timeout = timeout;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    const res = this.#res;
    const chunks = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let finished = false;
    try {
      for (;;) {
        // Only the time spent waiting for the server counts, not the time the caller holds a chunk.
        const timer = setTimeout(() => res.destroy(this.#timeout()), this.#timeoutMs);
        let step: IteratorResult<Buffer>;
        try {
          step = await chunks.next();
        } finally {
          clearTimeout(timer);
        }
        if (step.done) {
          finished = true;
          return;
        }
        yield step.value;
      }
    } finally {
      // A caller that stops early leaves the rest unread: the socket cannot go back to the pool.
      if (!finished) await chunks.return?.();
    }
  }

  async dump(): Promise<void> {
    const res = this.#res;
    // Not `res.complete`: a complete body (always, after a HEAD) still has to be read to its
    // end, which is what hands the socket back to the pool.
    if (res.readableEnded || res.destroyed) return;
    let read = 0;
    for await (const chunk of this) {
      read += chunk.byteLength;
      // Reading a large body to keep one connection is worse than opening another.
      if (read > DUMP_LIMIT) {
        res.destroy();
        return;
      }
    }
  }

  destroy(error?: Error): void {
    this.#res.destroy(error);
  }
}

/** Creates the light engine: keep-alive agents for http, verified https and unverified https. */
export function createLightEngine(options: EngineOptions): Engine {
  const agents: { http?: http.Agent; verified?: https.Agent; unverified?: https.Agent } = {};
  const base = { keepAlive: true, maxSockets: options.connections, timeout: KEEP_ALIVE_MS };

  const agentFor = (url: URL, skipTlsVerify: boolean): http.Agent => {
    if (url.protocol === 'http:') {
      agents.http ??= new (nodeHttp().Agent)(base);
      return agents.http;
    }
    // Made at the first https request, so that its secure context (~30 ms with a CA bundle) is
    // too; an insecure registry's certificate is not checked, so it needs no CA list at all.
    if (skipTlsVerify) {
      agents.unverified ??= new (nodeHttps().Agent)({ ...base, rejectUnauthorized: false });
      return agents.unverified;
    }
    agents.verified ??= new (nodeHttps().Agent)({ ...base, ...options.tls(), rejectUnauthorized: true });
    return agents.verified;
  };

  const all = () => [agents.http, agents.verified, agents.unverified].filter((a) => a !== undefined);

  return {
    send(req: EngineRequest): Promise<EngineResponse> {
      const { url, method, signal, body } = req;
      if (body !== undefined && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        throw new TypeError('the light engine sends no streamed bodies; send them as bulk');
      }
      return new Promise<EngineResponse>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        const headers: Record<string, string> = { ...req.headers };
        if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
        else if (method === 'POST' || method === 'PUT' || method === 'PATCH') headers['content-length'] = '0';
        const agent = agentFor(url, req.skipTlsVerify);
        const outgoing = (url.protocol === 'https:' ? nodeHttps() : nodeHttp()).request(url, {
          method,
          headers,
          agent,
        });
        let incoming: http.IncomingMessage | undefined;
        const onAbort = () => {
          const reason = signal?.reason;
          // The body first: destroying the request only would end it with a plain ECONNRESET.
          incoming?.destroy(reason);
          outgoing.destroy(reason);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        const release = () => signal?.removeEventListener('abort', onAbort);
        // Counts from the start, so a connection that never opens times out too.
        const headersTimer = setTimeout(
          () => outgoing.destroy(timeoutError('headers', options.timeoutMs, url)),
          options.timeoutMs,
        );
        outgoing.on('error', (error) => {
          clearTimeout(headersTimer);
          if (incoming) return; // the body reports it (Node ends it with `aborted`/ECONNRESET)
          release();
          reject(error);
        });
        outgoing.on('response', (res) => {
          clearTimeout(headersTimer);
          incoming = res;
          res.once('close', release);
          resolve({
            status: res.statusCode ?? 0,
            headers: headersFromRaw(res.rawHeaders),
            body: new LightBody(res, options.timeoutMs, () => timeoutError('body', options.timeoutMs, url)),
          });
        });
        outgoing.end(body);
      });
    },
    async close() {
      // Idle sockets go at once; one still reading a body is closed when the body ends instead of
      // returning to the pool (undici's close() also lets running requests finish).
      for (const agent of all()) {
        agent.keepSocketAlive = () => false;
        for (const sockets of Object.values(agent.freeSockets))
          for (const socket of sockets ?? []) socket.destroy();
      }
    },
    async destroy() {
      for (const agent of all()) agent.destroy();
    },
  };
}
