import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  buildImage,
  buildTar,
  pushImage,
  type StartedRegistry,
  setProxyEnv,
  startFaultProxy,
  startForwardProxy,
  startRegistry,
  type TestImage,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient, type RegistryClientOptions } from '../src/index.ts';

const run = promisify(execFile);
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-transport-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function client(options: RegistryClientOptions) {
  const c = createRegistryClient({ retry: { retries: 2, baseDelayMs: 5 }, ...options });
  cleanups.push(() => c.close());
  return c;
}

async function pullAll(c: ReturnType<typeof createRegistryClient>, ref: string, expected: TestImage) {
  const image = await c.image(ref);
  expect(await image.digest()).toBe(expected.manifest.digest);
  for (const [i, layer] of (await image.layers()).entries()) {
    const chunks: Buffer[] = [];
    for await (const chunk of layer.open()) chunks.push(Buffer.from(chunk));
    expect(Buffer.concat(chunks).equals(Buffer.from(expected.layers[i]!.bytes))).toBe(true);
  }
}

let reg: StartedRegistry;
let image: TestImage;

beforeAll(async () => {
  reg = await startRegistry();
  cleanups.push(() => reg.stop());
  const tar = await buildTar([
    { type: 'file', path: 'a.txt', content: 'a' },
    { type: 'file', path: 'big.bin', content: new Uint8Array(randomBytes(300_000)) },
  ]);
  image = buildImage({ layers: [tar, await buildTar([{ type: 'file', path: 'b.txt', content: 'b' }])] });
  await pushImage(reg, 'tls/app', 'v1', image);
});

describe('TLS and extra CAs', () => {
  let dir: string;
  let proxyHost: string;
  beforeAll(async () => {
    dir = await tempDir();
    const o = (args: string[]) => run('openssl', args, { cwd: dir });
    await o([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=irb-test-ca',
    ]);
    await o([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'srv.key',
      '-out',
      'srv.csr',
      '-subj',
      '/CN=localhost',
    ]);
    await writeFile(
      join(dir, 'ext.cnf'),
      'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
    );
    await o([
      'x509',
      '-req',
      '-in',
      'srv.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'srv.pem',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
    ]);
    const px = await startFaultProxy(reg.url, [], {
      tls: {
        key: await readFile(join(dir, 'srv.key'), 'utf8'),
        cert: await readFile(join(dir, 'srv.pem'), 'utf8'),
      },
    });
    cleanups.push(() => px.stop());
    proxyHost = `localhost:${new URL(px.url).port}`;
  });

  it('refuses an untrusted certificate, saying how to trust it', async () => {
    const c = client({ cacheDir: await tempDir() });
    const failure = await c.image(`${proxyHost}/tls/app:v1`).then(
      () => undefined,
      (error: unknown) => error as { code: string; message: string },
    );
    expect(failure?.code).toBe('IRB_TLS_FAILED');
    expect(failure?.message).toMatch(/NODE_EXTRA_CA_CERTS/);
    expect(failure?.message).toMatch(
      /pass its CA certificate \(PEM\) in `ca`.*add the registry to `insecureRegistries`/,
    );
  });

  it('pulls from a registry listed in insecureRegistries without checking its certificate', async () => {
    // Manifests (node:http) and blobs (undici) both skip verification there, and only there.
    const c = client({ cacheDir: await tempDir(), insecureRegistries: [proxyHost] });
    await pullAll(c, `${proxyHost}/tls/app:v1`, image);
  });

  it('trusts a CA from NODE_EXTRA_CA_CERTS or the ca option', async () => {
    const saved = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = join(dir, 'ca.pem');
    try {
      await pullAll(client({ cacheDir: await tempDir() }), `${proxyHost}/tls/app:v1`, image);
    } finally {
      restore('NODE_EXTRA_CA_CERTS', saved);
    }
    const ca = await readFile(join(dir, 'ca.pem'), 'utf8');
    await pullAll(client({ cacheDir: await tempDir(), ca: [ca] }), `${proxyHost}/tls/app:v1`, image);
  });

  it("trusts NODE_EXTRA_CA_CERTS loaded at start-up, through Node's own store", async () => {
    // Set before the process starts, the file is already in Node's default store, and irb makes
    // no secure context of its own; the pull must still trust the registry's certificate.
    const script = [
      `import { createRegistryClient } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};`,
      `const c = createRegistryClient({ cacheDir: ${JSON.stringify(await tempDir())} });`,
      `const image = await c.image(${JSON.stringify(`${proxyHost}/tls/app:v1`)});`,
      'process.stdout.write(await image.digest());',
      'await c.close();',
    ].join('\n');
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@irb/source', '--input-type=module', '-e', script],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') } },
    );
    expect(stdout).toBe(image.manifest.digest);
  });

  it('a host remembered as plain HTTP that now speaks TLS is forgotten and reached with HTTPS', async () => {
    const cacheDir = await tempDir();
    // As if an earlier process had learned plain HTTP for this (loopback) host.
    await writeFile(join(cacheDir, 'schemes'), `${proxyHost} http\n`);
    const ca = await readFile(join(dir, 'ca.pem'), 'utf8');
    await pullAll(client({ cacheDir, ca: [ca] }), `${proxyHost}/tls/app:v1`, image);
    expect(await readFile(join(cacheDir, 'schemes'), 'utf8')).toBe('');
  });

  it('an unreadable NODE_EXTRA_CA_CERTS is a clear error', () => {
    const saved = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = join(dir, 'missing.pem');
    try {
      expect(() => createRegistryClient()).toThrow(/NODE_EXTRA_CA_CERTS points to .*missing\.pem/);
    } finally {
      restore('NODE_EXTRA_CA_CERTS', saved);
    }
  });
});

