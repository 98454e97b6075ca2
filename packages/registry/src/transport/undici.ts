/**
 * The bulk engine, and the only file that imports undici: blob downloads, uploads, and every
 * request while a proxy variable is set (`EnvHttpProxyAgent` honours `NO_PROXY` and proxy
 * credentials). {@link Transport} loads this module on first bulk use, so a process that only
 * revalidates a manifest never pays the ~60 ms undici takes to load.
 */
import { Readable } from 'node:stream';
import { Agent, type Dispatcher, EnvHttpProxyAgent, request } from 'undici';
import {
  type Engine,
  type EngineOptions,
  type EngineRequest,
  type EngineResponse,
  proxyFromEnv,
} from './engine.ts';

/** Creates the undici engine: one connection pool for verified TLS, one for insecure registries. */
export function createUndiciEngine(options: EngineOptions): Engine {
  let verified: Dispatcher | undefined;
  let unverified: Dispatcher | undefined;

  const make = (verify: boolean): Dispatcher => {
    const base = {
      connections: options.connections,
      keepAliveTimeout: 10_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    };
    if (proxyFromEnv()) {
      // EnvHttpProxyAgent honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY; TLS to the registry goes in `requestTls`.
      const context = options.tls();
      const tlsOptions = { ...context, rejectUnauthorized: verify };
      return new EnvHttpProxyAgent({
        ...base,
        connect: tlsOptions,
        requestTls: tlsOptions,
        proxyTls: context,
      } as ConstructorParameters<typeof EnvHttpProxyAgent>[0]);
    }
    // Made at the first bulk transfer, which is when this engine loads at all: metadata (a cached
    // rebuild's revalidation) goes through the light engine and never gets here.
    return new Agent({ ...base, connect: { ...options.tls(), rejectUnauthorized: verify } });
  };

  return {
    async send(req: EngineRequest): Promise<EngineResponse> {
      let dispatcher: Dispatcher;
      if (req.skipTlsVerify) {
        unverified ??= make(false);
        dispatcher = unverified;
      } else {
        verified ??= make(true);
        dispatcher = verified;
      }
      const { body } = req;
      const res = await request(req.url, {
        method: req.method,
        headers: req.headers,
        body:
          body === undefined || typeof body === 'string' || body instanceof Uint8Array
            ? body
            : Readable.from(body, { objectMode: false }),
        signal: req.signal,
        dispatcher,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    },
    async close() {
      await Promise.all([verified?.close(), unverified?.close()]);
    },
    async destroy() {
      await Promise.all([verified?.destroy(), unverified?.destroy()]);
    },
  };
}
