import { createServer, request as httpRequest } from 'node:http';
import { type AddressInfo, connect } from 'node:net';

/** Options of {@link startForwardProxy}. */
export interface ForwardProxyOptions {
  /**
   * Port on 127.0.0.1 that every request goes to, whatever host it names, so a client can be
   * shown a registry with a non-loopback name. Default: the port the request names.
   */
  pinPort?: number;
}

/** A running forward proxy. */
export interface StartedForwardProxy {
  /** `http://127.0.0.1:PORT`, for HTTP_PROXY / HTTPS_PROXY. */
  url: string;
  /** Targets asked for, in order: absolute URLs (plain HTTP) and `host:port` (CONNECT tunnels). */
  seen: string[];
  stop(): Promise<void>;
}

/**
 * An HTTP forward proxy (absolute-form requests and CONNECT tunnels) on 127.0.0.1. It connects
 * only to 127.0.0.1, never to the host a request names, so tests through it stay on loopback.
 */
export async function startForwardProxy(options: ForwardProxyOptions = {}): Promise<StartedForwardProxy> {
  const seen: string[] = [];
  const portOf = (named: string | number) => options.pinPort ?? Number(named || 80);
  const proxy = createServer((req, res) => {
    seen.push(req.url ?? '');
    const target = new URL(req.url ?? '/');
    const out = httpRequest(
      {
        host: '127.0.0.1',
        port: portOf(target.port),
        path: `${target.pathname}${target.search}`,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  proxy.on('connect', (req, socket, head) => {
    seen.push(req.url ?? '');
    const named = (req.url ?? '').split(':').pop() ?? '';
    const upstream = connect(portOf(named || 443), '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  };
}

const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'no_proxy'] as const;

/**
 * Points `HTTP_PROXY` and `HTTPS_PROXY` at `url` and clears `NO_PROXY`, for clients created
 * afterwards; returns a function that puts the previous values back.
 */
export function setProxyEnv(url: string): () => void {
  const saved = Object.fromEntries(PROXY_VARIABLES.map((key) => [key, process.env[key]]));
  process.env.HTTP_PROXY = url;
  process.env.HTTPS_PROXY = url;
  delete process.env.NO_PROXY;
  delete process.env.no_proxy;
  return () => {
    for (const key of PROXY_VARIABLES) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  };
}
