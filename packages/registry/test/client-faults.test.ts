// The client under network and server faults: retries, resumed downloads, timeouts, aborts, streaming.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type StartedFaultProxy, startFaultProxy } from '@irb/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRegistryClient } from '../src/index.ts';
import {
  cleanups,
  client,
  codeOf,
  dockerImage,
  fastRetry,
  files,
  ociImage,
  pullAndCompare,
  readAll,
  reg,
  tempDir,
  useClientFixtures,
} from './client-fixtures.ts';

useClientFixtures();

describe('faults', () => {
  let px: StartedFaultProxy;
  beforeAll(async () => {
    px = await startFaultProxy(reg.url);
    cleanups.push(() => px.stop());
  });
  const bigPath = () => `/blobs/${ociImage.layers[1]!.digest}`;

  it('survives 500s on the manifest', async () => {
    px.add({ method: 'GET', path: '/manifests/v1', fault: { kind: 'status', status: 500 }, times: 2 });
    px.add({ method: 'HEAD', path: '/manifests/v1', fault: { kind: 'status', status: 502 }, times: 2 });
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    expect(px.requests.filter((r) => r.fault === 'status').length).toBe(4);
  });

  it('survives 429 with Retry-After (seconds and HTTP date)', async () => {
    px.add({ path: bigPath(), fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } });
    px.add({
      path: bigPath(),
      fault: {
        kind: 'status',
        status: 503,
        headers: { 'retry-after': new Date(Date.now() + 1000).toUTCString() },
      },
    });
    const start = px.requests.length;
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    const blobHits = px.requests.slice(start).filter((r) => r.path.endsWith(bigPath()));
    expect(blobHits.map((r) => r.fault ?? 'ok')).toEqual(['status', 'status', 'ok']);
  });

  it('resumes a download reset mid-blob with a Range request', async () => {
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'reset', afterBytes: 200_000 } });
    const start = px.requests.length;
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    const hits = px.requests.slice(start).filter((r) => r.path.endsWith(bigPath()));
    expect(hits[0]!.fault).toBe('reset');
    expect(hits[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    const resumedAt = Number(/bytes=(\d+)-/.exec(hits[1]!.headers.range as string)![1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(200_000);
  });

  it('resumes a body that ended cleanly but short', async () => {
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'truncate', afterBytes: 123_456 } });
    const start = px.requests.length;
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    const hits = px.requests.slice(start).filter((r) => r.path.endsWith(bigPath()));
    expect(hits.map((r) => r.headers.range)).toEqual([undefined, 'bytes=123456-']);
  });

  it('times out a stalled body and resumes it', async () => {
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'stall', afterBytes: 100_000 } });
    const start = px.requests.length;
    const c = client({ cacheDir: await tempDir(), timeoutMs: 400 });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    const hits = px.requests.slice(start).filter((r) => r.path.endsWith(bigPath()));
    expect(hits[0]!.fault).toBe('stall');
    expect(hits[1]!.headers.range).toMatch(/^bytes=\d+-$/);
  });

  it('keeps resuming while each attempt makes progress, beyond the retry count', async () => {
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'reset', afterBytes: 100_000 } });
    for (let i = 0; i < 3; i++)
      px.add({ method: 'GET', path: bigPath(), fault: { kind: 'reset', afterBytes: 80_000 } });
    const start = px.requests.length;
    const c = client({ cacheDir: await tempDir(), retry: { retries: 1, baseDelayMs: 1 } });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    const hits = px.requests.slice(start).filter((r) => r.path.endsWith(bigPath()));
    expect(hits.map((r) => r.fault ?? 'ok')).toEqual(['reset', 'reset', 'reset', 'reset', 'ok']);
  });

  it('starts over when a server ignores the Range request', async () => {
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'reset', afterBytes: 200_000 } });
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'ignore-range' } });
    const start = px.requests.length;
    const c = client({ cacheDir: await tempDir(), readAhead: false });
    await pullAndCompare(c, `${px.host}/test/oci:v1`, ociImage);
    const hits = px.requests.slice(start).filter((r) => r.path.endsWith(bigPath()));
    expect(hits.map((r) => r.fault)).toEqual(['reset', 'ignore-range']);
    expect(hits[1]!.headers.range).toMatch(/^bytes=\d+-$/);
  });

  it('a flipped byte is a digest error and nothing is cached', async () => {
    px.add({ method: 'GET', path: bigPath(), fault: { kind: 'flip', at: 4242 } });
    const dir = await tempDir();
    const c = client({ cacheDir: dir, readAhead: false });
    const image = await c.image(`${px.host}/test/oci:v1`);
    const failure = await codeOf(readAll((await image.layers())[1]!.open()));
    expect(failure.code).toBe('IRB_DIGEST_MISMATCH');
    expect(failure.message).toContain(ociImage.layers[1]!.digest);
    const stored = await files(dir);
    expect(stored).not.toContain(`sha256/${ociImage.layers[1]!.digest.slice(7)}`);
    expect(stored.filter((f) => f.startsWith('.tmp/'))).toEqual([]);
  });

  it('gives up on a registry that keeps failing, naming the problem', async () => {
    px.add({ method: 'HEAD', path: '/manifests/v1', fault: { kind: 'status', status: 503 }, times: 50 });
    px.add({ method: 'GET', path: '/manifests/v1', fault: { kind: 'status', status: 503 }, times: 50 });
    const c = client({ cacheDir: await tempDir(), retry: { retries: 2, baseDelayMs: 1 } });
    const failure = await codeOf(c.image(`${px.host}/test/oci:v1`));
    px.clear();
    expect(failure.code).toBe('IRB_REGISTRY_FAILED');
    expect(failure.message).toMatch(/answered 503 fetching the manifest of .* even after retrying/);
  });

  it('a 4xx answer is final: not retried, and not said to be', async () => {
    px.add({ method: 'HEAD', path: '/manifests/v1', fault: { kind: 'status', status: 400 } });
    px.add({ method: 'GET', path: '/manifests/v1', fault: { kind: 'status', status: 400 }, times: 5 });
    const before = px.requests.length;
    const c = client({ cacheDir: await tempDir() });
    const failure = await codeOf(c.image(`${px.host}/test/oci:v1`));
    const gets = px.requests
      .slice(before)
      .filter((r) => r.method === 'GET' && r.path.endsWith('/manifests/v1'));
    px.clear();
    expect(failure.code).toBe('IRB_REGISTRY_FAILED');
    expect(failure.message).toMatch(/answered 400 fetching the manifest of /);
    expect(failure.message).not.toMatch(/retrying/);
    expect(gets.length).toBe(1);
  });

  it('a reason the caller aborts with is what the call rejects with, also during a backoff wait', async () => {
    px.add({ method: 'HEAD', path: '/manifests/v1', fault: { kind: 'status', status: 503 }, times: 50 });
    const c = client({
      cacheDir: await tempDir(),
      retry: { retries: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    const controller = new AbortController();
    const reason = new Error('stop: the build was cancelled');
    const pulling = c.image(`${px.host}/test/oci:v1`, { signal: controller.signal });
    for (let i = 0; i < 250 && !px.requests.some((r) => r.fault === 'status'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    controller.abort(reason);
    const failure = await codeOf(pulling);
    px.clear();
    expect(failure.error).toBe(reason);
  });

  it('reports an unreachable registry', async () => {
    const { freePort } = await import('@irb/test-utils');
    const port = await freePort();
    const c = client({ cacheDir: await tempDir(), retry: { retries: 1, baseDelayMs: 1 } });
    const failure = await codeOf(c.image(`127.0.0.1:${port}/x/y:z`));
    expect(failure.code).toBe('IRB_REGISTRY_UNREACHABLE');
    expect(failure.message).toMatch(/ECONNREFUSED/);
  });

  it('a layer streams while it downloads: bytes come out before the blob is complete', async () => {
    const own = await startFaultProxy(reg.url);
    cleanups.push(() => own.stop());
    own.add({ method: 'GET', path: bigPath(), fault: { kind: 'stall', afterBytes: 300_000 } });
    const dir = await tempDir();
    const c = client({ cacheDir: dir, readAhead: false, timeoutMs: 60_000 });
    const image = await c.image(`${own.host}/test/oci:v1`);
    const controller = new AbortController();
    const stream = (await image.layers())[1]!.open({ signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const chunks: Buffer[] = [];
    let received = 0;
    while (received < 200_000) {
      const next = await iterator.next();
      expect(next.done).toBe(false);
      chunks.push(Buffer.from(next.value as Uint8Array));
      received += (next.value as Uint8Array).byteLength;
    }
    // The download is stalled after 300000 bytes: these came from the staged file as they
    // arrived (not yet verified), and the blob is not in the cache.
    expect(Buffer.concat(chunks).equals(Buffer.from(ociImage.layers[1]!.bytes.subarray(0, received)))).toBe(
      true,
    );
    expect(await files(dir)).not.toContain(`sha256/${ociImage.layers[1]!.digest.slice(7)}`);
    controller.abort();
    expect((await codeOf(iterator.next())).error).toBe(controller.signal.reason);
    await c.close();
    expect((await files(dir)).filter((f) => f.startsWith('.tmp/'))).toEqual([]);
  });

  it('a layer read while it downloads survives the download starting over (server ignored Range)', async () => {
    const own = await startFaultProxy(reg.url);
    cleanups.push(() => own.stop());
    own.add({ method: 'GET', path: bigPath(), fault: { kind: 'stall', afterBytes: 300_000 } });
    own.add({ method: 'GET', path: bigPath(), fault: { kind: 'ignore-range' } });
    const c = client({ cacheDir: await tempDir(), readAhead: false, timeoutMs: 1500 });
    const image = await c.image(`${own.host}/test/oci:v1`);
    const iterator = (await image.layers())[1]!.open()[Symbol.asyncIterator]();
    const chunks: Buffer[] = [];
    let received = 0;
    // Bytes handed out from the first attempt, before its stall times out and the retry's
    // full-body answer truncates the staged file.
    while (received < 150_000) {
      const next = await iterator.next();
      expect(next.done).toBe(false);
      chunks.push(Buffer.from(next.value as Uint8Array));
      received += (next.value as Uint8Array).byteLength;
    }
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      chunks.push(Buffer.from(next.value));
    }
    expect(Buffer.concat(chunks).equals(Buffer.from(ociImage.layers[1]!.bytes))).toBe(true);
    expect(own.requests.filter((r) => r.path.endsWith(bigPath())).map((r) => r.fault)).toEqual([
      'stall',
      'ignore-range',
    ]);
  });

  it('opening one layer downloads the others in the background; close() cancels it cleanly', async () => {
    const own = await startFaultProxy(reg.url);
    cleanups.push(() => own.stop());
    const smallPath = `/blobs/${ociImage.layers[0]!.digest}`;
    own.add({ method: 'GET', path: smallPath, fault: { kind: 'stall', afterBytes: 10 } });
    own.add({ method: 'GET', path: bigPath(), fault: { kind: 'stall', afterBytes: 1000 } });
    const dir = await tempDir();
    const c = createRegistryClient({ cacheDir: dir, retry: fastRetry });
    const image = await c.image(`${own.host}/test/oci:v1`);
    const [first] = await image.layers();
    const controller = new AbortController();
    const reading = readAll(first!.open({ signal: controller.signal }));
    // While the first layer hangs, the second one has been requested too.
    for (let i = 0; i < 250 && !own.requests.some((r) => r.path.endsWith(bigPath())); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(own.requests.some((r) => r.path.endsWith(bigPath()))).toBe(true);
    controller.abort();
    const aborted = await codeOf(reading);
    expect(aborted.error).toBe(controller.signal.reason);
    expect((aborted.error as Error).name).toBe('AbortError');
    await c.close();
    // a closed client says so
    expect((await codeOf(c.image(`${own.host}/test/oci:v1`))).code).toBe('IRB_CLIENT_CLOSED');
    expect((await files(dir)).filter((f) => f.startsWith('.tmp/'))).toEqual([]);
    for (let i = 0; i < 100 && (await own.openConnections()) > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await own.openConnections()).toBe(0);
  });

  it('read-ahead fills the cache while the consumer reads layer by layer', async () => {
    const own = await startFaultProxy(reg.url);
    cleanups.push(() => own.stop());
    const dir = await tempDir();
    const c = client({ cacheDir: dir });
    const image = await c.image(`${own.host}/test/docker:v1`);
    const [first, second] = await image.layers();
    await readAll(first!.open());
    const bigFile = join(dir, 'blobs', 'sha256', dockerImage.layers[1]!.digest.slice(7));
    for (let i = 0; i < 250 && !(await stat(bigFile).catch(() => undefined)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    // The second layer arrived without being opened.
    expect((await stat(bigFile)).size).toBe(dockerImage.layers[1]!.size);
    const before = own.requests.length;
    expect((await readAll(second!.open())).equals(Buffer.from(dockerImage.layers[1]!.bytes))).toBe(true);
    expect(own.requests.length).toBe(before);
  });

  it('AbortSignal cancels a stalled download cleanly', async () => {
    const own = await startFaultProxy(reg.url);
    cleanups.push(() => own.stop());
    own.add({ method: 'GET', path: bigPath(), fault: { kind: 'stall', afterBytes: 50_000 } });
    const dir = await tempDir();
    const controller = new AbortController();
    const c = createRegistryClient({
      cacheDir: dir,
      retry: fastRetry,
      onProgress: (e) => {
        if (e.phase === 'network' && e.digest === ociImage.layers[1]!.digest) controller.abort();
      },
    });
    const image = await c.image(`${own.host}/test/oci:v1`);
    const failure = await codeOf(image.prefetch({ signal: controller.signal }));
    expect(failure.error).toBe(controller.signal.reason);
    expect((await files(dir)).filter((f) => f.startsWith('.tmp/'))).toEqual([]);
    await c.close();
    for (let i = 0; i < 100 && (await own.openConnections()) > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await own.openConnections()).toBe(0);
  });
});