describe('the scheme learned for a plain-HTTP registry', () => {
  /** A TCP relay to the registry that records whether each connection began with a TLS record. */
  async function relay() {
    const { createServer, connect } = await import('node:net');
    const firstBytes: number[] = [];
    const target = new URL(reg.url);
    const server = createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        firstBytes.push(chunk[0] as number);
        const upstream = connect(Number(target.port), target.hostname, () => {
          upstream.write(chunk);
          socket.pipe(upstream).pipe(socket);
        });
        upstream.on('error', () => socket.destroy());
        socket.on('error', () => upstream.destroy());
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;
    return { host: `127.0.0.1:${port}`, firstBytes };
  }

  it('is remembered in the cache directory: the next client sends no TLS handshake', async () => {
    const r = await relay();
    const cacheDir = await tempDir();
    await pullAll(client({ cacheDir }), `${r.host}/tls/app:v1`, image);
    // The first client tried TLS (0x16, a handshake record) before plain HTTP.
    expect(r.firstBytes[0]).toBe(0x16);
    expect(await readFile(join(cacheDir, 'schemes'), 'utf8')).toBe(`${r.host} http\n`);
    r.firstBytes.length = 0;
    await pullAll(client({ cacheDir }), `${r.host}/tls/app:v1`, image);
    expect(r.firstBytes.length).toBeGreaterThan(0);
    expect(r.firstBytes.filter((b) => b === 0x16)).toEqual([]);
    // Without the cache, nothing is remembered: TLS first again.
    r.firstBytes.length = 0;
    await pullAll(client({ cacheDir: await tempDir(), cache: false }), `${r.host}/tls/app:v1`, image);
    expect(r.firstBytes[0]).toBe(0x16);
  });

  it('a remembered host answering 400 (a TLS server spoken to in plain HTTP) is forgotten', async () => {
    const { Schemes } = await import('../src/transport/scheme.ts');
    const memory = join(await tempDir(), '.schemes');
    await writeFile(memory, 'localhost:5000 http\nother:1 http\n');
    const schemes = new Schemes([], memory);
    const endpoint = { host: 'localhost:5000', registry: 'localhost:5000' } as Parameters<
      typeof schemes.choose
    >[0];
    const choice = schemes.choose(endpoint);
    expect(choice).toMatchObject({ scheme: 'http', remembered: true });
    expect(schemes.onAnswer(endpoint, choice, 400)).toBe(true);
    expect(schemes.choose(endpoint).scheme).toBe('https');
    expect(await readFile(memory, 'utf8')).toBe('other:1 http\n');
    // A host that may not use plain HTTP is never taken from memory.
    await writeFile(memory, 'registry.example.com http\n');
    const strict = new Schemes([], memory);
    expect(
      strict.choose({ host: 'registry.example.com', registry: 'registry.example.com' } as typeof endpoint)
        .scheme,
    ).toBe('https');
  });
});

