import { createHash } from 'node:crypto';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { buildTar } from '@irb/test-utils';
import {
  applyEdits,
  byteEdits,
  fuzzTestTimeout,
  onlyIrbErrors,
  runFuzz,
  tarSpecs,
} from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { emit, layerOf, MEDIA } from '../test/helpers.ts';
import { indexLayers } from './index-layers.ts';
import type { LayerSource } from './types.ts';

/*
 * The index pass and the emit pass over hostile layers: real tars with PAX and GNU long names,
 * GNU sparse files, hard links, whiteouts and opaque markers, then damaged, plain or compressed,
 * stacked one to three deep. indexLayers and entries() end, or throw an irb error with a
 * catalogued code and one line; what they emit keeps every invariant of an archive (clean paths
 * inside the root, parents first, no whiteout markers, no name twice, each body exactly its
 * size), and never more than the unpacked-size limit allows.
 */

const compressions = fc.constantFrom('none' as const, 'none' as const, 'gzip' as const, 'zstd' as const);

const layerInput = fc.record({
  specs: tarSpecs,
  edits: fc.option(byteEdits, { nil: undefined, freq: 2 }),
  compression: compressions,
  editCompressed: fc.boolean(),
  chunk: fc.constantFrom(1000, 7, 65536),
  diffId: fc.boolean(),
});

/** A layer source of the spec's tar, damaged before or after compressing it. */
async function layerFrom(
  input: typeof layerInput extends fc.Arbitrary<infer T> ? T : never,
): Promise<LayerSource> {
  let tar = await buildTar(input.specs);
  // The diff_id of the tar as written: a damaged tar then fails the check, or is read and refused first.
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
  if (input.edits && !input.editCompressed) tar = applyEdits(tar, input.edits);
  let blob: Uint8Array =
    input.compression === 'gzip'
      ? new Uint8Array(gzipSync(tar))
      : input.compression === 'zstd'
        ? new Uint8Array(zstdCompressSync(tar))
        : tar;
  if (input.edits && input.editCompressed) blob = applyEdits(blob, input.edits);
  const media = { none: MEDIA.tar, gzip: MEDIA.gzip, zstd: MEDIA.zstd }[input.compression];
  const layer = layerOf(blob, media, input.chunk);
  return input.diffId ? { ...layer, diffId, open: layer.open } : layer;
}

/** Bytes of file content the index pass may accept in these tests: small, so the emit pass stays fast. */
const MAX_UNPACKED = 64 * 1024 * 1024;

describe('indexLayers and entries() under fuzzing', () => {
  it(
    'damaged layer stacks index and emit cleanly or fail with a catalogued IRB code',
    async () => {
      await runFuzz(
        'layers: damaged layer stacks',
        fc.tuple(fc.array(layerInput, { minLength: 1, maxLength: 3 }), fc.constantFrom(1, 2)),
        async ([inputs, concurrency]) => {
          const layers = await Promise.all(inputs.map(layerFrom));
          await onlyIrbErrors(async () => {
            const rootfs = await indexLayers(layers, {
              concurrency,
              maxUnpackedBytes: MAX_UNPACKED,
              maxEntries: 10_000,
            });
            try {
              const emitted = await emit(rootfs);
              let bytes = 0;
              for (const { body } of emitted) bytes += body?.byteLength ?? 0;
              if (bytes > MAX_UNPACKED) throw new Error(`emitted ${bytes} bytes of content, over the limit`);
            } finally {
              await rootfs.close();
            }
          });
        },
        { runs: 600 },
      );
    },
    fuzzTestTimeout(),
  );
});
