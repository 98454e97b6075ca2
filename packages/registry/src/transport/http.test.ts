import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formEncode, headerBytes, Transport, urlFromHeader } from './http.ts';

const utf8 = (text: string) => Buffer.from(text, 'utf8');
/** What `res.setHeader` needs to put exactly `bytes` on the wire. */
const wire = (bytes: Uint8Array) => Buffer.from(bytes).toString('latin1');

describe('header values are bytes', () => {
  it('urlFromHeader percent-encodes each byte beyond ASCII as that byte', () => {
    const location = wire(utf8('/blobs/café-日本?x=1'));
    expect(urlFromHeader(location, new URL('http://h/')).href).toBe(
      'http://h/blobs/caf%C3%A9-%E6%97%A5%E6%9C%AC?x=1',
    );
    // not UTF-8 at all (KOI8-R, and bytes 0x80–0x9F that windows-1252 would rewrite)
    const raw = new Uint8Array([0x2f, 0xf0, 0xd2, 0x80, 0x9f, 0x25, 0x32, 0x30, 0x25, 0x7a]);
    expect(urlFromHeader(wire(raw), new URL('http://h/')).pathname).toBe('/%F0%D2%80%9F%20%25z');
    expect([...headerBytes(wire(raw))]).toEqual([...raw]);
  });

  it('formEncode sends strings as UTF-8 and header bytes unchanged', () => {
    expect(
      formEncode([
        ['scope', 'repository:a/b:pull push'],
        ['service', headerBytes(wire(new Uint8Array([0x72, 0xe9, 0x80])))],
        ['token', 'é'],
      ]),
    ).toBe('scope=repository%3Aa%2Fb%3Apull+push&service=r%E9%80&token=%C3%A9');
  });
});

describe('Transport redirects', () => {
  let server: Server;
  let base: string;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      if (req.url?.startsWith('/start/')) {
        const which = req.url.slice('/start/'.length);
        const target =
          which === 'utf8' ? utf8('/store/日本-é') : new Uint8Array([...utf8('/store/'), 0xe9, 0x9d, 0x80]);
        res.writeHead(307, { location: wire(target) }).end();
        return;
      }
      res.writeHead(200).end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it.each([
    ['utf8', '/store/%E6%97%A5%E6%9C%AC-%C3%A9'],
    ['latin1', '/store/%E9%9D%80'],
  ])('follows a Location holding raw %s bytes to exactly those bytes', async (which, expected) => {
    const transport = new Transport({
      userAgent: 'irb-test',
      connections: 1,
      ca: undefined,
      timeoutMs: 10_000,
    });
    try {
      const res = await transport.send({
        url: new URL(`${base}/start/${which}`),
        method: 'GET',
        headers: {},
      });
      await res.body.dump();
      expect(res.status).toBe(200);
      expect(seen.at(-1)).toBe(expected);
    } finally {
      await transport.close();
    }
  });
});
