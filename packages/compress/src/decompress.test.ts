import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunked, collect, realisticData, run } from '../test/helpers.ts';
import {
  compress,
  compressionFromMediaType,
  decompress,
  detectCompression,
  ZSTD_BACKEND_ENV,
} from './index.ts';

const data = realisticData(2 * 1024 * 1024);

async function irbCode(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error('expected a failure');
}

describe('decompress', () => {
  it('decodes what gzip, pigz and zstd (real processes) write, detected by magic', async () => {
    for (const [cmd, args] of [
      ['gzip', ['-c', '-6']],
      ['pigz', ['-c', '-p', '2']],
      ['zstd', ['-c', '-q', '-T2']],
    ] as const) {
      const packed = (await run(cmd, [...args], data)).stdout;
      const out = await collect(decompress(chunked(packed, 10_007)));
      expect(out.equals(data), cmd).toBe(true);
    }
  });

  it('decodes multi-member gzip and multi-frame zstd', async () => {
    const a = data.subarray(0, 500_000);
    const b = data.subarray(500_000, 900_000);
    const gz = Buffer.concat([gzipSync(a), (await run('gzip', ['-c'], b)).stdout]);
    expect(
      (await collect(decompress(chunked(gz, 3_000), { format: 'gzip' }))).equals(data.subarray(0, 900_000)),
    ).toBe(true);
    const zst = Buffer.concat([
      await collect(compress(chunked(a), { format: 'zstd' })),
      (await run('zstd', ['-c', '-q'], b)).stdout,
    ]);
    expect((await collect(decompress(chunked(zst, 3_000)))).equals(data.subarray(0, 900_000))).toBe(true);
  });

  it('passes plain data through and follows the media type', async () => {
    const gz = gzipSync(data);
    expect((await collect(decompress(chunked(data)))).equals(data)).toBe(true);
    expect(
      (
        await collect(
          decompress(chunked(gz), { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }),
        )
      ).equals(data),
    ).toBe(true);
    // The media type wins over magic bytes: a gzip blob declared uncompressed stays as it is.
    expect(
      (
        await collect(decompress(chunked(gz), { mediaType: 'application/vnd.oci.image.layer.v1.tar' }))
      ).equals(gz),
    ).toBe(true);
  });

  it('reports truncated and corrupt input with a code and the label', async () => {
    const gz = gzipSync(data);
    const truncated = await irbCode(
      collect(decompress(chunked(gz.subarray(0, gz.length - 100)), { label: 'sha256:abc' })),
    );
    expect(truncated.code).toBe('IRB_GZIP_TRUNCATED');
    expect(truncated.message).toContain('sha256:abc');

    const corrupt = Buffer.from(gz);
    corrupt[corrupt.length - 6]! ^= 0xff; // CRC mismatch in the trailer
    expect((await irbCode(collect(decompress(chunked(corrupt), { label: 'layer 1' })))).code).toBe(
      'IRB_GZIP_CORRUPT',
    );
    const badBody = Buffer.from(gz);
    badBody.fill(0xaa, 1000, 1100);
    expect((await irbCode(collect(decompress(chunked(badBody))))).code).toBe('IRB_GZIP_CORRUPT');

    const zst = await collect(compress(chunked(data), { format: 'zstd' }));
    const zt = await irbCode(
      collect(decompress(chunked(zst.subarray(0, zst.length - 10)), { label: 'blob X' })),
    );
    expect(zt.code).toBe('IRB_ZSTD_TRUNCATED');
    expect(zt.message).toContain('blob X');
    const zc = Buffer.from(zst);
    zc.fill(0x55, 5000, 5100);
    expect((await irbCode(collect(decompress(chunked(zc))))).code).toBe('IRB_ZSTD_CORRUPT');
    // A window larger than the kernel's 128 MiB limit (zstd --long=28 declares 256 MiB).
    const long = (await run('zstd', ['--long=28', '-c', '-q'], data.subarray(0, 100_000))).stdout;
    expect(await irbCode(collect(decompress(chunked(long), { label: 'big-window' })))).toMatchObject({
      code: 'IRB_ZSTD_WINDOW_TOO_LARGE',
      message: expect.stringContaining('big-window'),
    });
    expect(await irbCode(collect(decompress(chunked(new Uint8Array(0)), { format: 'gzip' })))).toMatchObject({
      code: 'IRB_GZIP_TRUNCATED',
    });
  });

  it('reports truncated, corrupt and empty zstd with the node:zlib backend too', async () => {
    process.env[ZSTD_BACKEND_ENV] = 'node';
    try {
      const zst = await collect(compress(chunked(data), { format: 'zstd' }));
      const zt = await irbCode(
        collect(decompress(chunked(zst.subarray(0, zst.length - 10)), { label: 'blob N' })),
      );
      expect(zt.code).toBe('IRB_ZSTD_TRUNCATED');
      expect(zt.message).toContain('blob N');
      const zc = Buffer.from(zst);
      zc.fill(0x55, 5000, 5100);
      expect((await irbCode(collect(decompress(chunked(zc))))).code).toBe('IRB_ZSTD_CORRUPT');
      const badChecksum = Buffer.from(zst);
      badChecksum[badChecksum.length - 1]! ^= 0xff;
      expect((await irbCode(collect(decompress(chunked(badChecksum))))).code).toBe('IRB_ZSTD_CORRUPT');
      const junk = Buffer.concat([zst, Buffer.from('junk')]);
      expect((await irbCode(collect(decompress(chunked(junk), { format: 'zstd' })))).code).toBe(
        'IRB_ZSTD_CORRUPT',
      );
      expect((await irbCode(collect(decompress(chunked(new Uint8Array(0)), { format: 'zstd' })))).code).toBe(
        'IRB_ZSTD_TRUNCATED',
      );
      // A skippable frame between two frames is skipped.
      const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3])]);
      const joined = Buffer.concat([zst, skippable, zst]);
      expect((await collect(decompress(chunked(joined, 5_000)))).equals(Buffer.concat([data, data]))).toBe(
        true,
      );
    } finally {
      delete process.env[ZSTD_BACKEND_ENV];
    }
  });

  it('refuses formats it recognises but does not decode', async () => {
    const xz = (await run('xz', ['-c'], data.subarray(0, 1000)).catch(() => undefined))?.stdout;
    const samples: [string, Uint8Array][] = [
      ['bzip2', Buffer.from('BZh91AY&SY')],
      ['lz4', Uint8Array.of(0x04, 0x22, 0x4d, 0x18, 0x64, 0x40)],
      ['xz', xz && xz.length > 0 ? xz : Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)],
    ];
    for (const [name, bytes] of samples) {
      const failure = await irbCode(collect(decompress(chunked(bytes), { label: 'the blob' })));
      expect(failure.code).toBe('IRB_COMPRESSION_UNSUPPORTED');
      expect(failure.message).toContain(name);
    }
  });

  it('stops on abort', async () => {
    const controller = new AbortController();
    const it = decompress(chunked(gzipSync(data), 1000), { signal: controller.signal })[
      Symbol.asyncIterator
    ]();
    await it.next();
    controller.abort();
    await expect(
      (async () => {
        for (;;) if ((await it.next()).done) break;
      })(),
    ).rejects.toThrow(/abort/i);
  });
});

