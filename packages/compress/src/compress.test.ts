import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunked, collect, realisticData, run } from '../test/helpers.ts';
import { GZIP_BLOCK_SIZE } from './gzip.ts';
import { compress, decompress, ZSTD_BACKEND_ENV, zstdBackend } from './index.ts';
import { zstdFrameWindowLog } from './zstd.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const data = realisticData(6 * 1024 * 1024);

describe('compress gzip', () => {
  it('round-trips at every level and is read by gzip, gunzip and pigz', async () => {
    for (const level of [1, 2, 3, 4, 5, 6, 7, 8, 9]) {
      const input = data.subarray(0, 1_000_000 + level * 7919);
      const gz = await collect(
        compress(chunked(input, 40_000 + level), { format: 'gzip', level, threads: 2 }),
      );
      expect(gunzipSync(gz).equals(input), `level ${level}`).toBe(true);
      expect(gz[8], 'XFL').toBe(level === 9 ? 2 : level === 1 ? 4 : 0);
      if (level === 1 || level === 6 || level === 9) {
        expect((await run('gzip', ['-t'], gz)).code).toBe(0);
        expect(sha((await run('gzip', ['-dc'], gz)).stdout)).toBe(sha(input));
        expect(sha((await run('pigz', ['-dc'], gz)).stdout)).toBe(sha(input));
      }
    }
  });

  it('writes one deterministic member: no name, no mtime, fixed OS byte', async () => {
    const gz = await collect(compress(chunked(data.subarray(0, 300_000)), { format: 'gzip', threads: 2 }));
    expect([...gz.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    // One member: a single raw deflate stream spans everything between header and trailer.
    const { buffer, engine } = inflateRawSync(gz.subarray(10, gz.length - 8), { info: true }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    expect(engine.bytesWritten).toBe(gz.length - 18);
    expect(buffer.length).toBe(300_000);
    expect(gz.readUInt32LE(gz.length - 4)).toBe(300_000);
  });

  it('is byte-identical across runs, thread counts and input chunkings', async () => {
    const input = data.subarray(0, 3 * GZIP_BLOCK_SIZE * 3 + 12_345);
    const hashes = new Set<string>();
    for (const [threads, chunk] of [
      [1, 65_536],
      [2, 1_000],
      [3, 131_072],
      [8, 999_999],
      [2, 65_536],
    ] as const) {
      hashes.add(sha(await collect(compress(chunked(input, chunk), { format: 'gzip', threads }))));
    }
    expect(hashes.size).toBe(1);
  });

  it('past the first 8 MiB deflates in worker threads, with the same bytes as one thread', async () => {
    // The first 32 blocks go to libuv's pool, the rest to workers (threads > 1).
    const long = Buffer.concat([data, data]).subarray(0, 34 * GZIP_BLOCK_SIZE + 4_321);
    const one = await collect(compress(chunked(long, 65_536), { format: 'gzip', threads: 1 }));
    for (const [threads, chunk] of [
      [2, 131_072],
      [3, 1_000_003],
    ] as const) {
      const many = await collect(compress(chunked(long, chunk), { format: 'gzip', threads }));
      expect(sha(many), `threads ${threads}`).toBe(sha(one));
    }
    expect(gunzipSync(one).equals(long)).toBe(true);
  });

  it('stays within 1% of single-threaded zlib at the same level', async () => {
    for (const level of [1, 6, 9]) {
      const ours = await collect(compress(chunked(data), { format: 'gzip', level }));
      const zlib = gzipSync(data, { level });
      const ratio = ours.length / zlib.length;
      expect(ratio, `level ${level}: ${ours.length} vs ${zlib.length}`).toBeLessThan(1.01);
    }
  });

  it('handles empty input, block-sized input and tiny chunks', async () => {
    for (const input of [
      new Uint8Array(0),
      data.subarray(0, GZIP_BLOCK_SIZE),
      data.subarray(0, 2 * GZIP_BLOCK_SIZE),
      data.subarray(0, 1),
    ]) {
      const gz = await collect(compress(chunked(input, 7), { format: 'gzip', threads: 2 }));
      expect(gunzipSync(gz).equals(input)).toBe(true);
      expect((await run('gzip', ['-t'], gz)).code).toBe(0);
    }
  });

  it('reads the source only as output is consumed', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled += 65_536;
        yield data.subarray(0, 65_536);
      }
    }
    const it = compress(endless(), { format: 'gzip', threads: 2 })[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) await it.next();
    await it.return?.();
    // Header + 4 blocks consumed; the window of blocks in flight bounds what was read.
    expect(pulled).toBeLessThanOrEqual(12 * GZIP_BLOCK_SIZE);
  });

  it('stops on abort', async () => {
    const controller = new AbortController();
    const it = compress(chunked(data), { format: 'gzip', signal: controller.signal })[Symbol.asyncIterator]();
    await it.next();
    controller.abort();
    await expect(it.next()).rejects.toThrow(/abort/i);
  });

  it('refuses bad levels and thread counts', () => {
    expect(() => compress(chunked(data), { format: 'gzip', level: 0 })).toThrow(/gzip level 0/);
    expect(() => compress(chunked(data), { format: 'gzip', level: 10 })).toThrow(
      expect.objectContaining({ code: 'IRB_OPTION_INVALID' }),
    );
    expect(() => compress(chunked(data), { format: 'zstd', level: 20 })).toThrow(/1 … 19/);
    expect(() => compress(chunked(data), { format: 'gzip', threads: 0 })).toThrow(/threads/);
    expect(() => compress(chunked(data), { format: 'xz' as 'gzip' })).toThrow(/unknown compression format/);
  });
});

