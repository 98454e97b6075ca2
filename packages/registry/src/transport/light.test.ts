// The edges of both engines, run through Transport.send with `bulk: false` (node:http) and
// `bulk: true` (undici): both must answer alike, since nothing above the transport knows which
// one sent a request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type StartedFaultProxy, startFaultProxy } from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  errorCode,
  type HttpResponse,
  header,
  headerBytes,
  isRetryableNetworkError,
  Transport,
} from './http.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

interface TestServer {
  url: string;
  seen: Array<{ method: string; path: string; headers: IncomingMessage['headers']; body: string }>;
  /** Connections opened since start. */
  connections: () => number;
  open: () => Promise<number>;
  stop: () => Promise<void>;
}

async function serve(routes: Record<string, Handler>): Promise<TestServer> {
  const seen: TestServer['seen'] = [];
  let connections = 0;
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const path = req.url ?? '/';
    seen.push({ method: req.method ?? '', path, headers: req.headers, body });
    const route = Object.entries(routes).find(([prefix]) => path.startsWith(prefix));
    if (route) route[1](req, res, body);
    else res.writeHead(200).end('ok');
  });
  server.on('connection', (socket: Socket) => {
    connections++;
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    connections: () => connections,
    open: () =>
      new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const transports: Transport[] = [];
function transport(timeoutMs = 10_000): Transport {
  const t = new Transport({ userAgent: 'irb-test', connections: 2, ca: undefined, timeoutMs });
  transports.push(t);
  return t;
}

async function text(res: HttpResponse): Promise<string> {
  let out = '';
  for await (const chunk of res.body) out += Buffer.from(chunk).toString('latin1');
  return out;
}

/** The error a promise rejects with, or of iterating a body. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: unknown) => error,
  );
}

let origin: TestServer;
let other: TestServer;
let faults: StartedFaultProxy;
/** Requests that are never answered (header timeout, abort before headers): released at the end. */
const hanging: ServerResponse[] = [];

beforeAll(async () => {
  other = await serve({});
  origin = await serve({
    '/dup': (_req, res) => {
      // Node's server would join or drop repeats: write the head by hand.
      const raw = Buffer.concat([
        Buffer.from('HTTP/1.1 200 OK\r\nX-Twice: one\r\nx-twice: two\r\nWWW-Authenticate: a\r\n', 'latin1'),
        Buffer.from('X-Bytes: '),
        Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0x80, 0x9f, 0xff]),
        Buffer.from('\r\nContent-Length: 2\r\n\r\nhi'),
      ]);
      res.socket?.end(raw);
    },
    '/away': (req, res) => {
      res.writeHead(307, { location: `${other.url}/landed${req.url?.slice('/away'.length)}` }).end();
    },
    '/here': (_req, res) => res.writeHead(302, { location: '/landed-here' }).end(),
    '/see-other': (_req, res) => res.writeHead(303, { location: '/after-post' }).end(),
    '/silent': (_req, res) => {
      hanging.push(res);
    },
    '/stall': (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write('x'.repeat(100));
      hanging.push(res);
    },
    '/big': (_req, res) => res.writeHead(200).end('y'.repeat(200_000)),
  });
  faults = await startFaultProxy(origin.url);
});

afterAll(async () => {
  for (const t of transports) await t.destroy();
  for (const res of hanging) res.destroy();
  await Promise.all([origin.stop(), other.stop(), faults.stop()]);
});

