import { describe, expect, it } from 'vitest';
import { CpioError } from './index.ts';

describe('CpioError', () => {
  it('keeps code, message and cause', () => {
    const cause = new Error('inner');
    const e = new CpioError('IRB_CPIO_TRUNCATED', 'outer', { cause });
    expect(e.code).toBe('IRB_CPIO_TRUNCATED');
    expect(e.message).toBe('outer');
    expect(e.cause).toBe(cause);
    expect(e).toBeInstanceOf(Error);
  });
});