for (const [backend, env] of [
  ['zstd-napi', 'napi'],
  ['node:zlib', 'node'],
] as const) {
  describe(`compress zstd with ${backend}`, () => {
    beforeAll(() => {
      process.env[ZSTD_BACKEND_ENV] = env;
    });
    afterAll(() => {
      delete process.env[ZSTD_BACKEND_ENV];
    });

    it('runs the backend it was asked for', () => {
      expect(zstdBackend()).toBe(backend);
    });

    it('round-trips at several levels and is read by zstd', async () => {
      for (const level of [1, 3, 9, 19]) {
        const input = data.subarray(0, level === 19 ? 500_000 : 2_000_000);
        const zst = await collect(compress(chunked(input), { format: 'zstd', level, threads: 2 }));
        expect((await collect(decompress(chunked(zst), { format: 'zstd' }))).equals(input)).toBe(true);
        expect((await run('zstd', ['-t', '-q'], zst)).code).toBe(0);
        expect(sha((await run('zstd', ['-dc'], zst)).stdout)).toBe(sha(input));
      }
    });

    it('is byte-identical across runs, thread counts and chunkings, with checksum and a kernel-sized window', async () => {
      const hashes = new Set<string>();
      let first: Buffer | undefined;
      for (const [threads, chunk] of [
        [1, 65_536],
        [2, 777],
        [4, 1_000_000],
        [2, 65_536],
      ] as const) {
        const zst = await collect(compress(chunked(data, chunk), { format: 'zstd', threads }));
        first ??= zst;
        hashes.add(sha(zst));
      }
      expect(hashes.size).toBe(1);
      const descriptor = first![4]!;
      expect(descriptor & 0x04, 'checksum flag').toBe(0x04);
      expect(descriptor >> 6, 'no content size').toBe(0);
      expect(zstdFrameWindowLog(first!)).toBeLessThanOrEqual(27);
    });

    it('gives a small stream the bytes of a fresh context, also after streams that reused one, were abandoned or ran at once', async () => {
      // A level and worker count no other test uses: the first stream here gets a new context.
      const options = { format: 'zstd', level: 7, threads: 3 } as const;
      const a = data.subarray(0, 300_000);
      const b = data.subarray(1_000, 900_000);
      const freshA = sha(await collect(compress(chunked(a), options)));
      const freshB = sha(await collect(compress(chunked(b, 4_096), options)));
      const abandoned = compress(chunked(data), options)[Symbol.asyncIterator]();
      await abandoned.next();
      await abandoned.return?.(undefined);
      const [x, y] = await Promise.all([
        collect(compress(chunked(a, 777), options)),
        collect(compress(chunked(b), options)),
      ]);
      expect([sha(x), sha(y)]).toEqual([freshA, freshB]);
      expect(sha(await collect(compress(chunked(a), options)))).toBe(freshA);
      expect(sha(await collect(compress(chunked(b), { ...options, level: 8 })))).not.toBe(freshB);
    });

    it('reads what the other backend and zstd(1) write, and refuses a window over 128 MiB', async () => {
      const input = data.subarray(0, 1_500_000);
      const other = env === 'node' ? 'napi' : 'node';
      process.env[ZSTD_BACKEND_ENV] = other;
      const fromOther = await collect(compress(chunked(input), { format: 'zstd', threads: 2 }));
      process.env[ZSTD_BACKEND_ENV] = env;
      expect(await collect(decompress(chunked(fromOther, 3_333)))).toEqual(input);
      const fromCli = (await run('zstd', ['-c', '-q', '-19', '--single-thread'], input)).stdout;
      expect(await collect(decompress(chunked(fromCli, 100_000)))).toEqual(input);
      const long = (await run('zstd', ['--long=28', '-c', '-q'], input.subarray(0, 100_000))).stdout;
      await expect(collect(decompress(chunked(long), { label: 'big' }))).rejects.toMatchObject({
        code: 'IRB_ZSTD_WINDOW_TOO_LARGE',
        message: expect.stringContaining('big'),
      });
    });
  });
}

