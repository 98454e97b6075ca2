import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a real registry that injects the faults a real server will not
 * produce on demand: resets mid-body, 5xx, 429 with Retry-After, clean-but-short bodies,
 * flipped bytes, redirects to another origin, and synthetic answers (e.g. schema 1 manifests).
 */

/** What to do to a matching request. */
export type Fault =
  /** Answer with this status instead of forwarding (500, 503, 429 + `retry-after`, …). */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, send the headers and `afterBytes` of the body (default half), then destroy the socket. */
  | { kind: 'reset'; afterBytes?: number }
  /** Forward, but end the body cleanly after `afterBytes` (default half): no Content-Length, connection close. */
  | { kind: 'truncate'; afterBytes?: number }
  /** Forward with the byte at offset `at` (default: the middle) XOR 0xff. */
  | { kind: 'flip'; at?: number }
  /** Forward, send the headers and `afterBytes` of the body (default half), then hang until the client leaves. */
  | { kind: 'stall'; afterBytes?: number }
  /** Forward without the request's `Range` header (a server that does not support ranges). */
  | { kind: 'ignore-range' }
  /** Answer 307 pointing at the same path on the second origin (the "blob store"). */
  | { kind: 'redirect' }
  /** Answer with a synthetic response. */
  | { kind: 'replace'; status?: number; headers: Record<string, string>; body: string | Uint8Array };

/** A fault for requests matching `method` and `path` (substring or RegExp), `times` times (default 1). */
export interface FaultRule {
  method?: string;
  path?: string | RegExp;
  fault: Fault;
  /** How many matching requests get the fault. Default 1; `Infinity` for all. */
  times?: number;
}

/** One request the proxy or blob store saw. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The fault applied, if any. */
  fault?: Fault['kind'];
}

