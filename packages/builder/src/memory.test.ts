import { describe, expect, it } from 'vitest';
import { recommendGuestMemory, tmpfsFootprint } from './memory.ts';

// The least RAM that booted each archive (Debian 6.1 kernel, QEMU TCG `pc`), found by bisection
// with bench/memory-calibrate.ts. Rerun it and update this table when the formula or kernel changes.
const MEASURED = [
  { image: 'busybox', compressedBytes: 1_053_191, tmpfsBytes: 1_986_560, leastMiB: 84 },
  { image: 'debian python3', compressedBytes: 54_898_021, tmpfsBytes: 161_722_368, leastMiB: 425 },
];

describe('recommendGuestMemory', () => {
  it.each(MEASURED)('covers the measured minimum for $image with a margin of at most 30 %', (m) => {
    const recommended = recommendGuestMemory(m);
    expect(recommended).toBeGreaterThan(m.leastMiB);
    expect(recommended).toBeLessThanOrEqual(Math.ceil(m.leastMiB * 1.3));
  });

  it('grows with the unpacked size twice as fast as with the archive once tmpfs is the limit', () => {
    const base = recommendGuestMemory({ tmpfsBytes: 200 * 2 ** 20, compressedBytes: 50 * 2 ** 20 });
    const moreFiles = recommendGuestMemory({ tmpfsBytes: 300 * 2 ** 20, compressedBytes: 50 * 2 ** 20 });
    const biggerArchive = recommendGuestMemory({ tmpfsBytes: 200 * 2 ** 20, compressedBytes: 150 * 2 ** 20 });
    expect(moreFiles - base).toBe(220);
    expect(biggerArchive - base).toBe(110);
  });

  it('counts files in whole pages', () => {
    expect([0, 1, 4096, 4097].map(tmpfsFootprint)).toEqual([0, 4096, 4096, 8192]);
  });
});
