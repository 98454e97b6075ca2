import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { corruptCacheEntry } from '@irb/store';
import {
  buildImage,
  buildIndex,
  buildTar,
  flipByte,
  pushImage,
  type StartedFaultProxy,
  type StartedRegistry,
  setProxyEnv,
  startFaultProxy,
  startForwardProxy,
  startRegistry,
  type TestImage,
  testBlob,
} from '@irb/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BlobProgress,
  createRegistryClient,
  createStaticKeychain,
  type Keychain,
  type RegistryClientOptions,
} from '../src/index.ts';

const PASSWORD = `pw-${randomBytes(6).toString('hex')}-S3cret`;
const REFRESH = `refresh-${randomBytes(8).toString('hex')}`;
const fastRetry = { retries: 3, baseDelayMs: 5, maxDelayMs: 1500 };

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'irb-cache-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function client(options: RegistryClientOptions) {
  const c = createRegistryClient({ retry: fastRetry, ...options });
  cleanups.push(() => c.close());
  return c;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.push(p.slice(dir.length + 1));
    }
  };
  await walk(dir);
  return out.sort();
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string; error: unknown }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message, error };
  }
  throw new Error('expected a rejection');
}

/** Pulls every layer of an image and checks it against what was pushed. */
async function pullAndCompare(
  c: ReturnType<typeof createRegistryClient>,
  ref: string,
  expected: TestImage,
  platform?: string,
) {
  const image = await c.image(ref, platform ? { platform } : {});
  expect(await image.digest()).toBe(expected.manifest.digest);
  const layers = await image.layers();
  expect(layers.map((l) => l.digest)).toEqual(expected.layers.map((l) => l.digest));
  expect(layers.map((l) => l.diffId)).toEqual(expected.diffIds);
  expect(layers.map((l) => l.mediaType)).toEqual(expected.layers.map((l) => l.mediaType));
  for (const [i, layer] of layers.entries()) {
    const bytes = await readAll(layer.open());
    expect(bytes.equals(Buffer.from(expected.layers[i]!.bytes))).toBe(true);
  }
  return image;
}

let reg: StartedRegistry;
let small: Uint8Array;
let big: Uint8Array;
let ociImage: TestImage;
let dockerImage: TestImage;
let plainImage: TestImage;
let armOnly: TestImage;
let platformImages: TestImage[];

