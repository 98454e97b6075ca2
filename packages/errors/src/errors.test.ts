import { readFileSync } from 'node:fs';
import { CPIO_ERROR_CODES, CpioError } from '@irb/cpio';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, IrbError, isIrbError, isIrbErrorCode } from './index.ts';

describe('IrbError', () => {
  it('keeps code, message and cause', () => {
    const cause = new Error('inner');
    const e = new IrbError('IRB_OPTION_INVALID', 'outer', { cause });
    expect(e.code).toBe('IRB_OPTION_INVALID');
    expect(e.name).toBe('IrbError');
    expect(e.cause).toBe(cause);
    expect(e).toBeInstanceOf(Error);
    expect(e).toBeInstanceOf(IrbError);
    expect(isIrbError(e)).toBe(true);
  });

  it('recognises irb errors from other copies and from @irb/cpio, and nothing else', () => {
    const foreign = Object.assign(new Error('x'), { code: 'IRB_LAYER_TRUNCATED' });
    expect(isIrbError(foreign)).toBe(true);
    expect(foreign instanceof IrbError).toBe(true);
    const cpio = new CpioError('IRB_CPIO_TRUNCATED', 'short');
    expect(cpio instanceof IrbError).toBe(true);
    const errno = Object.assign(new Error('x'), { code: 'ENOENT' });
    expect(isIrbError(errno)).toBe(false);
    expect(errno instanceof IrbError).toBe(false);
    expect(isIrbError({ code: 'IRB_OPTION_INVALID' })).toBe(false);
  });
});

describe('the catalog', () => {
  const codes = Object.keys(ERROR_CODES);

  it('follows the naming rule and describes every code in one sentence', () => {
    for (const code of codes) {
      expect(code).toMatch(/^IRB_[A-Z0-9]+(_[A-Z0-9]+)+$/);
      const text = ERROR_CODES[code as keyof typeof ERROR_CODES];
      expect(text, code).toMatch(/^\S.*\.$/);
    }
    expect(isIrbErrorCode('IRB_OPTION_INVALID')).toBe(true);
    expect(isIrbErrorCode('IRB_BAD_OPTIONS')).toBe(false);
    expect(isIrbErrorCode('toString')).toBe(false);
  });

  it('holds every code @irb/cpio throws', () => {
    for (const code of CPIO_ERROR_CODES) expect(isIrbErrorCode(code), code).toBe(true);
  });

  it('is the table in the README, row for row', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const rows = [...readme.matchAll(/^\| `(IRB_[A-Z0-9_]+)` \| (.+) \|$/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(Object.entries(ERROR_CODES));
  });
});
