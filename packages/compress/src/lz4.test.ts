import { createHash } from 'node:crypto';
import { compressSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { chunked, collect, realisticData, run } from '../test/helpers.ts';
import { compress, decompress } from './index.ts';
import { LZ4_BLOCK_SIZE, LZ4_LEGACY_MAGIC } from './lz4.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const data = realisticData(20 * 1024 * 1024);
const le32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** The words of a legacy stream: block lengths in order, and where the blocks end. */
function layout(bytes: Buffer): { blocks: number[]; end: number } {
  expect(bytes.readUInt32LE(0)).toBe(LZ4_LEGACY_MAGIC);
  const blocks: number[] = [];
  let at = 4;
  while (at + 4 <= bytes.length) {
    const size = bytes.readUInt32LE(at);
    if (size === 0) break;
    blocks.push(size);
    at += 4 + size;
  }
  return { blocks, end: at };
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error('expected a failure');
}

describe('compress lz4 (legacy format)', () => {
  it('writes what lz4 -d reads by default: 8 MiB blocks, exactly the lz4 -l layout', async () => {
    for (const size of [0, 1, 100_000, LZ4_BLOCK_SIZE, LZ4_BLOCK_SIZE + 1, data.length]) {
      const input = data.subarray(0, size);
      const lz = await collect(compress(chunked(input, 300_001), { format: 'lz4', threads: 2 }));
      const { blocks, end } = layout(lz);
      expect(end, `size ${size}`).toBe(lz.length);
      expect(blocks.length).toBe(Math.ceil(size / LZ4_BLOCK_SIZE));
      const decoded = await run('lz4', ['-d', '-c'], lz);
      expect(decoded.code, decoded.stderr).toBe(0);
      expect(sha(decoded.stdout), `size ${size}`).toBe(sha(input));
      expect((await collect(decompress(chunked(lz, 65_537)))).equals(input)).toBe(true);
    }
  });

  it('ends with a zero word padded to 4 bytes with endMark; lz4 -d still writes every byte', async () => {
    const input = data.subarray(0, LZ4_BLOCK_SIZE + 12_345);
    const lz = await collect(compress(chunked(input), { format: 'lz4', endMark: true }));
    const { blocks, end } = layout(lz);
    expect(blocks.length).toBe(2);
    expect(lz.length % 4).toBe(0);
    expect(lz.length - end).toBeGreaterThanOrEqual(4);
    expect(lz.length - end).toBeLessThan(8);
    expect([...lz.subarray(end)].every((b) => b === 0)).toBe(true);
    // lz4 1.9.4 has decoded and written all the data when it reaches the zero word, then
    // calls it a corrupt block: the documented cost of a member the kernel can append to.
    const decoded = await run('lz4', ['-d', '-c'], lz);
    expect(sha(decoded.stdout)).toBe(sha(input));
    expect(decoded.code).toBe(54);
    expect((await collect(decompress(chunked(lz, 4096)))).equals(input)).toBe(true);
  });

  it('is byte-identical across runs, thread counts and input chunkings', async () => {
    const hashes = new Set<string>();
    for (const [threads, chunk] of [
      [1, 65_536],
      [2, 1_000_003],
      [4, 777],
      [3, LZ4_BLOCK_SIZE],
      [2, 65_536],
    ] as const) {
      hashes.add(sha(await collect(compress(chunked(data, chunk), { format: 'lz4', threads }))));
    }
    expect(hashes.size).toBe(1);
  });

  it('reads what the lz4 tool writes: lz4 -l at levels 1 and 9, streams back to back, NUL padding', async () => {
    const a = data.subarray(0, 9_000_000);
    const b = data.subarray(9_000_000, 9_500_000);
    const fast = (await run('lz4', ['-l', '-c'], a)).stdout;
    const high = (await run('lz4', ['-l', '-9', '-c'], b)).stdout;
    expect((await collect(decompress(chunked(fast, 100_000)))).equals(a)).toBe(true);
    // Two streams back to back (the kernel skips the second magic) and one after NULs.
    const joined = Buffer.concat([fast, high, Buffer.alloc(13), high]);
    const expected = Buffer.concat([a, b, b]);
    expect((await collect(decompress(chunked(joined, 4093), { format: 'lz4' }))).equals(expected)).toBe(true);
  });

  it('reports truncated, corrupt and oversized blocks, the frame format and junk', async () => {
    const input = data.subarray(0, 3_000_000);
    const lz = await collect(compress(chunked(input), { format: 'lz4' }));
    const cut = await failure(
      collect(decompress(chunked(lz.subarray(0, lz.length - 100)), { label: 'blob Z' })),
    );
    expect(cut.code).toBe('IRB_LZ4_TRUNCATED');
    expect(cut.message).toContain('blob Z');
    const damaged = Buffer.from(lz);
    damaged.fill(0xff, 5000, 5100);
    expect((await failure(collect(decompress(chunked(damaged))))).code).toBe('IRB_LZ4_CORRUPT');
    // A block that decodes to more than 8 MiB does not fit the kernel's buffer.
    const big = data.subarray(0, LZ4_BLOCK_SIZE + 1000);
    const block = compressSync(Buffer.from(big)).subarray(4);
    const oversized = Buffer.concat([le32(LZ4_LEGACY_MAGIC), le32(block.length), block]);
    expect(await run('lz4', ['-d', '-c'], oversized).then((r) => r.code)).not.toBe(0);
    expect((await failure(collect(decompress(chunked(oversized))))).code).toBe('IRB_LZ4_CORRUPT');
    const frame = (await run('lz4', ['-c'], input.subarray(0, 1000))).stdout;
    const framed = await failure(collect(decompress(chunked(frame), { label: 'framed' })));
    expect(framed.code).toBe('IRB_COMPRESSION_UNSUPPORTED');
    expect(framed.message).toContain('lz4 -l');
    const junk = await failure(collect(decompress(chunked(Buffer.concat([lz, Buffer.from('junk!')])))));
    expect(junk.code).toBe('IRB_LZ4_CORRUPT');
    expect((await failure(collect(decompress(chunked(Buffer.alloc(0)), { format: 'lz4' })))).code).toBe(
      'IRB_LZ4_TRUNCATED',
    );
  });

  it('refuses a level other than 1', () => {
    expect(() => compress(chunked(data), { format: 'lz4', level: 9 })).toThrow(/lz4 has one level/);
  });

  it('reads the source only as output is consumed, and stops on abort', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled += 1 << 20;
        yield data.subarray(0, 1 << 20);
      }
    }
    const it = compress(endless(), { format: 'lz4', threads: 2 })[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) await it.next();
    await it.return?.();
    // Magic, two blocks (length + data): the window of 2 × threads blocks bounds the reading.
    expect(pulled).toBeLessThanOrEqual(6 * LZ4_BLOCK_SIZE);
    const controller = new AbortController();
    const aborted = compress(chunked(data), { format: 'lz4', signal: controller.signal })[
      Symbol.asyncIterator
    ]();
    await aborted.next();
    controller.abort();
    await expect(aborted.next()).rejects.toThrow(/abort/i);
  });
});