describe.each([
  ['light (node:http)', false],
  ['bulk (undici)', true],
])('the %s engine', (_name, bulk) => {
  it('gives headers as undici does: lowercase names, repeats as arrays, values byte for byte', async () => {
    const t = transport();
    const res = await t.send({ url: new URL(`${origin.url}/dup`), method: 'GET', headers: {} }, { bulk });
    expect(await text(res)).toBe('hi');
    expect(res.headers['x-twice']).toEqual(['one', 'two']);
    expect(res.headers['www-authenticate']).toBe('a');
    expect(header(res.headers, 'X-Twice')).toBe('one');
    expect([...headerBytes(header(res.headers, 'x-bytes') ?? '')]).toEqual([
      0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0x80, 0x9f, 0xff,
    ]);
  });

  it('drops Authorization on a redirect to another origin and keeps it on the same one', async () => {
    const t = transport();
    const token = `Bearer secret-${bulk}`;
    const away = await t.send(
      { url: new URL(`${origin.url}/away/${bulk}`), method: 'GET', headers: { authorization: token } },
      { bulk },
    );
    expect(await text(away)).toBe('ok');
    expect(away.url.href).toBe(`${other.url}/landed/${bulk}`);
    const landed = other.seen.find((r) => r.path === `/landed/${bulk}`);
    expect(landed?.headers.authorization).toBeUndefined();
    expect(origin.seen.find((r) => r.path === `/away/${bulk}`)?.headers.authorization).toBe(token);

    const here = await t.send(
      { url: new URL(`${origin.url}/here`), method: 'GET', headers: { authorization: token } },
      { bulk },
    );
    await here.body.dump();
    expect(origin.seen.findLast((r) => r.path === '/landed-here')?.headers.authorization).toBe(token);
  });

  it('turns a POST answered 303 into a GET without the body', async () => {
    const t = transport();
    const res = await t.send(
      {
        url: new URL(`${origin.url}/see-other`),
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `a=${bulk}`,
      },
      { bulk },
    );
    await res.body.dump();
    const post = origin.seen.findLast((r) => r.path === '/see-other');
    const get = origin.seen.findLast((r) => r.path === '/after-post');
    expect(post).toMatchObject({ method: 'POST', body: `a=${bulk}` });
    expect(get).toMatchObject({ method: 'GET', body: '' });
    expect(get?.headers['content-type']).toBeUndefined();
  });

  it('fails a server that sends no headers in time with a retryable timeout', async () => {
    const t = transport(300);
    const error = await failure(
      t.send({ url: new URL(`${origin.url}/silent`), method: 'GET', headers: {} }, { bulk }),
    );
    expect(errorCode(error)).toBe('UND_ERR_HEADERS_TIMEOUT');
    expect(isRetryableNetworkError(error)).toBe(true);
  });

  it('fails a body that stops coming with a retryable timeout', async () => {
    const t = transport(300);
    const res = await t.send({ url: new URL(`${origin.url}/stall`), method: 'GET', headers: {} }, { bulk });
    expect(res.status).toBe(200);
    const error = await failure(text(res));
    expect(errorCode(error)).toBe('UND_ERR_BODY_TIMEOUT');
    expect(isRetryableNetworkError(error)).toBe(true);
  });

  it('stops at once when aborted, before the headers and while reading the body', async () => {
    const t = transport();
    const early = new AbortController();
    const pending = failure(
      t.send(
        { url: new URL(`${origin.url}/silent`), method: 'GET', headers: {}, signal: early.signal },
        { bulk },
      ),
    );
    setTimeout(() => early.abort(new Error('stop before headers')), 50);
    expect(((await pending) as Error).message).toBe('stop before headers');

    const late = new AbortController();
    const res = await t.send(
      { url: new URL(`${origin.url}/stall`), method: 'GET', headers: {}, signal: late.signal },
      { bulk },
    );
    const reading = failure(text(res));
    setTimeout(() => late.abort(new Error('stop mid-body')), 50);
    expect(((await reading) as Error).message).toBe('stop mid-body');

    const already = AbortSignal.abort(new Error('never sent'));
    const seen = origin.seen.length;
    const refused = await failure(
      t.send({ url: new URL(`${origin.url}/x`), method: 'GET', headers: {}, signal: already }, { bulk }),
    );
    expect((refused as Error).message).toBe('never sent');
    expect(origin.seen.length).toBe(seen);
  });

  it('reports a connection reset mid-body as a retryable error with its errno code', async () => {
    faults.add({ path: `/big?${bulk}`, fault: { kind: 'reset', afterBytes: 50_000 } });
    const t = transport();
    const res = await t.send(
      { url: new URL(`${faults.url}/big?${bulk}`), method: 'GET', headers: {} },
      { bulk },
    );
    expect(res.status).toBe(200);
    let got = 0;
    const error = await failure(
      (async () => {
        for await (const chunk of res.body) got += chunk.byteLength;
      })(),
    );
    expect(got).toBeGreaterThanOrEqual(50_000);
    expect(got).toBeLessThan(200_000);
    expect(isRetryableNetworkError(error)).toBe(true);
    expect(errorCode(error)).toMatch(/^(ECONNRESET|UND_ERR_SOCKET)$/);
  });

  it('keeps the errno code of a refused connection', async () => {
    const closed = await serve({});
    const url = new URL(`${closed.url}/x`);
    await closed.stop();
    const error = await failure(transport().send({ url, method: 'GET', headers: {} }, { bulk }));
    expect(errorCode(error)).toBe('ECONNREFUSED');
    expect(isRetryableNetworkError(error)).toBe(true);
  });

  it('reuses its connection, dumps a long body by dropping it, and close() leaves none open', async () => {
    const server = await serve({ '/big': (_req, res) => res.writeHead(200).end('z'.repeat(1_000_000)) });
    try {
      const t = new Transport({ userAgent: 'irb-test', connections: 2, ca: undefined, timeoutMs: 10_000 });
      for (let i = 0; i < 3; i++) {
        const res = await t.send(
          { url: new URL(`${server.url}/small`), method: 'GET', headers: {} },
          { bulk },
        );
        expect(await text(res)).toBe('ok');
      }
      // undici may open its second connection before the first is back in the pool.
      expect(server.connections()).toBeLessThanOrEqual(bulk ? 2 : 1);
      const head = await t.send({ url: new URL(`${server.url}/big`), method: 'HEAD', headers: {} }, { bulk });
      await head.body.dump();
      const big = await t.send({ url: new URL(`${server.url}/big`), method: 'GET', headers: {} }, { bulk });
      await big.body.dump();
      const after = await t.send(
        { url: new URL(`${server.url}/small`), method: 'GET', headers: {} },
        { bulk },
      );
      expect(await text(after)).toBe('ok');
      await t.close();
      for (let i = 0; i < 50 && (await server.open()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await server.open()).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