/** A running fault proxy. */
export interface StartedFaultProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` — use as the registry of references. */
  host: string;
  /** Every request that reached the proxy. */
  requests: SeenRequest[];
  /** The second origin redirects point to. */
  blobStore: { url: string; requests: SeenRequest[] };
  /** Adds a rule (checked in order of addition). */
  add(rule: FaultRule): void;
  /** Removes all rules. */
  clear(): void;
  /** Connections currently open to the proxy (to check a client left none behind). */
  openConnections(): Promise<number>;
  stop(): Promise<void>;
}

interface LiveRule extends FaultRule {
  left: number;
}

function matches(rule: FaultRule, method: string, path: string): boolean {
  if (rule.method && rule.method.toUpperCase() !== method) return false;
  if (rule.path === undefined) return true;
  return typeof rule.path === 'string' ? path.includes(rule.path) : rule.path.test(path);
}

async function listen(server: Server, host = '127.0.0.1', scheme = 'http'): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Authorization the blob store sends upstream (as a presigned URL would authorize). */
  blobStoreUpstreamAuthorization?: () => Promise<string | undefined>;
  /** Address the proxy listens on. Default `127.0.0.1` (use `0.0.0.0` to reach it by a LAN address). */
  listenHost?: string;
  /** Serve HTTPS with this PEM key and certificate instead of plain HTTP. */
  tls?: { key: string; cert: string };
}

/** Starts a fault-injecting proxy in front of `target` (`http://host:port`). */
export async function startFaultProxy(
  target: string,
  rules: FaultRule[] = [],
  options: FaultProxyOptions = {},
): Promise<StartedFaultProxy> {
  const upstream = new URL(target);
  const live: LiveRule[] = rules.map((r) => ({ ...r, left: r.times ?? 1 }));
  const requests: SeenRequest[] = [];
  const storeRequests: SeenRequest[] = [];

  const forward = (
    method: string,
    path: string,
    headers: IncomingHttpHeaders,
    body: AsyncIterable<Buffer> | undefined,
  ) =>
    new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const out = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method,
          path,
          headers: { ...headers, host: upstream.host },
        },
        resolve,
      );
      out.on('error', reject);
      if (body) {
        void (async () => {
          for await (const chunk of body) out.write(chunk);
          out.end();
        })().catch(reject);
      } else out.end();
    });

  const store = createServer((req, res) => {
    void (async () => {
      const path = req.url ?? '/';
      storeRequests.push({ method: req.method ?? 'GET', path, headers: req.headers });
      const headers: IncomingHttpHeaders = { ...req.headers };
      delete headers.authorization;
      const auth = await options.blobStoreUpstreamAuthorization?.();
      if (auth) headers.authorization = auth;
      const clean = new URL(path, 'http://x');
      const answer = await forward(req.method ?? 'GET', clean.pathname, headers, undefined);
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    })().catch(() => res.destroy());
  });
  const storeUrl = await listen(store);

  let url = '';
  const handler: Parameters<typeof createServer>[1] = (req, res) => {
    void (async () => {
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      const rule = live.find((r) => r.left > 0 && matches(r, method, path));
      if (rule) rule.left--;
      const fault = rule?.fault;
      requests.push({ method, path, headers: req.headers, ...(fault ? { fault: fault.kind } : {}) });
      if (fault?.kind === 'status') {
        res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
        res.end(
          fault.body ??
            JSON.stringify({ errors: [{ code: 'INJECTED', message: `injected ${fault.status}` }] }),
        );
        return;
      }
      if (fault?.kind === 'replace') {
        res.writeHead(fault.status ?? 200, fault.headers);
        res.end(fault.body);
        return;
      }
      if (fault?.kind === 'redirect') {
        res.writeHead(307, {
          location: `${storeUrl}${path}${path.includes('?') ? '&' : '?'}X-Signature=irb-test`,
        });
        res.end();
        return;
      }
      const forwarded = { ...req.headers };
      if (fault?.kind === 'ignore-range') delete forwarded.range;
      const answer = await forward(
        method,
        path,
        forwarded,
        method === 'GET' || method === 'HEAD' ? undefined : req,
      );
      const total = Number(answer.headers['content-length'] ?? Number.NaN);
      // As a reverse proxy does: upload session URLs the registry builds from its own address
      // come back pointing at the proxy, so the rest of an upload passes through the faults too.
      const location = answer.headers.location;
      if (typeof location === 'string' && location.startsWith(upstream.origin)) {
        answer.headers.location = `${url}${location.slice(upstream.origin.length)}`;
      }
      if (!fault || fault.kind === 'ignore-range' || method === 'HEAD' || (answer.statusCode ?? 500) >= 300) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const half = Number.isFinite(total) ? Math.floor(total / 2) : 1024;
      if (fault.kind === 'truncate') {
        const headers = { ...answer.headers, connection: 'close' };
        delete headers['content-length'];
        res.writeHead(answer.statusCode ?? 200, headers);
        let sent = 0;
        const limit = fault.afterBytes ?? half;
        for await (const chunk of answer as AsyncIterable<Buffer>) {
          const part = chunk.subarray(0, Math.max(0, limit - sent));
          if (part.byteLength) res.write(part);
          sent += part.byteLength;
          if (sent >= limit) break;
        }
        answer.destroy();
        res.end();
        return;
      }
      res.writeHead(answer.statusCode ?? 200, answer.headers);
      let offset = 0;
      const cut =
        fault.kind === 'reset' || fault.kind === 'stall'
          ? (fault.afterBytes ?? half)
          : Number.POSITIVE_INFINITY;
      const flipAt = fault.kind === 'flip' ? (fault.at ?? half) : -1;
      for await (const chunk of answer as AsyncIterable<Buffer>) {
        let out = Buffer.from(chunk);
        if (flipAt >= offset && flipAt < offset + out.byteLength) {
          out[flipAt - offset] = (out[flipAt - offset] as number) ^ 0xff;
        }
        if (offset + out.byteLength >= cut) {
          out = out.subarray(0, cut - offset);
          await new Promise<void>((resolve) => res.write(out, () => resolve()));
          answer.destroy();
          if (fault.kind === 'stall') return; // keep the socket open; the client must give up on its own
          res.socket?.destroy();
          return;
        }
        offset += out.byteLength;
        if (!res.write(out)) await new Promise((resolve) => res.once('drain', resolve));
      }
      res.end();
    })().catch(() => res.destroy());
  };
  const proxy: Server = options.tls ? createHttpsServer(options.tls, handler) : createServer(handler);
  url = await listen(proxy, options.listenHost, options.tls ? 'https' : 'http');
  return {
    url,
    host: new URL(url).host,
    requests,
    blobStore: { url: storeUrl, requests: storeRequests },
    add: (rule) => {
      live.push({ ...rule, left: rule.times ?? 1 });
    },
    clear: () => {
      live.length = 0;
    },
    openConnections: () =>
      new Promise<number>((resolve, reject) =>
        proxy.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      ),
    stop: async () => {
      for (const server of [proxy, store]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}
