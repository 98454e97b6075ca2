import { describe, expect, it } from 'vitest';
import { OUT_OF_MEMORY, unpackFailure } from './boot-verdict.ts';

describe('boot verdicts from the console', () => {
  it('tells a corrupt archive from a guest out of memory', () => {
    // Seen booting a gzip archive with a flipped byte: not a memory problem.
    const corrupt =
      '[    0.812345] Initramfs unpacking failed: broken padding\n[    0.9] Kernel panic - not syncing';
    expect(unpackFailure(corrupt)).toBe('broken padding');
    expect(unpackFailure('Initramfs unpacking failed: junk within compressed archive\r\n')).toBe(
      'junk within compressed archive',
    );
    expect(unpackFailure('Initramfs unpacking failed: decompressor failed')).toBe('decompressor failed');
    // A full tmpfs and a failed allocation are memory.
    for (const memory of [
      'Initramfs unpacking failed: write error',
      'Initramfs unpacking failed: out of memory',
    ]) {
      expect(unpackFailure(memory)).toBeUndefined();
      expect(OUT_OF_MEMORY.test(memory)).toBe(true);
    }
    expect(OUT_OF_MEMORY.test(corrupt)).toBe(false);
    expect(OUT_OF_MEMORY.test('sh invoked oom-killer: gfp_mask=0x')).toBe(true);
    expect(unpackFailure('Run /init as init process')).toBeUndefined();
  });
});
