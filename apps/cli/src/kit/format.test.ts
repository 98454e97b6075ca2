import { describe, expect, it } from 'vitest';
import { formatBytes, formatMode, formatRate, table } from './format.ts';

describe('format', () => {
  it('prints sizes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(150 * 1024 * 1024)).toBe('150 MiB');
    expect(formatRate(10 * 1024 * 1024, 2000)).toBe('5.0 MiB/s');
  });

  it('prints modes as ls -l does', () => {
    expect(formatMode('file', 0o4755)).toBe('-rwsr-xr-x');
    expect(formatMode('directory', 0o1777)).toBe('drwxrwxrwt');
    expect(formatMode('file', 0o2644)).toBe('-rw-r-Sr--');
    expect(formatMode('symlink', 0o777)).toBe('lrwxrwxrwx');
    expect(formatMode('char', 0o600)).toBe('crw-------');
  });

  it('aligns columns', () => {
    expect(
      table(
        [
          ['1', 'a', '10'],
          ['22', 'bbb', '3'],
        ],
        [true, false, true],
      ),
    ).toEqual([' 1  a    10', '22  bbb  3']);
  });
});
