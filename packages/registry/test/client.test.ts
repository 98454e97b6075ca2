// The client against a registry without auth: pulls by tag and digest, platforms, and what it refuses.
import {
  buildIndex,
  pushImage,
  type StartedFaultProxy,
  startFaultProxy,
  type TestImage,
  testBlob,
} from '@irb/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BlobProgress } from '../src/index.ts';
import {
  armOnly,
  cleanups,
  client,
  codeOf,
  dockerImage,
  files,
  ociImage,
  plainImage,
  platformImages,
  pullAndCompare,
  readAll,
  reg,
  tempDir,
  useClientFixtures,
} from './client-fixtures.ts';

useClientFixtures();

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
