// The client's blob cache: warm pulls, no cache, concurrent fills, corrupt entries.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { corruptCacheEntry } from '@irb/store';
import { flipByte, startFaultProxy } from '@irb/test-utils';
import { describe, expect, it } from 'vitest';
import { type BlobProgress, createRegistryClient } from '../src/index.ts';
import {
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
