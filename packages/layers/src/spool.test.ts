import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTar, opaque, pseudoRandomBytes, type TarSpec, whiteout } from '@irb/test-utils';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { emit, layerOf, MEDIA } from '../test/helpers.ts';
import { indexLayers, type LayerSource, type LayersProgress } from './index.ts';

const f = (path: string, content: string | Uint8Array = '', extra: Partial<TarSpec> = {}): TarSpec =>
  ({ type: 'file', path, content, ...extra }) as TarSpec;
const d = (path: string): TarSpec => ({ type: 'directory', path });

/** Deterministic bytes, incompressible, larger than a spool block when `n` says so. */
const noise = pseudoRandomBytes;

/** Layers that lean on each other, with bodies across spool blocks, empty files and links. */
async function stack(): Promise<Uint8Array[]> {
  const many = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => f(`${prefix}/f${i}`, `${prefix}${i}`.repeat(i % 9)));
  return Promise.all([
    buildTar(
      [
        d('etc'),
        f('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'),
        f('etc/empty'),
        d('usr'),
        ...many('usr', 1100),
        f('usr/big', noise(2_500_000, 7)),
        f('usr/gone', noise(1_200_000, 8)),
      ],
      { compression: 'gzip' },
    ),
    buildTar(
      [
        whiteout('usr/gone'),
        whiteout('usr/f1'),
        { type: 'link', path: 'hard', target: 'usr/f2' },
        f('opt/mid', noise(1_048_576, 9)),
        f('srv/kept', noise(1_048_576, 11)),
        ...many('opt', 100),
      ],
      { compression: 'zstd' },
    ),
    buildTar([opaque('opt'), f('opt/new', 'n'), f('usr/big', noise(1_048_577, 10))]),
  ]);
}

/** The entries and bodies of a build of `blobs`, with the number of times each blob was opened. */
async function build(blobs: Uint8Array[], spoolPath?: (layer: LayerSource, index: number) => string) {
  const layers = blobs.map((blob) => layerOf(blob, MEDIA.unknown, 4099));
  const events: LayersProgress[] = [];
  const rootfs = await indexLayers(layers, {
    concurrency: 2,
    onProgress: (event) => events.push({ ...event }),
    ...(spoolPath ? { spoolPath } : {}),
  });
  const out = await emit(rootfs);
  await rootfs.close();
  return { out, events, opens: layers.map((layer) => layer.opens), rootfs, layers };
}

