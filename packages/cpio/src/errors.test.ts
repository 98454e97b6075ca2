import { describe, expect, it } from 'vitest';
import { IrbError, isIrbError } from './index.ts';

describe('IrbError', () => {
  it('keeps code, message and cause', () => {
    const cause = new Error('inner');
    const e = new IrbError('IRB_TEST', 'outer', { cause });
    expect(e.code).toBe('IRB_TEST');
    expect(e.cause).toBe(cause);
    expect(isIrbError(e)).toBe(true);
    expect(isIrbError(Object.assign(new Error('x'), { code: 'IRB_OTHER' }))).toBe(true);
    expect(isIrbError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false);
  });
});
