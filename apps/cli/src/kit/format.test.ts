import { describe, expect, it } from 'vitest';
import { escapeName, formatBytes, formatMode, formatRate, table } from './format.ts';

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

describe('escapeName', () => {
  const bytes = (...parts: Array<string | number[]>) =>
    Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...new TextEncoder().encode(p)] : p)));

  it('escapes control bytes and invalid UTF-8 as ls -b and bsdtar do, and keeps printable UTF-8', () => {
    expect(escapeName(bytes('usr/bin/sh'))).toBe('usr/bin/sh');
    expect(escapeName(bytes('we\nird'))).toBe('we\\nird');
    expect(escapeName(bytes('tab\there'))).toBe('tab\\there');
    expect(escapeName(bytes('esc\u001b[31mred'))).toBe('esc\\033[31mred');
    expect(escapeName(bytes('back\\slash'))).toBe('back\\\\slash');
    expect(escapeName(bytes('del', [0x7f]))).toBe('del\\177');
    expect(escapeName(bytes('caf\u00e9/\u65e5\u672c/\u{1f600}'))).toBe('caf\u00e9/\u65e5\u672c/\u{1f600}');
    // Latin-1 bytes, a lone continuation byte, an overlong slash, a surrogate, a C1 control (CSI).
    expect(escapeName(bytes('caf', [0xe9]))).toBe('caf\\351');
    expect(escapeName(bytes('a', [0x80], 'b'))).toBe('a\\200b');
    expect(escapeName(bytes([0xc0, 0xaf]))).toBe('\\300\\257');
    expect(escapeName(bytes([0xed, 0xa0, 0x80]))).toBe('\\355\\240\\200');
    expect(escapeName(bytes('x', [0xc2, 0x9b], '31m'))).toBe('x\\302\\23331m');
    expect(escapeName(bytes('truncated', [0xe6, 0x97]))).toBe('truncated\\346\\227');
  });
});