async function openDescriptors(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

let dir: string;
const inDir = (_layer: LayerSource, index: number) =>
  join(dir, `spool-${index}-${randomBytes(4).toString('hex')}`);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'irb-spool-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('body spool', () => {
  test('gives the same entries and bodies as reading the blobs again, opening each layer once', async () => {
    const blobs = await stack();
    const again = await build(blobs);
    expect(again.opens).toEqual([2, 2, 2]);
    const fds = await openDescriptors();
    const spooled = await build(blobs, inDir);
    expect(spooled.out).toEqual(again.out);
    expect(spooled.events).toEqual(again.events);
    expect(spooled.events.filter((event) => event.phase === 'emit' && event.done)).toHaveLength(3);
    expect(spooled.events.some((event) => event.phase === 'emit' && !event.done)).toBe(true);
    expect(spooled.out.some((item) => item.body && item.body.byteLength > 1_048_576)).toBe(true);
    // Decompressed once: the index pass; the bodies came from the spool.
    expect(spooled.opens).toEqual([1, 1, 1]);
    // The files never had a name for long, and nothing is held open afterwards.
    expect(await readdir(dir)).toEqual([]);
    expect(await openDescriptors()).toBe(fds);
  });

  test('transientBodies: the same bodies, read back into two blocks used over and over', async () => {
    const blobs = [
      ...(await stack()),
      await buildTar([f('large', noise(5_000_000, 12)), f('small', 's'), f('larger', noise(3_000_000, 13))], {
        compression: 'gzip',
      }),
    ];
    /** Bodies (copied before the next pull, as the contract asks) and the buffers they came in. */
    const read = async (transientBodies: boolean) => {
      const layers = blobs.map((blob) => layerOf(blob, MEDIA.unknown, 4099));
      const rootfs = await indexLayers(layers, { concurrency: 2, spoolPath: inDir });
      const bodies: Buffer[] = [];
      const buffers = new Set<ArrayBufferLike>();
      for await (const entry of rootfs.entries({ transientBodies })) {
        if (entry.type !== 'file' || entry.body === undefined || entry.body instanceof Uint8Array) continue;
        const parts: Buffer[] = [];
        for await (const chunk of typeof entry.body === 'function' ? entry.body() : entry.body) {
          parts.push(Buffer.from(chunk));
          buffers.add(chunk.buffer);
        }
        bodies.push(Buffer.concat(parts));
      }
      await rootfs.close();
      expect(layers.map((layer) => layer.opens)).toEqual([1, 1, 1, 1]);
      return { bodies, buffers: buffers.size };
    };
    const fresh = await read(false);
    const reused = await read(true);
    expect(reused.bodies).toEqual(fresh.bodies);
    expect(reused.bodies.length).toBeGreaterThan(900);
    // At most two blocks per layer, where every block read was a new buffer before.
    expect(reused.buffers).toBeLessThanOrEqual(2 * blobs.length);
    expect(fresh.buffers).toBeGreaterThan(2 * blobs.length);
  });

  test('readFile reads from the spool; after close() everything comes from the blobs again', async () => {
    const blobs = await stack();
    const layers = blobs.map((blob) => layerOf(blob, MEDIA.unknown));
    const rootfs = await indexLayers(layers, { spoolPath: inDir });
    expect(new TextDecoder().decode(await rootfs.readFile('/etc/passwd'))).toBe(
      'root:x:0:0::/root:/bin/sh\n',
    );
    expect(await rootfs.readFile('/usr/big', { maxBytes: 4_000_000 })).toEqual(noise(1_048_577, 10));
    expect(await rootfs.readHead('/usr/big', 100)).toEqual(noise(1_048_577, 10).subarray(0, 100));
    expect(layers.map((layer) => layer.opens)).toEqual([1, 1, 1]);
    await rootfs.close();
    // From the blob: the layer is read only up to the file's first bytes.
    expect(await rootfs.readHead('/usr/big', 100)).toEqual(noise(1_048_577, 10).subarray(0, 100));
    expect(layers.map((layer) => layer.opens)).toEqual([1, 1, 2]);
    const reference = await build(blobs);
    expect(await emit(rootfs)).toEqual(reference.out);
    expect(layers.map((layer) => layer.opens)).toEqual([2, 2, 3]);
  });

  test('entries() releases each spool once its bodies are out; a second pass reads the blobs', async () => {
    const blobs = await stack();
    const layers = blobs.map((blob) => layerOf(blob, MEDIA.unknown));
    const rootfs = await indexLayers(layers, { spoolPath: inDir });
    const fds = await openDescriptors();
    const first = await emit(rootfs);
    expect(await openDescriptors()).toBe(fds - 3);
    expect(await emit(rootfs)).toEqual(first);
    expect(layers.map((layer) => layer.opens)).toEqual([2, 2, 2]);
  });

  test('a layer with a sparse file is not spooled (its holes would be written out) and is read again', async () => {
    const sparse: TarSpec = {
      type: 'sparse',
      path: 'holes',
      size: 5_000_000,
      chunks: [{ offset: 4_000_000, data: noise(1000, 3) }],
    };
    const blobs = await Promise.all([
      buildTar([f('a', noise(70_000, 1))], { compression: 'gzip' }),
      buildTar([f('b', 'b'), sparse, f('c', 'c')]),
    ]);
    const again = await build(blobs);
    const spooled = await build(blobs, inDir);
    expect(spooled.out).toEqual(again.out);
    expect(spooled.opens).toEqual([1, 2]);
  });

  test('a spool that cannot be created is done without: the layers are read again', async () => {
    const blobs = await stack();
    const again = await build(blobs);
    // A regular file where the spool's directory should be: neither open nor mkdir can work, for
    // root too (the same fallback as a directory without write permission).
    const blocked = join(dir, 'not-a-dir');
    await writeFile(blocked, '');
    const spooled = await build(blobs, () => join(blocked, 'spool'));
    expect(spooled.out).toEqual(again.out);
    expect(spooled.opens).toEqual([2, 2, 2]);
  });

  test('a spoolPath that throws means no spool, not a failure', async () => {
    const blobs = await stack();
    const again = await build(blobs);
    const spooled = await build(blobs, () => {
      throw new Error('no path for you');
    });
    expect(spooled.out).toEqual(again.out);
    expect(spooled.opens).toEqual([2, 2, 2]);
  });

  test('a missing spool directory is created', async () => {
    const blobs = await stack();
    const spooled = await build(blobs, (_layer, index) => join(dir, 'made', 'here', `s${index}`));
    expect(spooled.opens).toEqual([1, 1, 1]);
    expect(await readdir(join(dir, 'made', 'here'))).toEqual([]);
  });

  test('a layer that fails leaves no spool open or on disk, for the layers read before it too', async () => {
    const good = await buildTar([f('big', noise(3_000_000, 4))], { compression: 'gzip' });
    const truncated = (await buildTar([f('x', noise(2_000_000, 5))])).subarray(0, 1_500_000);
    const fds = await openDescriptors();
    const layers = [layerOf(good, MEDIA.gzip), layerOf(truncated)];
    await expect(indexLayers(layers, { spoolPath: inDir })).rejects.toMatchObject({
      code: 'IRB_LAYER_TRUNCATED',
    });
    expect(await openDescriptors()).toBe(fds);
    expect(await readdir(dir)).toEqual([]);
  });

  test('a stream that fails verification at its very end fails the pass: its spooled bodies are dropped', async () => {
    const blobs = await stack();
    const fds = await openDescriptors();
    const layers = blobs.map((blob, index) => {
      const layer = layerOf(blob, MEDIA.unknown);
      if (index !== 1) return layer;
      const open = layer.open.bind(layer);
      return {
        ...layer,
        open: () =>
          (async function* () {
            yield* open();
            // What a blob stream does when the bytes it gave out do not hash to the digest.
            throw Object.assign(new Error('blob does not match its digest'), { code: 'IRB_DIGEST_MISMATCH' });
          })(),
      };
    });
    await expect(indexLayers(layers, { spoolPath: inDir })).rejects.toMatchObject({
      code: 'IRB_DIGEST_MISMATCH',
    });
    expect(await openDescriptors()).toBe(fds);
    expect(await readdir(dir)).toEqual([]);
  });

  test('an abort while spooling releases every spool', async () => {
    const blobs = await stack();
    const controller = new AbortController();
    const fds = await openDescriptors();
    let chunks = 0;
    const layers = blobs.map((blob) => {
      const layer = layerOf(blob, MEDIA.unknown, 4096);
      const open = layer.open.bind(layer);
      return {
        ...layer,
        open: () =>
          (async function* () {
            for await (const chunk of open()) {
              // Well into the first layer's bodies, so its spool exists.
              if (++chunks === 200) controller.abort(new Error('stop'));
              yield chunk;
            }
          })(),
      };
    });
    await expect(indexLayers(layers, { spoolPath: inDir, signal: controller.signal })).rejects.toThrow(
      'stop',
    );
    expect(chunks).toBeGreaterThanOrEqual(200);
    expect(await openDescriptors()).toBe(fds);
    expect(await readdir(dir)).toEqual([]);
  });
});
