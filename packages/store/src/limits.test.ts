import { describe, expect, it } from 'vitest';
import { cacheMaxBytes, DEFAULT_CACHE_MAX_BYTES, parseByteSize, parseDuration } from './index.ts';

describe('sizes and durations', () => {
  it('reads binary and decimal units, and refuses the rest', () => {
    expect(parseByteSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseByteSize('10GiB')).toBe(10 * 1024 ** 3);
    expect(parseByteSize('2GB')).toBe(2e9);
    expect(parseByteSize('1.5m')).toBe(1.5 * 1024 ** 2);
    expect(parseByteSize('4096')).toBe(4096);
    expect(parseByteSize('0')).toBe(0);
    for (const bad of ['', 'ten', '-1G', '5X', '1e9']) expect(parseByteSize(bad)).toBeUndefined();
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    for (const bad of ['', '30', 'd', '3y']) expect(parseDuration(bad)).toBeUndefined();
  });

  it('IRB_CACHE_MAX_SIZE sets the automatic limit, off disables it, nonsense is refused', () => {
    expect(cacheMaxBytes({})).toBe(DEFAULT_CACHE_MAX_BYTES);
    expect(DEFAULT_CACHE_MAX_BYTES).toBe(10 * 1024 ** 3);
    expect(cacheMaxBytes({ IRB_CACHE_MAX_SIZE: '500M' })).toBe(500 * 1024 ** 2);
    expect(cacheMaxBytes({ IRB_CACHE_MAX_SIZE: 'off' })).toBeUndefined();
    expect(() => cacheMaxBytes({ IRB_CACHE_MAX_SIZE: 'lots' })).toThrow(
      /IRB_CACHE_MAX_SIZE="lots" is not a size; use e\.g\. 10G/,
    );
  });
});
