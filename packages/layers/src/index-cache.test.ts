import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IrbError } from '@irb/errors';
import { buildTar, opaque, whiteout } from '@irb/test-utils';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { emit, f, layerOf, MEDIA } from '../test/helpers.ts';
import {
  createDirectoryIndexCache,
  type IndexCache,
  indexCacheKey,
  indexLayers,
  type LayerSource,
} from './index.ts';
import { type LayerRecord, RECORDS_FORMAT, RecordLog } from './records.ts';

/** Layers with what records must carry exactly: non-UTF-8 and long names, xattrs, devices, links, owners. */
async function blobs(): Promise<Uint8Array[]> {
  return Promise.all([
    buildTar(
      [
        { type: 'directory', path: 'etc', mode: 0o750, uid: 3_000_000, gid: 7, mtime: 1_700_000_000 },
        f('etc/passwd', 'root:x:0:0'),
        f(new Uint8Array([0x61, 0xff, 0xfe, 0x80]) as unknown as string, 'latin'),
        f(`long/${'n'.repeat(300)}`, 'long', { xattrs: { 'security.capability': 'x', 'user.ü': 'y' } }),
        { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
        { type: 'fifo', path: 'run/fifo' },
        f('bin/sh', 'sh'.repeat(5000), { mode: 0o4755 }),
      ],
      { compression: 'gzip' },
    ),
    buildTar(
      [
        whiteout('etc/passwd'),
        { type: 'link', path: 'bin/ash', target: 'bin/sh' },
        { type: 'symlink', path: 'lib', target: new Uint8Array([0x75, 0xff]) as unknown as string },
        opaque('run'),
      ],
      { compression: 'zstd' },
    ),
    buildTar([f('etc/passwd', 'again'), f('empty')]),
  ]);
}

/** An IndexCache in memory that counts what it is asked. */
function memoryCache(): IndexCache & { store: Map<string, Uint8Array>; gets: number; sets: number } {
  const store = new Map<string, Uint8Array>();
  const cache = {
    store,
    gets: 0,
    sets: 0,
    async get(key: string) {
      cache.gets++;
      return store.get(key);
    },
    async set(key: string, bytes: Uint8Array) {
      cache.sets++;
      store.set(key, bytes);
    },
  };
  return cache;
}

describe('index cache', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'irb-layers-index-cache-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a warm cache gives the same rootfs without opening any layer in the index pass', async () => {
    const data = await blobs();
    const plain = await indexLayers(data.map((b) => layerOf(b, MEDIA.unknown, 211)));
    const expected = { out: await emit(plain), stats: plain.stats };

    // Entries are written in a temp directory of the same file system and renamed into place.
    await mkdir(join(dir, 'tmp'));
    const cache = createDirectoryIndexCache(join(dir, 'index'), { tempDir: join(dir, 'tmp') });
    const cold = data.map((b) => layerOf(b, MEDIA.unknown, 211));
    const first = await indexLayers(cold, { indexCache: cache });
    expect(cold.map((l) => l.opens)).toEqual([1, 1, 1]);
    expect(await readdir(join(dir, 'index'))).toHaveLength(3);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect({ out: await emit(first), stats: first.stats }).toEqual(expected);

    const warm = data.map((b) => layerOf(b, MEDIA.unknown, 211));
    const second = await indexLayers(warm, { indexCache: cache, concurrency: 2 });
    expect(warm.map((l) => l.opens)).toEqual([0, 0, 0]);
    expect(second.lookup('/dev/console')).toMatchObject({ type: 'char', rdevMajor: 5, rdevMinor: 1 });
    expect({ out: await emit(second), stats: second.stats }).toEqual(expected);
  });

  test('corrupt, truncated or misplaced entries are ignored: the layer is read again and the entry rewritten', async () => {
    const data = await blobs();
    const cache = createDirectoryIndexCache(dir);
    const layers = () => data.map((b) => layerOf(b, MEDIA.unknown));
    const expected = await emit(await indexLayers(layers(), { indexCache: cache }));
    const files = (await readdir(dir)).sort();
    expect(files).toHaveLength(3);
    const contents = await Promise.all(files.map((name) => readFile(join(dir, name))));
    const [a, b, c] = files.map((name) => join(dir, name)) as [string, string, string];
    await writeFile(a, 'not an index');
    await writeFile(b, (contents[1] as Buffer).subarray(0, 100));
    // A whole, valid entry of another layer under this layer's name.
    await writeFile(c, contents[0] as Buffer);

    const again = layers();
    const rootfs = await indexLayers(again, { indexCache: cache });
    expect(again.map((l) => l.opens)).toEqual([1, 1, 1]);
    expect(await emit(rootfs)).toEqual(expected);
    for (const [i, name] of files.entries()) {
      expect(await readFile(join(dir, name))).toEqual(contents[i]);
    }
    const warm = layers();
    await indexLayers(warm, { indexCache: cache });
    expect(warm.map((l) => l.opens)).toEqual([0, 0, 0]);
  });

  test('entries are checked: other format version, flipped bit, trailing bytes, other key', async () => {
    const layer = layerOf(await buildTar([f('a', 'a'), f('b', 'bb')]));
    const key = indexCacheKey(layer) as string;
    expect(key).toContain(`v${RECORDS_FORMAT}`);
    const cache = memoryCache();
    await indexLayers([layer], { indexCache: cache });
    const good = cache.store.get(key) as Uint8Array;
    const decodeRecords = (k: string, bytes: Uint8Array): LayerRecord[] | undefined => {
      const log = RecordLog.fromCache(k, bytes);
      if (!log) return undefined;
      const records: LayerRecord[] = [];
      const cursor = log.cursor();
      for (let r = cursor.next(); r; r = cursor.next()) records.push(r);
      return records;
    };
    expect(decodeRecords(key, good)?.map((r) => r.name)).toEqual(['a', 'b']);

    const rehash = (bytes: Uint8Array) => {
      const out = bytes.slice();
      out.set(
        createHash('sha256')
          .update(out.subarray(0, out.byteLength - 32))
          .digest(),
        out.byteLength - 32,
      );
      return out;
    };
    const version = good.slice();
    new DataView(version.buffer).setUint32(8, RECORDS_FORMAT + 1, true);
    expect(decodeRecords(key, rehash(version))).toBeUndefined();
    const flipped = good.slice();
    flipped[60] = (flipped[60] ?? 0) ^ 1;
    expect(decodeRecords(key, flipped)).toBeUndefined();
    const longer = new Uint8Array(good.byteLength + 4);
    longer.set(good.subarray(0, good.byteLength - 32));
    expect(decodeRecords(key, rehash(longer))).toBeUndefined();
    expect(decodeRecords(`${key}x`, good)).toBeUndefined();
    const copy = new RecordLog(key);
    for (const r of decodeRecords(key, good) ?? []) {
      const bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
      copy.append({ ...r, name: bytes(r.name), linkname: bytes(r.linkname), offset: 0 });
    }
    expect(copy.encode()).toEqual(good);
  });

  test('records round-trip exactly, numbers at their limits included', () => {
    const key = 'irb-layer-index/v3/sha256:x/application/octet-stream';
    const base = { offset: 0, linkname: new Uint8Array(0), devmajor: 0, devminor: 0, xattrs: [] as string[] };
    const entries = [
      { type: 'file' as const, mode: 0o7777, uid: 2 ** 32 - 1, gid: 0, mtime: -1, size: 2 ** 45 },
      {
        type: 'char' as const,
        mode: 0o600,
        uid: 0,
        gid: 7,
        mtime: 2 ** 40,
        size: 0,
        devmajor: 4095,
        devminor: 2 ** 20 - 1,
      },
      // Not a varint's range: stored as doubles.
      { type: 'directory' as const, mode: 0o755, uid: 1, gid: 1, mtime: 2 ** 52 + 2, size: 0, devmajor: -3 },
      {
        type: 'symlink' as const,
        mode: 0o777,
        uid: 0,
        gid: 0,
        mtime: 0,
        size: 0,
        linkname: Uint8Array.of(0xff, 0x2f),
      },
      {
        type: 'file' as const,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 5,
        size: 1,
        xattrs: ['user.é', 'security.capability'],
      },
    ];
    const log = new RecordLog(key);
    entries.forEach((entry, ordinal) => {
      log.append({ ...base, ...entry, ordinal, name: Uint8Array.of(0x61 + ordinal, 0x80) });
    });
    const bytes = log.encode() as Uint8Array;
    const back = RecordLog.fromCache(key, bytes.slice()) as RecordLog;
    const cursor = back.cursor();
    entries.forEach((entry, ordinal) => {
      const record = cursor.next();
      expect(record).toMatchObject({
        ...entry,
        ordinal,
        linkname: String.fromCharCode(...(entry.linkname ?? [])),
      });
      expect(record?.name).toBe(String.fromCharCode(0x61 + ordinal, 0x80));
    });
    expect(cursor.next()).toBeUndefined();
  });

  test('a hit stands for the diff_id check passed when the entry was written; another diff_id misses and is checked', async () => {
    const tar = await buildTar([f('etc/os-release', 'ID=test')]);
    const blob = await buildTar([f('etc/os-release', 'ID=test')], { compression: 'gzip' });
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    const cache = memoryCache();
    const layer = (id?: string) =>
      Object.assign(layerOf(blob, MEDIA.gzip), id === undefined ? {} : { diffId: id });

    const cold = layer(diffId);
    await indexLayers([cold], { indexCache: cache });
    expect(cold.opens).toBe(1);
    expect(indexCacheKey(cold)).toContain(`;diff_id=${diffId}`);
    const warm = layer(diffId);
    await indexLayers([warm], { indexCache: cache });
    expect(warm.opens).toBe(0);

    // The same blob under a config naming another tar: not a hit, so the tar is hashed and refused.
    const other = layer(`sha256:${'0'.repeat(64)}`);
    await expect(indexLayers([other], { indexCache: cache })).rejects.toMatchObject({
      code: 'IRB_LAYER_DIFF_ID_MISMATCH',
    });
    expect(other.opens).toBe(1);
    expect(cache.store.has(indexCacheKey(other) as string)).toBe(false);
    // Nor does a layer without a diff_id take the checked entry, or the other way round.
    expect(indexCacheKey(layer())).not.toBe(indexCacheKey(cold));
  });

  test('a failing cache never fails the build; layers without a digest are not cached', async () => {
    const blob = await buildTar([f('a', 'a')]);
    const broken: IndexCache = {
      get: async () => {
        throw new Error('disk gone');
      },
      set: async () => {
        throw new Error('disk full');
      },
    };
    const rootfs = await indexLayers([layerOf(blob)], { indexCache: broken });
    expect(rootfs.lookup('/a')).toMatchObject({ type: 'file', size: 1 });

    const cache = memoryCache();
    const anonymous = { ...layerOf(blob), digest: 'not a digest' };
    await indexLayers([anonymous], { indexCache: cache });
    expect(indexCacheKey(anonymous)).toBeUndefined();
    expect([cache.gets, cache.sets]).toEqual([0, 0]);
  });

  test('entries are named by the layer digest, and a hit marks the entry used now', async () => {
    const layer = layerOf(await buildTar([f('a', 'a')]));
    const cache = createDirectoryIndexCache(join(dir, 'index'));
    await indexLayers([layer], { indexCache: cache });
    const [name] = await readdir(join(dir, 'index'));
    const [algorithm, hex] = layer.digest.split(':') as [string, string];
    expect(name).toMatch(new RegExp(`^${algorithm}-${hex}\\.[0-9a-f]{16}\\.idx$`));
    const path = join(dir, 'index', name as string);
    await utimes(path, new Date(0), new Date(0));
    await indexLayers([layerOf(await buildTar([f('a', 'a')]))], { indexCache: cache });
    expect((await stat(path)).mtimeMs).toBeGreaterThan(0);
  });

  // /proc/self/… belongs to this process: nothing is created anywhere.
  test.runIf(existsSync('/proc/self'))(
    'a directory that cannot be created fails the write at once (no recursive-mkdir spin)',
    async () => {
      const cache = createDirectoryIndexCache(`/proc/self/irb-nope-${process.pid}/index`);
      await expect(cache.set('k', new Uint8Array([1]))).rejects.toMatchObject({ code: 'ENOENT' });
      await writeFile(join(dir, 'file'), 'x');
      const below = createDirectoryIndexCache(join(dir, 'file', 'index'));
      await expect(below.set('k', new Uint8Array([1]))).rejects.toMatchObject({ code: 'ENOTDIR' });
    },
  );

  test('a layer whose stream fails its digest check at the end: the index pass fails with it and nothing is cached', async () => {
    // What a registry layer read while it downloads does: every byte, then the verdict.
    const data = await blobs();
    for (const concurrency of [1, 3]) {
      const cache = memoryCache();
      const layers = data.map((b) => layerOf(b, MEDIA.unknown, 4096));
      const bad = layers[1] as LayerSource;
      const open = bad.open.bind(bad);
      bad.open = (options) =>
        (async function* () {
          yield* open(options);
          throw new IrbError(
            'IRB_DIGEST_MISMATCH',
            `blob ${bad.digest}: the downloaded bytes hash to something else`,
          );
        })();
      const failure = await indexLayers(layers, { indexCache: cache, concurrency }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toMatchObject({ code: 'IRB_DIGEST_MISMATCH' });
      // Other layers were verified by their own streams and may be kept; the failed one is not.
      expect([...cache.store.keys()]).not.toContain(indexCacheKey(bad));
      expect(cache.store.size).toBeLessThanOrEqual(2);
    }
  });
});