beforeAll(async () => {
  reg = await startRegistry();
  cleanups.push(() => reg.stop());
  small = await buildTar([
    { type: 'directory', path: 'etc/' },
    { type: 'file', path: 'etc/hello', content: 'hello from irb' },
    { type: 'symlink', path: 'etc/link', target: 'hello' },
  ]);
  // Incompressible, so the blob spans many chunks and a cut lands mid-body.
  big = await buildTar([{ type: 'file', path: 'data.bin', content: new Uint8Array(randomBytes(600_000)) }]);
  ociImage = buildImage({ layers: [small, big], compression: 'gzip' });
  dockerImage = buildImage({ layers: [small, big], format: 'docker', compression: 'zstd' });
  plainImage = buildImage({ layers: [small, { tar: big, compression: 'zstd' }], compression: 'none' });
  armOnly = buildImage({ layers: [small], platform: { os: 'linux', architecture: 'arm64' } });
  platformImages = [
    buildImage({ layers: [small], platform: { os: 'linux', architecture: 'amd64' } }),
    buildImage({ layers: [small, big], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
    buildImage({ layers: [big], platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }),
  ];
  await pushImage(reg, 'test/oci', 'v1', ociImage);
  await pushImage(reg, 'test/docker', 'v1', dockerImage);
  await pushImage(reg, 'test/plain', 'v1', plainImage);
  await pushImage(reg, 'test/arm-only', 'latest', armOnly);
  const attestation = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: armOnly.manifest.digest,
    size: armOnly.manifest.size,
    platform: { os: 'unknown', architecture: 'unknown' },
    annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
  };
  await pushImage(reg, 'test/multi', armOnly.manifest.digest, armOnly);
  await pushImage(reg, 'test/multi', 'v1', buildIndex(platformImages, { extra: [attestation] }));
  await pushImage(
    reg,
    'test/multi-docker',
    'v1',
    buildIndex(platformImages.slice(0, 2), { format: 'docker' }),
  );
});

describe('anonymous registry', () => {
  it('pulls OCI/gzip, Docker/zstd and uncompressed images by tag', async () => {
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${reg.host}/test/oci:v1`, ociImage);
    await pullAndCompare(c, `${reg.host}/test/docker:v1`, dockerImage);
    const plain = await pullAndCompare(c, `${reg.host}/test/plain:v1`, plainImage);
    expect((await plain.config()).rootfs.diff_ids).toEqual(plainImage.diffIds);
  });

  it('pulls by digest, and the digest wins over a tag', async () => {
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${reg.host}/test/oci@${ociImage.manifest.digest}`, ociImage);
    // test/oci:v1 is the OCI image, the digest names the Docker one (pushed in the same repo by digest)
    await pushImage(reg, 'test/oci', dockerImage.manifest.digest, dockerImage);
    await pullAndCompare(c, `${reg.host}/test/oci:v1@${dockerImage.manifest.digest}`, dockerImage);
  });

  it('selects platforms from an OCI index and a Docker manifest list', async () => {
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${reg.host}/test/multi:v1`, platformImages[0]!);
    await pullAndCompare(c, `${reg.host}/test/multi:v1`, platformImages[1]!, 'linux/arm64');
    await pullAndCompare(c, `${reg.host}/test/multi:v1`, platformImages[1]!, 'linux/aarch64/v8');
    await pullAndCompare(c, `${reg.host}/test/multi:v1`, platformImages[2]!, 'linux/arm/v7');
    await pullAndCompare(c, `${reg.host}/test/multi-docker:v1`, platformImages[1]!, 'linux/arm64/v8');
  });

  it('lists the platforms an image has when the one asked for is missing', async () => {
    const c = client({ cacheDir: await tempDir() });
    const failure = await codeOf(c.image(`${reg.host}/test/multi:v1`, { platform: 'linux/s390x' }));
    expect(failure.code).toBe('IRB_PLATFORM_NOT_FOUND');
    expect(failure.message).toContain(
      'has no linux/s390x image; it has linux/amd64, linux/arm64, linux/arm/v7',
    );
    expect(failure.message).not.toContain('unknown');
  });

  it('takes the one entry of an index without platform data, checking its config', async () => {
    const amd = platformImages[0]!;
    const bare = buildIndex([amd]);
    const json = JSON.parse(new TextDecoder().decode(bare.manifest.bytes));
    delete json.manifests[0].platform;
    const manifest = testBlob(bare.manifest.mediaType, new TextEncoder().encode(JSON.stringify(json)));
    await pushImage(reg, 'test/bare-index', 'v1', { ...bare, manifest });
    const c = client({ cacheDir: await tempDir() });
    await pullAndCompare(c, `${reg.host}/test/bare-index:v1`, amd);
    const failure = await codeOf(c.image(`${reg.host}/test/bare-index:v1`, { platform: 'linux/arm64' }));
    expect(failure.code).toBe('IRB_PLATFORM_NOT_FOUND');
  });

  it('refuses a single-platform image of another platform', async () => {
    const c = client({ cacheDir: await tempDir() });
    const failure = await codeOf(c.image(`${reg.host}/test/arm-only`));
    expect(failure.code).toBe('IRB_PLATFORM_NOT_FOUND');
    expect(failure.message).toMatch(/single-platform linux\/arm64 image, not linux\/amd64/);
    await pullAndCompare(c, `${reg.host}/test/arm-only`, armOnly, 'linux/arm64');
  });

  it('names unknown tags and repositories', async () => {
    const c = client({ cacheDir: await tempDir() });
    const tag = await codeOf(c.image(`${reg.host}/test/oci:nope`));
    expect(tag.code).toBe('IRB_IMAGE_NOT_FOUND');
    expect(tag.message).toContain(`${reg.host}/test/oci:nope`);
    const repo = await codeOf(c.image(`${reg.host}/no/such/repo`));
    expect(repo.code).toBe('IRB_IMAGE_NOT_FOUND');
    expect(repo.message).toContain('no/such/repo:latest');
    const bad = await codeOf(c.image(`${reg.host}/Test/Upper`));
    expect(bad.code).toBe('IRB_REFERENCE_INVALID');
  });

  it('reports progress per blob, ending in done; a warm pull reports cache', async () => {
    const dir = await tempDir();
    const events: BlobProgress[] = [];
    const c = client({ cacheDir: dir, onProgress: (e) => events.push(e) });
    const image = await c.image(`${reg.host}/test/oci:v1`);
    await image.prefetch();
    const bigDigest = ociImage.layers[1]!.digest;
    const mine = events.filter((e) => e.digest === bigDigest);
    expect(mine.length).toBeGreaterThan(2);
    expect(mine.at(-1)).toEqual({
      type: 'blob',
      digest: bigDigest,
      done: ociImage.layers[1]!.size,
      total: ociImage.layers[1]!.size,
      phase: 'done',
    });
    const dones = mine.map((e) => e.done);
    expect([...dones].sort((a, b) => a - b)).toEqual(dones);
    events.length = 0;
    await image.prefetch();
    expect(events.filter((e) => e.digest === bigDigest).map((e) => e.phase)).toEqual(['cache']);
  });

  it('refuses Docker schema 1 manifests clearly', async () => {
    const px = await startFaultProxy(reg.url);
    cleanups.push(() => px.stop());
    const schema1 = JSON.stringify({
      schemaVersion: 1,
      name: 'test/old',
      tag: 'v1',
      architecture: 'amd64',
      fsLayers: [{ blobSum: ociImage.layers[0]!.digest }],
      history: [{ v1Compatibility: '{}' }],
    });
    px.add({
      path: '/manifests/',
      times: Number.POSITIVE_INFINITY,
      fault: {
        kind: 'replace',
        headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
        body: schema1,
      },
    });
    const c = client({ cacheDir: await tempDir() });
    const failure = await codeOf(c.image(`${px.host}/test/old:v1`));
    expect(failure.code).toBe('IRB_MANIFEST_UNSUPPORTED');
    expect(failure.message).toMatch(/schema 1/);
    expect(failure.message).toMatch(/re-push/);
  });

  it('rejects a manifest whose bytes do not match the digest asked for', async () => {
    const px = await startFaultProxy(reg.url);
    cleanups.push(() => px.stop());
    px.add({
      method: 'GET',
      path: `/manifests/${ociImage.manifest.digest}`,
      fault: { kind: 'flip', at: 20 },
      times: 10,
    });
    const c = client({ cacheDir: await tempDir() });
    const failure = await codeOf(c.image(`${px.host}/test/oci@${ociImage.manifest.digest}`));
    expect(failure.code).toBe('IRB_DIGEST_MISMATCH');
  });
});

describe('hostile manifests', () => {
  let px: StartedFaultProxy;
  const enc = (v: unknown) => JSON.stringify(v);
  const manifestOf = (image: TestImage) => JSON.parse(new TextDecoder().decode(image.manifest.bytes));
  beforeAll(async () => {
    px = await startFaultProxy(reg.url);
    cleanups.push(() => px.stop());
    const serve = (
      tag: string,
      body: string,
      type = 'application/vnd.oci.image.manifest.v1+json',
      extra = {},
    ) =>
      px.add({
        path: `/manifests/${tag}`,
        times: Number.POSITIVE_INFINITY,
        fault: { kind: 'replace', headers: { 'content-type': type, ...extra }, body },
      });
    const m = manifestOf(ociImage);
    serve('notjson', 'this is not json {');
    serve(
      'artifact',
      enc({ ...m, config: { ...m.config, mediaType: 'application/vnd.cncf.helm.config.v1+json' } }),
    );
    serve('unknown-type', enc({ schemaVersion: 2, things: [] }), 'application/vnd.example.thing+json');
    serve('bad-layer-digest', enc({ ...m, layers: [{ ...m.layers[0], digest: 'sha256:xyz' }] }));
    serve('negative-size', enc({ ...m, layers: [{ ...m.layers[0], size: -1 }] }));
    serve('fractional-size', enc({ ...m, layers: [{ ...m.layers[0], size: 1.5 }] }));
    // 2^53 + 2: JSON can write it, but no blob size beyond 2^53 - 1 can be checked exactly.
    serve('unsafe-size', enc({ ...m, layers: [{ ...m.layers[0], size: 2 ** 53 + 2 }] }));
    serve('huge-config', enc({ ...m, config: { ...m.config, size: 3 * 2 ** 30 } }));
    // An index whose other platform's entry is malformed: refused as the index is parsed.
    serve(
      'index-bad-entry',
      enc({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: ociImage.manifest.mediaType,
            digest: ociImage.manifest.digest,
            size: ociImage.manifest.size,
            platform: { os: 'linux', architecture: 'amd64' },
          },
          {
            mediaType: ociImage.manifest.mediaType,
            digest: ociImage.manifest.digest,
            size: -1,
            platform: { os: 'linux', architecture: 'arm64' },
          },
        ],
      }),
      'application/vnd.oci.image.index.v1+json',
    );
    // An index entry whose platform is not an object: refused as the index is parsed, not a TypeError.
    serve(
      'index-platform-not-object',
      enc({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: ociImage.manifest.mediaType,
            digest: ociImage.manifest.digest,
            size: ociImage.manifest.size,
            platform: [],
          },
        ],
      }),
      'application/vnd.oci.image.index.v1+json',
    );
    // No media type of its own nor from Content-Type: the kind comes from the shape, whatever config.mediaType holds.
    serve(
      'config-media-type-not-string',
      enc({ schemaVersion: 2, config: { ...m.config, mediaType: [] }, layers: m.layers }),
      'application/json',
    );
    serve('no-layers', enc({ ...m, layers: undefined }));
    serve('schema3', enc({ ...m, schemaVersion: 3 }));
    // a valid manifest but for one byte that is not UTF-8, inside an annotation
    px.add({
      path: '/manifests/not-utf8',
      times: Number.POSITIVE_INFINITY,
      fault: {
        kind: 'replace',
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        body: Buffer.from(
          enc({ ...m, annotations: { note: 'caf\u00e9' } }).replace('\u00e9', '\u0000'),
          'utf8',
        ).map((b) => (b === 0 ? 0xe9 : b)),
      },
    });
    serve('huge', enc({ ...m, padding: 'x'.repeat(4 * 1024 * 1024) }));
    const lying = enc(m);
    serve('wrong-content-digest', lying, undefined, { 'docker-content-digest': `sha256:${'0'.repeat(64)}` });
    serve(
      'short-size',
      enc({ ...m, layers: [m.layers[0], { ...m.layers[1], size: m.layers[1].size - 100 }] }),
    );
    // real configs, pushed with a manifest naming them: one whose diff_ids do not match the
    // layer count, and ones whose fields have the wrong type
    const config = JSON.parse(new TextDecoder().decode(ociImage.config.bytes));
    const withConfig = async (tag: string, doc: unknown) => {
      const badConfig = testBlob(ociImage.config.mediaType, new TextEncoder().encode(enc(doc)));
      await pushImage(reg, 'test/oci', tag, {
        ...ociImage,
        config: badConfig,
        manifest: testBlob(
          ociImage.manifest.mediaType,
          new TextEncoder().encode(
            enc({ ...m, config: { ...m.config, digest: badConfig.digest, size: badConfig.size } }),
          ),
        ),
      });
    };
    await withConfig('diffids', { ...config, rootfs: { type: 'layers', diff_ids: [] } });
    await withConfig('config-null', null);
    await withConfig('config-architecture', { ...config, architecture: [] });
    await withConfig('config-cmd-string', { ...config, config: { ...config.config, Cmd: 'sh -c true' } });
  });

  it.each([
    ['notjson', 'IRB_MANIFEST_INVALID', /not valid JSON/],
    ['artifact', 'IRB_MANIFEST_UNSUPPORTED', /not a container image/],
    ['unknown-type', 'IRB_MANIFEST_UNSUPPORTED', /application\/vnd\.example\.thing\+json/],
    ['bad-layer-digest', 'IRB_MANIFEST_INVALID', /layer 1: invalid digest/],
    ['negative-size', 'IRB_MANIFEST_INVALID', /malformed descriptor/],
    ['fractional-size', 'IRB_MANIFEST_INVALID', /layer 1 has a malformed descriptor/],
    ['unsafe-size', 'IRB_MANIFEST_INVALID', /layer 1 has a malformed descriptor/],
    ['huge-config', 'IRB_MANIFEST_INVALID', /claims 3221225472 bytes, over the 64 MiB limit/],
    ['index-bad-entry', 'IRB_MANIFEST_INVALID', /index entry 2 has a malformed descriptor/],
    ['no-layers', 'IRB_MANIFEST_INVALID', /no layers list/],
    ['schema3', 'IRB_MANIFEST_INVALID', /schemaVersion 3/],
    ['not-utf8', 'IRB_MANIFEST_INVALID', /the manifest is not UTF-8 text, so not valid JSON/],
    ['huge', 'IRB_MANIFEST_INVALID', /: manifest is (larger than|\d+ bytes, over) the 4 MiB limit$/],
    ['wrong-content-digest', 'IRB_DIGEST_MISMATCH', /manifest of/],
    ['diffids', 'IRB_MANIFEST_INVALID', /0 diff_ids for 2 layers/],
    ['index-platform-not-object', 'IRB_MANIFEST_INVALID', /index entry 1 has a malformed platform/],
    ['config-media-type-not-string', 'IRB_MANIFEST_INVALID', /config has a malformed descriptor/],
    ['config-null', 'IRB_MANIFEST_INVALID', /config has no rootfs\.diff_ids/],
    ['config-architecture', 'IRB_MANIFEST_INVALID', /config architecture is not a string/],
    ['config-cmd-string', 'IRB_MANIFEST_INVALID', /config config\.Cmd is not a list of strings/],
  ])('%s → %s', async (tag, code, message) => {
    const c = client({ cacheDir: await tempDir() });
    const failure = await codeOf(c.image(`${px.host}/test/oci:${tag}`));
    expect(failure.code).toBe(code);
    expect(failure.message).toMatch(message);
  });

  it('a blob longer than its descriptor stops at the limit and is not cached', async () => {
    const dir = await tempDir();
    const c = client({ cacheDir: dir, readAhead: false });
    const image = await c.image(`${px.host}/test/oci:short-size`);
    const failure = await codeOf(readAll((await image.layers())[1]!.open()));
    expect(failure.code).toBe('IRB_SIZE_MISMATCH');
    expect(failure.message).toMatch(/more than the \d+ bytes the manifest declares/);
    expect(
      (await files(dir)).filter(
        (f) => f.startsWith('.tmp/') || f.endsWith(ociImage.layers[1]!.digest.slice(7)),
      ),
    ).toEqual([]);
  });
});

describe('cache', () => {
  it('a warm pull by tag sends one manifest request and no blob request', async () => {
    const px = await startFaultProxy(reg.url);
    cleanups.push(() => px.stop());
    const dir = await tempDir();
    const first = client({ cacheDir: dir });
    await pullAndCompare(first, `${px.host}/test/multi:v1`, platformImages[1]!, 'linux/arm64');
    const cold = px.requests.length;
    expect(px.requests.some((r) => r.path.includes('/blobs/'))).toBe(true);
    const second = client({ cacheDir: dir });
    await pullAndCompare(second, `${px.host}/test/multi:v1`, platformImages[1]!, 'linux/arm64');
    const warm = px.requests.slice(cold).filter((r) => r.path.startsWith('/v2/test/'));
    expect(warm.map((r) => `${r.method} ${r.path}`)).toEqual(['HEAD /v2/test/multi/manifests/v1']);
    // by digest: nothing at all
    const third = client({ cacheDir: dir });
    const before = px.requests.length;
    await pullAndCompare(
      third,
      `${px.host}/test/multi@${platformImages[1]!.manifest.digest}`,
      platformImages[1]!,
      'linux/arm64',
    );
    expect(px.requests.length).toBe(before);
  });

  it('cache: false downloads into a temp dir that close() removes', async () => {
    const events: BlobProgress[] = [];
    const c = createRegistryClient({ cache: false, onProgress: (e) => events.push(e) });
    await pullAndCompare(c, `${reg.host}/test/oci:v1`, ociImage);
    const cacheDir = (await c.cache()).dir;
    expect((await files(cacheDir)).length).toBeGreaterThan(0);
    await c.close();
    await expect(stat(cacheDir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(events.some((e) => e.phase === 'network')).toBe(true);
  });

  it('two clients filling one cache at once both succeed', async () => {
    const dir = await tempDir();
    const a = client({ cacheDir: dir });
    const b = client({ cacheDir: dir });
    await Promise.all([
      pullAndCompare(a, `${reg.host}/test/docker:v1`, dockerImage),
      pullAndCompare(b, `${reg.host}/test/docker:v1`, dockerImage),
    ]);
    // read-ahead may still be finishing a download the other client won; close() waits for it
    await Promise.all([a.close(), b.close()]);
    const stored = await files(dir);
    expect(stored.filter((f) => f.startsWith('tmp/'))).toEqual([]);
    for (const layer of dockerImage.layers) expect(stored).toContain(`blobs/sha256/${layer.digest.slice(7)}`);
  });

  it('an unwritable cache directory is a clear error', async () => {
    const c = client({ cacheDir: '/dev/null/irb-cache' });
    const failure = await codeOf(c.image(`${reg.host}/test/oci:v1`));
    expect(failure.code).toBe('IRB_CACHE_WRITE_FAILED');
    expect(failure.message).toMatch(
      /cannot create the blob cache at \/dev\/null\/irb-cache: a part of the path is a file, not a directory \(ENOTDIR\); set `cacheDir` \(or IRB_CACHE_DIR\) to a writable directory, or pass `cache: false`/,
    );
  });

  it('a corrupted cache entry is detected on read, removed, and the next read fetches it again', async () => {
    const dir = await tempDir();
    const c = client({ cacheDir: dir });
    const image = await c.image(`${reg.host}/test/plain:v1`);
    await image.prefetch();
    const layer = (await image.layers())[0]!;
    await flipByte(join(dir, 'blobs', 'sha256', layer.digest.slice(7)), 700);
    const failure = await codeOf(readAll(layer.open()));
    expect(failure.code).toBe('IRB_DIGEST_MISMATCH');
    expect(failure.message).toMatch(/removed from the cache/);
    // Marked as the cache's own copy gone bad: doing the same again fetches it afresh.
    expect(corruptCacheEntry(failure.error)).toBe(join(dir, 'blobs', 'sha256', layer.digest.slice(7)));
    expect((await readAll(layer.open())).equals(Buffer.from(plainImage.layers[0]!.bytes))).toBe(true);
  });

  it('a corrupt cached config or manifest is fetched again without a word', async () => {
    const px = await startFaultProxy(reg.url);
    cleanups.push(() => px.stop());
    const dir = await tempDir();
    const ref = `${px.host}/test/oci@${ociImage.manifest.digest}`;
    await pullAndCompare(client({ cacheDir: dir }), ref, ociImage);
    const blobs = join(dir, 'blobs', 'sha256');
    await flipByte(join(blobs, ociImage.config.digest.slice(7)), 3);
    await flipByte(join(blobs, ociImage.manifest.digest.slice(7)), 3);
    const before = px.requests.length;
    await pullAndCompare(client({ cacheDir: dir }), ref, ociImage);
    const again = px.requests.slice(before).map((r) => `${r.method} ${r.path}`);
    expect(again).toContain(`GET /v2/test/oci/manifests/${ociImage.manifest.digest}`);
    expect(again).toContain(`GET /v2/test/oci/blobs/${ociImage.config.digest}`);
    // The layers were intact: not downloaded again.
    expect(again.filter((r) => r.includes('/blobs/') && !r.includes(ociImage.config.digest))).toEqual([]);
  });
});

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

describe('htpasswd (basic) auth', () => {
  let basicReg: StartedRegistry;
  let px: StartedFaultProxy;
  const basic = `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`;
  beforeAll(async () => {
    basicReg = await startRegistry({ auth: { htpasswd: { user: 'alice', pass: PASSWORD } } });
    cleanups.push(() => basicReg.stop());
    await pushImage(basicReg, 'private/app', 'v1', ociImage);
    px = await startFaultProxy(basicReg.url, [], { blobStoreUpstreamAuthorization: async () => basic });
    cleanups.push(() => px.stop());
  });

  it('pulls with a keychain and refuses without one', async () => {
    const keychain = createStaticKeychain({
      [basicReg.host]: { kind: 'basic', username: 'alice', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    await pullAndCompare(c, `${basicReg.host}/private/app:v1`, ociImage);
    const anon = client({ cacheDir: await tempDir() });
    const failure = await codeOf(anon.image(`${basicReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failure.message).toMatch(/no keychain supplied credentials/);
  });

  it('a wrong password says so and never shows the secret', async () => {
    const wrong = `${PASSWORD}-wrong`;
    const keychain = createStaticKeychain(
      { [basicReg.host]: { kind: 'basic', username: 'alice', password: wrong } },
      'my-keychain',
    );
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const failure = await codeOf(c.image(`${basicReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failure.message).toMatch(/rejected the credentials from keychain "my-keychain"/);
    const everything = `${failure.message}\n${inspect(failure.error, { depth: 10 })}\n${JSON.stringify(failure.error)}`;
    for (const secret of [wrong, Buffer.from(`alice:${wrong}`).toString('base64')]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('follows redirects to another origin without sending Authorization there', async () => {
    px.add({
      method: 'GET',
      path: '/blobs/sha256:',
      fault: { kind: 'redirect' },
      times: Number.POSITIVE_INFINITY,
    });
    const keychain = createStaticKeychain({
      [px.host]: { kind: 'basic', username: 'alice', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    await pullAndCompare(c, `${px.host}/private/app:v1`, ociImage);
    const redirected = px.requests.filter((r) => r.fault === 'redirect');
    expect(redirected.length).toBe(3); // config + 2 layers
    expect(redirected.every((r) => r.headers.authorization === basic)).toBe(true);
    expect(px.blobStore.requests.length).toBe(3);
    expect(px.blobStore.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
  });
});

describe('token auth', () => {
  let tokReg: StartedRegistry;
  beforeAll(async () => {
    tokReg = await startRegistry({
      auth: {
        token: {
          users: { bob: PASSWORD },
          anonymousPull: ['public/app'],
          refreshTokens: { [REFRESH]: 'bob' },
        },
      },
    });
    cleanups.push(() => tokReg.stop());
    await pushImage(tokReg, 'public/app', 'v1', ociImage);
    await pushImage(tokReg, 'private/app', 'v1', dockerImage);
  });
  const requests = () => tokReg.tokenServer!.requests;

  it('gets anonymous tokens for public repositories', async () => {
    const c = client({ cacheDir: await tempDir() });
    const before = requests().length;
    await pullAndCompare(c, `${tokReg.host}/public/app:v1`, ociImage);
    const mine = requests().slice(before);
    expect(mine.length).toBe(1); // one token, cached for every later request
    expect(mine[0]).toMatchObject({ method: 'GET', user: undefined, scopes: ['repository:public/app:pull'] });
    const failure = await codeOf(c.image(`${tokReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
  });

  it('exchanges a username/password for a token and caches it', async () => {
    const keychain = createStaticKeychain({
      [tokReg.host]: { kind: 'basic', username: 'bob', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const before = requests().length;
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
    const mine = requests().slice(before);
    expect(mine.map((r) => r.user)).toEqual(['bob']);
  });

  it('fetches a fresh token when the registry rejects a cached one (expired or revoked)', async () => {
    const px = await startFaultProxy(tokReg.url);
    cleanups.push(() => px.stop());
    const keychain = createStaticKeychain({
      [px.host]: { kind: 'basic', username: 'bob', password: PASSWORD },
    });
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    await pullAndCompare(c, `${px.host}/private/app:v1`, dockerImage);
    const before = requests().length;
    px.add({
      method: 'HEAD',
      path: '/manifests/v1',
      fault: {
        kind: 'status',
        status: 401,
        headers: {
          'www-authenticate': `Bearer realm="${tokReg.tokenServer!.realm}",service="irb-test-registry",scope="repository:private/app:pull",error="invalid_token"`,
        },
      },
    });
    await pullAndCompare(c, `${px.host}/private/app:v1`, dockerImage);
    expect(
      requests()
        .slice(before)
        .map((r) => r.user),
    ).toEqual(['bob']);
    const heads = px.requests.filter((r) => r.method === 'HEAD');
    expect(heads.at(-2)!.headers.authorization).toMatch(/^Bearer /);
    expect(heads.at(-1)!.headers.authorization).not.toBe(heads.at(-2)!.headers.authorization);
  });

  it('uses identity tokens (refresh_token grant)', async () => {
    const keychain: Keychain = {
      name: 'identity',
      resolve: async (scope) =>
        scope.registry === tokReg.host ? { kind: 'identity-token', token: REFRESH } : undefined,
    };
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const before = requests().length;
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
    expect(requests().slice(before)).toMatchObject([
      { method: 'POST', grantType: 'refresh_token', user: 'bob' },
    ]);
  });

  it('first keychain answer wins; unanswered falls through', async () => {
    const silent: Keychain = { name: 'silent', resolve: async () => undefined };
    const good = createStaticKeychain({
      [tokReg.host]: { kind: 'basic', username: 'bob', password: PASSWORD },
    });
    const bad = createStaticKeychain({ [tokReg.host]: { kind: 'basic', username: 'bob', password: 'nope' } });
    const c = client({ cacheDir: await tempDir(), keychains: [silent, good, bad] });
    await pullAndCompare(c, `${tokReg.host}/private/app:v1`, dockerImage);
  });

  it('a wrong password is reported without leaking it', async () => {
    const wrong = `${PASSWORD}x`;
    const keychain = createStaticKeychain(
      { [tokReg.host]: { kind: 'basic', username: 'bob', password: wrong } },
      'docker-config',
    );
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const failure = await codeOf(c.image(`${tokReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(failure.message).toMatch(/rejected the username\/password from keychain "docker-config"/);
    expect(failure.message).toMatch(/log in again/);
    const everything = `${failure.message}\n${inspect(failure.error, { depth: 10 })}`;
    expect(everything).not.toContain(wrong);
    expect(everything).not.toContain(Buffer.from(`bob:${wrong}`).toString('base64'));
  });

  it('a wrong identity token is reported without leaking it', async () => {
    const token = `bad-${randomBytes(8).toString('hex')}`;
    const keychain: Keychain = { name: 'idt', resolve: async () => ({ kind: 'identity-token', token }) };
    const c = client({ cacheDir: await tempDir(), keychains: [keychain] });
    const failure = await codeOf(c.image(`${tokReg.host}/private/app:v1`));
    expect(failure.code).toBe('IRB_REGISTRY_UNAUTHORIZED');
    expect(`${failure.message}${inspect(failure.error, { depth: 10 })}`).not.toContain(token);
  });
});

describe('transport policy', () => {
  it('refuses plain HTTP to a non-loopback registry unless marked insecure', async () => {
    // The proxy sends everything to the registry on loopback: the name is never resolved.
    const proxy = await startForwardProxy({ pinPort: Number(new URL(reg.url).port) });
    cleanups.push(() => proxy.stop());
    const host = 'registry.irb.test:5000';
    const restoreEnv = setProxyEnv(proxy.url);
    try {
      const strict = client({ cacheDir: await tempDir(), retry: { retries: 0 } });
      const failure = await codeOf(strict.image(`${host}/test/oci:v1`));
      expect(failure.code).toBe('IRB_REGISTRY_INSECURE');
      expect(failure.message).toContain(`\`insecureRegistries: ['${host}']\``);
      // a library names its options; the CLI translates them into flags
      expect(failure.message).not.toMatch(/--[a-z]/);
      const relaxed = client({ cacheDir: await tempDir(), insecureRegistries: [`http://${host}/`] });
      await pullAndCompare(relaxed, `${host}/test/oci:v1`, ociImage);
    } finally {
      restoreEnv();
    }
  });

  it('tries mirrors first and falls back to the origin', async () => {
    const mirror = await startFaultProxy(reg.url);
    cleanups.push(() => mirror.stop());
    // Only the mirror knows this registry name: the origin cannot resolve.
    const viaMirror = client({ cacheDir: await tempDir(), mirrors: { 'registry.invalid': [mirror.url] } });
    await pullAndCompare(viaMirror, 'registry.invalid/test/oci:v1', ociImage);
    expect(mirror.requests.some((r) => r.path.includes('/blobs/'))).toBe(true);
    // A broken mirror: everything falls back to the origin.
    mirror.add({ path: '/v2/', fault: { kind: 'status', status: 500 }, times: Number.POSITIVE_INFINITY });
    const fallback = client({
      cacheDir: await tempDir(),
      mirrors: { [reg.host]: [mirror.url] },
      retry: { retries: 0 },
    });
    await pullAndCompare(fallback, `${reg.host}/test/docker:v1`, dockerImage);
    // A mirror serving corrupt bytes: the blob comes from the origin instead.
    const corrupt = await startFaultProxy(reg.url);
    cleanups.push(() => corrupt.stop());
    corrupt.add({ path: `/blobs/${ociImage.layers[1]!.digest}`, fault: { kind: 'flip', at: 10 } });
    const dir = await tempDir();
    const viaCorrupt = client({ cacheDir: dir, mirrors: { [reg.host]: [corrupt.url] }, readAhead: false });
    await pullAndCompare(viaCorrupt, `${reg.host}/test/oci:v1`, ociImage);
    expect(corrupt.requests.filter((r) => r.fault === 'flip').length).toBe(1);
  });

  it('reads mirrors from IRB_REGISTRY_MIRRORS and refuses malformed ones', async () => {
    const mirror = await startFaultProxy(reg.url);
    cleanups.push(() => mirror.stop());
    process.env.IRB_REGISTRY_MIRRORS = `mirror-only.invalid=${mirror.url}`;
    try {
      const c = client({ cacheDir: await tempDir() });
      await pullAndCompare(c, 'mirror-only.invalid/test/plain:v1', plainImage);
      // Docker Hub mirrors may be keyed by any of Hub's names; `test/plain` is docker.io/test/plain.
      process.env.IRB_REGISTRY_MIRRORS = `index.docker.io=${mirror.url}`;
      await pullAndCompare(client({ cacheDir: await tempDir() }), 'test/plain:v1', plainImage);
      process.env.IRB_REGISTRY_MIRRORS = 'docker.io';
      expect(() => createRegistryClient()).toThrow(/not registry=URL/);
      process.env.IRB_REGISTRY_MIRRORS = 'docker.io=https://user:pw@mirror.example';
      expect(() => createRegistryClient()).toThrow(/credentials in its URL/);
    } finally {
      delete process.env.IRB_REGISTRY_MIRRORS;
    }
  });
});