describe('detection', () => {
  it('recognises magic bytes', () => {
    expect(detectCompression(gzipSync('x'))).toBe('gzip');
    expect(detectCompression(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0, 0))).toBe('zstd');
    expect(detectCompression(Uint8Array.of(0x50, 0x2a, 0x4d, 0x18, 0, 0))).toBe('zstd');
    expect(detectCompression(Uint8Array.of(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0))).toBe('xz');
    expect(detectCompression(Buffer.from('BZh9'))).toBe('bzip2');
    expect(detectCompression(Uint8Array.of(0x02, 0x21, 0x4c, 0x18))).toBe('lz4');
    expect(detectCompression(Uint8Array.of(0x5d, 0, 0, 0x80))).toBe('lzma');
    expect(detectCompression(Uint8Array.of(0x89, 0x4c, 0x5a, 0x4f))).toBe('lzo');
    expect(detectCompression(Buffer.from('070701'))).toBe('none');
    expect(detectCompression(new Uint8Array(0))).toBe('none');
    expect(detectCompression(Uint8Array.of(0x1f))).toBe('none');
  });

  it('reads OCI and Docker media types', () => {
    expect(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar+gzip')).toBe('gzip');
    expect(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar+zstd')).toBe('zstd');
    expect(compressionFromMediaType('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip')).toBe(
      'gzip',
    );
    expect(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar')).toBe('none');
    expect(compressionFromMediaType('application/vnd.docker.image.rootfs.diff.tar.gzip')).toBe('gzip');
    expect(compressionFromMediaType('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip')).toBe(
      'gzip',
    );
    expect(compressionFromMediaType('application/vnd.docker.image.rootfs.diff.tar')).toBe('none');
    expect(compressionFromMediaType('application/x-tar')).toBe('none');
    expect(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar+xz')).toBe('xz');
    expect(compressionFromMediaType('application/octet-stream')).toBeUndefined();
    expect(compressionFromMediaType('')).toBeUndefined();
  });
});
