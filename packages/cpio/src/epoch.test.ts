import { afterEach, describe, expect, it } from 'vitest';
import { sourceDateEpoch } from './node.ts';

describe('sourceDateEpoch', () => {
  const saved = process.env.SOURCE_DATE_EPOCH;
  afterEach(() => {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  });

  it('takes the given value over the environment', () => {
    process.env.SOURCE_DATE_EPOCH = '1700000000';
    expect(sourceDateEpoch(5)).toBe(5);
    expect(sourceDateEpoch(0)).toBe(0);
    expect(sourceDateEpoch()).toBe(1_700_000_000);
  });

  it('ignores a value that is not a whole number of seconds', () => {
    for (const value of ['', '-1', '1.5', '17e8', ' 1', 'now']) {
      process.env.SOURCE_DATE_EPOCH = value;
      expect(sourceDateEpoch()).toBeUndefined();
    }
    delete process.env.SOURCE_DATE_EPOCH;
    expect(sourceDateEpoch()).toBeUndefined();
  });
});