describe('proxies from the environment', () => {
  it('goes through HTTP_PROXY/HTTPS_PROXY and skips hosts in NO_PROXY', async () => {
    const proxy = await startForwardProxy();
    cleanups.push(() => proxy.stop());
    const { seen } = proxy;
    const restoreEnv = setProxyEnv(proxy.url);
    try {
      await pullAll(client({ cacheDir: await tempDir() }), `${reg.host}/tls/app:v1`, image);
      expect(seen.some((u) => u.includes(reg.host))).toBe(true);
      seen.length = 0;
      process.env.NO_PROXY = '127.0.0.1';
      await pullAll(client({ cacheDir: await tempDir() }), `${reg.host}/tls/app:v1`, image);
      expect(seen).toEqual([]);
    } finally {
      restoreEnv();
    }
  });
});

describe('proxy credentials', () => {
  it('never shows the proxy password, even in error causes', async () => {
    const { freePort } = await import('@irb/test-utils');
    const { inspect } = await import('node:util');
    const secret = `pr0xy-${randomBytes(6).toString('hex')}`;
    const saved = process.env.HTTP_PROXY;
    const savedHttps = process.env.HTTPS_PROXY;
    process.env.HTTP_PROXY = `http://user:${secret}@127.0.0.1:${await freePort()}`;
    process.env.HTTPS_PROXY = process.env.HTTP_PROXY;
    try {
      const c = client({ cacheDir: await tempDir(), retry: { retries: 0 } });
      const error = await c.image(`${reg.host}/tls/app:v1`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((error as { code: string }).code).toBe('IRB_REGISTRY_UNREACHABLE');
      expect(inspect(error, { depth: 10 })).not.toContain(secret);
    } finally {
      if (saved === undefined) delete process.env.HTTP_PROXY;
      else process.env.HTTP_PROXY = saved;
      if (savedHttps === undefined) delete process.env.HTTPS_PROXY;
      else process.env.HTTPS_PROXY = savedHttps;
    }
  });
});

describe('two processes, one cache', () => {
  it('both pulls succeed and the cache holds each blob once', async () => {
    const dir = await tempDir();
    const child = fileURLToPath(new URL('./pull-child.ts', import.meta.url));
    const pull = () =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(
          process.execPath,
          ['--conditions=@irb/source', child, `${reg.host}/tls/app:v1`, dir],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => {
          out += d;
        });
        p.stderr.on('data', (d: Buffer) => {
          err += d;
        });
        p.on('exit', (code) =>
          code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}: ${err}`)),
        );
      });
    const results = await Promise.all([pull(), pull(), pull()]);
    const total = image.layers.reduce((n, l) => n + l.size, 0);
    expect(results).toEqual(Array(3).fill(`${image.manifest.digest} ${total}`));
    const stored = await readdir(join(dir, 'blobs', 'sha256'));
    for (const layer of image.layers) expect(stored).toContain(layer.digest.slice(7));
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });
});

describe('what a process loads', () => {
  const child = fileURLToPath(new URL('./manifest-child.ts', import.meta.url));
  const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
  const inChild = async (...extra: string[]) => {
    const env = { ...process.env };
    // A proxy variable sends everything through undici; this is about the direct path.
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) delete env[name];
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@irb/source', child, entry, `${reg.host}/tls/app:v1`, ...extra],
      { env },
    );
    return JSON.parse(stdout) as { digest: string; undici: boolean; bundledUndici: boolean };
  };

  it('a manifest fetch does not load undici; a blob download does', async () => {
    expect(await inChild()).toMatchObject({
      digest: image.manifest.digest,
      undici: false,
      bundledUndici: false,
    });
    // The same check sees undici once a blob is downloaded: the probe is not blind.
    expect(await inChild('--blob')).toMatchObject({ digest: image.manifest.digest, undici: true });
  });
});
