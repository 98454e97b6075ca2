import {
  applyEdits,
  byteEdits,
  chunked,
  chunkSizes,
  collect,
  fuzzTestTimeout,
  onlyIrbErrors,
  runFuzz,
} from '@irb/test-utils/fuzz';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { compress } from './compress.ts';
import { decompress } from './decompress.ts';
import type { CompressionFormat } from './types.ts';
import { ZSTD_BACKEND_ENV } from './zstd.ts';

/*
 * The gzip, zstd and lz4 readers over hostile bytes: they end or throw an irb error with a
 * catalogued code and one line, and never hand out more than the format can encode from that
 * many bytes (deflate at most 1032:1, a zstd block at most 128 KiB from a 4-byte RLE block, an
 * lz4 legacy block at most 8 MiB). zstd runs under both backends (zstd-napi and node:zlib).
 */

type Packed = Exclude<CompressionFormat, 'none'>;

/** The most a format can decode from `n` input bytes, with room for one full block or window. */
function bound(format: Packed, n: number): number {
  const ratio = { gzip: 1032, zstd: 32_768, lz4: 255 }[format];
  return ratio * n + 8 * 1024 * 1024;
}

const MAGIC: Record<Packed, number[]> = {
  gzip: [0x1f, 0x8b, 0x08],
  zstd: [0x28, 0xb5, 0x2f, 0xfd],
  lz4: [0x02, 0x21, 0x4c, 0x18],
};

async function packed(format: Packed, data: Uint8Array, level: number): Promise<Uint8Array> {
  return collect(compress(chunked(data), { format, level: format === 'lz4' ? 1 : level, threads: 1 }));
}

/** Uncompressed data: random, runs of one byte (long matches), or text-like repeats. */
const plain = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.nat(200_000))
    .map(([byte, n]) => new Uint8Array(n).fill(byte)),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(2000)).map(([unit, times]) => {
    const out = new Uint8Array(unit.byteLength * times);
    for (let i = 0; i < times; i++) out.set(unit, i * unit.byteLength);
    return out;
  }),
);

const formats = fc.constantFrom<Packed>('gzip', 'zstd', 'lz4');
const backends = fc.constantFrom('napi', 'node');

function useBackend(backend: string): void {
  process.env[ZSTD_BACKEND_ENV] = backend;
}

afterEach(() => {
  delete process.env[ZSTD_BACKEND_ENV];
});

/** Several members or frames of one format back to back: what `decompress` reads as one stream. */
async function multiMember(format: Packed, parts: Uint8Array[], level: number): Promise<Uint8Array> {
  return collect(
    (async function* () {
      for (const part of parts) yield await packed(format, part, level);
    })(),
  );
}

const GZIP_ZSTD_LZ4 = ['IRB_GZIP_CORRUPT', 'IRB_GZIP_TRUNCATED', 'IRB_ZSTD_CORRUPT', 'IRB_ZSTD_TRUNCATED'];
const CODES = [
  ...GZIP_ZSTD_LZ4,
  'IRB_ZSTD_WINDOW_TOO_LARGE',
  'IRB_LZ4_CORRUPT',
  'IRB_LZ4_TRUNCATED',
  'IRB_COMPRESSION_UNSUPPORTED',
];

describe('gzip, zstd and lz4 readers under fuzzing', () => {
  it(
    'bytes after a format magic end cleanly or fail with the format’s IRB code',
    async () => {
      await runFuzz(
        'compress: magic + arbitrary bytes',
        fc.tuple(formats, fc.uint8Array({ maxLength: 400 }), backends, chunkSizes),
        async ([format, tail, backend, sizes]) => {
          useBackend(backend);
          const bytes = Uint8Array.from([...MAGIC[format], ...tail]);
          await onlyIrbErrors(
            () => collect(decompress(chunked(bytes, sizes), { format }), bound(format, bytes.byteLength)),
            CODES,
          );
        },
        { runs: 300 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'mutated multi-member streams end cleanly or fail with the format’s IRB code, within the format’s ratio',
    async () => {
      await runFuzz(
        'compress: mutated streams',
        fc.tuple(
          formats,
          fc.array(plain, { minLength: 1, maxLength: 3 }),
          fc.integer({ min: 1, max: 9 }),
          byteEdits,
          backends,
          chunkSizes,
          fc.constantFrom('auto' as const, 'format' as const),
        ),
        async ([format, parts, level, edits, backend, sizes, detect]) => {
          useBackend(backend);
          const bytes = applyEdits(await multiMember(format, parts, level), edits);
          await onlyIrbErrors(
            () =>
              collect(
                decompress(chunked(bytes, sizes), { format: detect === 'auto' ? 'auto' : format }),
                bound(format, bytes.byteLength),
              ),
            detect === 'auto' ? undefined : CODES,
          );
        },
        { runs: 500 },
      );
    },
    fuzzTestTimeout(),
  );

  it(
    'compress then decompress gives the data back, in every format and chunking',
    async () => {
      await runFuzz(
        'compress: round-trip',
        fc.tuple(
          formats,
          fc.array(plain, { minLength: 1, maxLength: 3 }),
          fc.integer({ min: 1, max: 9 }),
          backends,
          chunkSizes,
        ),
        async ([format, parts, level, backend, sizes]) => {
          useBackend(backend);
          const bytes = await multiMember(format, parts, level);
          const out = await collect(decompress(chunked(bytes, sizes)));
          expect(Buffer.from(out).equals(Buffer.concat(parts))).toBe(true);
        },
        { runs: 120 },
      );
    },
    fuzzTestTimeout(),
  );
});