describe('zstd backends', () => {
  it('node:zlib writes one frame of any size (its stream with zstd workers stops early)', async () => {
    // 48 MiB of varied input: node:zlib with nbWorkers ≥ 1 lost data past about 40 MB.
    const big = Buffer.concat(
      Array.from({ length: 8 }, (_, i) => Buffer.concat([Buffer.from(`part ${i}\n`), data])),
    );
    process.env[ZSTD_BACKEND_ENV] = 'node';
    try {
      const zst = await collect(compress(chunked(big, 1 << 20), { format: 'zstd', threads: 2 }));
      const tested = await run('zstd', ['-dc'], zst);
      expect(tested.code).toBe(0);
      expect(sha(tested.stdout)).toBe(sha(big));
    } finally {
      delete process.env[ZSTD_BACKEND_ENV];
    }
  });

  it('refuses an unknown backend name', () => {
    process.env[ZSTD_BACKEND_ENV] = 'fast';
    try {
      expect(() => zstdBackend()).toThrow(expect.objectContaining({ code: 'IRB_OPTION_INVALID' }));
      expect(() => compress(chunked(data), { format: 'zstd' })).toThrow(/IRB_ZSTD_BACKEND=fast/);
    } finally {
      delete process.env[ZSTD_BACKEND_ENV];
    }
  });
});

describe('compress none', () => {
  it('passes bytes through', async () => {
    const input = data.subarray(0, 100_000);
    expect((await collect(compress(chunked(input, 999), { format: 'none' }))).equals(input)).toBe(true);
  });
});

describe('a source that reads into its chunk buffer again', () => {
  /** `input` in pieces of varied sizes, all views of one buffer that is overwritten once the next piece is pulled. */
  async function* reusing(input: Uint8Array): AsyncGenerator<Uint8Array> {
    const sizes = [300_000, 5, 70_000, 1000, 200_000, 17];
    const buffer = new Uint8Array(300_000);
    let at = 0;
    for (let i = 0; at < input.length; i++) {
      const n = Math.min(sizes[i % sizes.length]!, input.length - at);
      buffer.set(input.subarray(at, at + n));
      yield buffer.subarray(0, n);
      buffer.fill(0xa5);
      at += n;
    }
  }

  it.each([
    ['gzip', undefined],
    ['lz4', undefined],
    ['zstd', 'napi'],
    ['zstd', 'node'],
  ] as const)(
    '%s (%s) copies what it keeps: the same bytes as from fresh chunks',
    async (format, backend) => {
      if (backend === 'napi' && zstdBackend() !== 'zstd-napi') return;
      const before = process.env[ZSTD_BACKEND_ENV];
      if (backend) process.env[ZSTD_BACKEND_ENV] = backend;
      try {
        const input = data.subarray(0, 3 * 1024 * 1024);
        const fresh = await collect(compress(chunked(input, 65_536), { format, threads: 2 }));
        const reused = await collect(compress(reusing(input), { format, threads: 2 }));
        expect(sha(reused)).toBe(sha(fresh));
      } finally {
        if (before === undefined) delete process.env[ZSTD_BACKEND_ENV];
        else process.env[ZSTD_BACKEND_ENV] = before;
      }
    },
  );
});
