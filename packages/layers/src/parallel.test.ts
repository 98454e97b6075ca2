import { buildTar, opaque, whiteout } from '@irb/test-utils';
import { describe, expect, test } from 'vitest';
import { d, emit, f, layerOf, MEDIA } from '../test/helpers.ts';
import { indexLayers, type LayerSource, type LayersProgress } from './index.ts';
import { RecordLog } from './records.ts';

/** Five layers that lean on each other: whiteouts, opaque dirs, links to lower layers, re-creation. */
async function stackedBlobs(): Promise<Uint8Array[]> {
  const many = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => f(`${prefix}/f${i}`, `${prefix}${i}`.repeat(i % 7)));
  return Promise.all([
    buildTar(
      [d('etc'), f('etc/passwd', 'root'), d('usr'), ...many('usr', 300), f('big', 'x'.repeat(70_000))],
      {
        compression: 'gzip',
      },
    ),
    buildTar([whiteout('usr/f1'), { type: 'link', path: 'hard', target: 'usr/f2' }, ...many('opt', 200)], {
      compression: 'zstd',
    }),
    buildTar([opaque('usr'), f('usr/new', 'n'), { type: 'link', path: 'hard2', target: 'hard' }]),
    buildTar([whiteout('hard'), f('usr/f1', 'again'), { type: 'symlink', path: 'ln', target: 'usr/new' }], {
      compression: 'gzip',
    }),
    buildTar([...many('opt', 50), whiteout('big')]),
  ]);
}

/** A layer that sends one valid header, then waits until its stream is aborted; counts opens and closes. */
function hangingLayer(state: { opened: number; closed: number }): LayerSource {
  return {
    digest: 'sha256:hanging',
    mediaType: MEDIA.tar,
    size: 0,
    open({ signal } = {}) {
      return (async function* () {
        // Counted once the stream really runs: a generator never started holds nothing open.
        state.opened++;
        try {
          yield new Uint8Array(await buildTar([f('slow', 'x')], { end: false })).subarray(0, 512);
          await new Promise((_, reject) => {
            if (signal?.aborted) reject(signal.reason);
            signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
          });
        } finally {
          state.closed++;
        }
      })();
    },
  };
}

describe('parallel index pass', () => {
  test('any concurrency gives the same entries, bodies and progress as one layer at a time', async () => {
    const blobs = await stackedBlobs();
    const run = async (concurrency: number) => {
      const events: LayersProgress[] = [];
      const rootfs = await indexLayers(
        blobs.map((blob) => layerOf(blob, MEDIA.unknown, 333)),
        { concurrency, onProgress: (event) => events.push({ ...event }) },
      );
      const out = await emit(rootfs);
      return { out, events, stats: rootfs.stats };
    };
    const serial = await run(1);
    expect(serial.out.length).toBeGreaterThan(200);
    for (const concurrency of [2, 3, 16]) {
      const parallel = await run(concurrency);
      expect(parallel.out).toEqual(serial.out);
      expect(parallel.stats).toEqual(serial.stats);
      expect(parallel.events).toEqual(serial.events);
    }
  });

  test('the error of the lowest failing layer wins, even when a higher layer fails first', async () => {
    const good = await buildTar([f('a', 'a')]);
    // Layer 1 fails while being applied (a link to nothing); layer 2 fails while being read.
    const badLink = await buildTar([
      ...Array.from({ length: 50 }, (_, i) => f(`x${i}`)),
      { type: 'link', path: 'l', target: 'missing' },
    ]);
    const corrupt = new Uint8Array(1024).fill(7);
    const attempt = indexLayers([layerOf(good), layerOf(badLink), layerOf(corrupt)], { concurrency: 3 });
    await expect(attempt).rejects.toMatchObject({ code: 'IRB_LAYER_LINK_INVALID' });
    await expect(attempt).rejects.toThrow(/layer 2\/3/);

    const corruptGzip = await buildTar([f('b', 'b'.repeat(50_000))], { compression: 'gzip' });
    const at = corruptGzip.byteLength - 5;
    corruptGzip[at] = (corruptGzip[at] ?? 0) ^ 0xff;
    const second = indexLayers([layerOf(good), layerOf(corruptGzip), layerOf(corrupt)], { concurrency: 3 });
    await expect(second).rejects.toThrow(/layer 2\/3/);
  });

  test('a failing layer stops the readers above it and closes their streams', async () => {
    const state = { opened: 0, closed: 0 };
    const corrupt = new Uint8Array(1024).fill(7);
    const good = await buildTar([f('a', 'a')]);
    const attempt = indexLayers([layerOf(good), layerOf(corrupt), hangingLayer(state)], { concurrency: 3 });
    await expect(attempt).rejects.toMatchObject({ code: 'IRB_LAYER_CORRUPT' });
    expect(state.opened).toBeLessThanOrEqual(1);
    expect(state.closed).toBe(state.opened);
  });

  test('an apply error in a lower layer closes the streams of layers still being read', async () => {
    const state = { opened: 0, closed: 0 };
    const badLink = await buildTar([{ type: 'link', path: 'l', target: 'missing' }]);
    const attempt = indexLayers([layerOf(badLink), hangingLayer(state), hangingLayer(state)], {
      concurrency: 3,
    });
    await expect(attempt).rejects.toMatchObject({ code: 'IRB_LAYER_LINK_INVALID' });
    expect(state).toEqual({ opened: 2, closed: 2 });
  });

  test('aborting while layers are read rejects with the reason and closes every stream', async () => {
    const state = { opened: 0, closed: 0 };
    const controller = new AbortController();
    const attempt = indexLayers([hangingLayer(state), hangingLayer(state), hangingLayer(state)], {
      concurrency: 2,
      signal: controller.signal,
      onProgress: () => controller.abort(new Error('stop now')),
    });
    await expect(attempt).rejects.toThrow('stop now');
    expect(state.opened).toBeLessThanOrEqual(2);
    expect(state.closed).toBe(state.opened);
  });

  test('records are detached from the reader: names are copied into the log', () => {
    const chunk = new TextEncoder().encode('xxname-bytes');
    const fields = { ordinal: 0, type: 'file' as const, mode: 0o644, uid: 1, gid: 2, mtime: 3, size: 4 };
    const more = { devmajor: 0, devminor: 0, xattrs: ['user.a'] };
    const log = new RecordLog();
    log.append({
      ...fields,
      ...more,
      offset: 0,
      name: chunk.subarray(2, 6),
      linkname: chunk.subarray(6),
      sparse: [{ offset: 0, size: 4 }],
    });
    chunk.fill(0);
    expect(log.cursor().next()).toEqual({ ...fields, ...more, name: 'name', linkname: '-bytes' });
  });
});
