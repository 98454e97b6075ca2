import { describe, expect, it } from 'vitest';
import { ascii, base, GNU, header, USTAR } from '../test/blocks.ts';
import { TarFormatError } from './errors.ts';
import {
  BLOCK_SIZE,
  checksumOk,
  decodeHeader,
  entryTypeOf,
  formatOf,
  isZeroBlock,
  paddingOf,
  parseNumber,
  type TarField,
} from './header.ts';

function field(bytes: number[], length = bytes.length): [Uint8Array, TarField] {
  const block = new Uint8Array(length);
  block.set(bytes);
  return [block, { offset: 0, length }];
}

describe('parseNumber', () => {
  it('reads octal with leading spaces or NULs and a space or NUL terminator', () => {
    expect(parseNumber(...field([...ascii('  755 ')], 8))).toBe(0o755);
    expect(parseNumber(...field([0, 0, ...ascii('17'), 0], 8))).toBe(0o17);
    expect(parseNumber(...field([], 8))).toBe(0);
  });

  it('reads GNU base-256, positive and negative', () => {
    expect(parseNumber(...field([0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], 12))).toBe(2 ** 32);
    expect(parseNumber(...field([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], 8))).toBe(-2);
  });

  it('refuses non-octal digits and values beyond a safe integer', () => {
    expect(parseNumber(...field([...ascii('0008')], 8))).toBeUndefined();
    expect(parseNumber(...field([0x80, ...new Array(11).fill(0xff)], 12))).toBeUndefined();
  });
});

describe('checksumOk', () => {
  it('accepts the unsigned sum and the signed sum old tars wrote', () => {
    const block = header({ name: Uint8Array.of(0xe9, 0x80), ...base, typeflag: '0', ...USTAR });
    expect(checksumOk(block)).toBe(true);
    let signed = 8 * 0x20;
    for (let i = 0; i < BLOCK_SIZE; i++)
      if (i < 148 || i >= 156) signed += ((block[i] as number) << 24) >> 24;
    block.set(ascii(`${signed.toString(8).padStart(6, '0')}\0 `), 148);
    expect(checksumOk(block)).toBe(true);
    block[0] = 0x41;
    expect(checksumOk(block)).toBe(false);
  });
});

describe('decodeHeader', () => {
  it('joins the POSIX prefix and keeps name bytes exact', () => {
    const name = Uint8Array.of(0x80, 0x9f, 0xff);
    const h = decodeHeader(header({ name, prefix: 'dir/sub', ...base, typeflag: '0', ...USTAR }));
    expect(h.format).toBe('ustar');
    expect(h.name).toEqual(Uint8Array.of(...ascii('dir/sub/'), 0x80, 0x9f, 0xff));
    expect([h.mode, h.uid, h.gid, h.size, h.mtime]).toEqual([0o644, 1000, 1000, 10, 0o14172410000]);
  });

  it('does not read a prefix in GNU headers (those bytes hold atime, ctime, sparse maps)', () => {
    const h = decodeHeader(header({ name: 'n', prefix: 'not-a-prefix', ...base, typeflag: '0', ...GNU }));
    expect(formatOf(header({ ...GNU }))).toBe('gnu');
    expect(h.name).toEqual(ascii('n'));
  });

  it('ignores the device fields of v7 headers and names the field that is not a number', () => {
    const v7 = decodeHeader(header({ name: 'd', ...base, devmajor: 'garbage', typeflag: '3' }));
    expect([v7.format, v7.devmajor]).toEqual(['v7', 0]);
    const bad = header({ name: 'x', ...base, uid: '12x', typeflag: '0', ...USTAR });
    expect(() => decodeHeader(bad)).toThrow(new TarFormatError('invalid uid field'));
  });

  it('maps typeflags to @irb/cpio words', () => {
    const flags = ['0', '\0', '7', '1', '2', '3', '4', '5', '6', 'D', 'S'];
    expect(flags.map((f) => entryTypeOf(f, ascii('x')))).toEqual([
      'file',
      'file',
      'file',
      'link',
      'symlink',
      'char',
      'block',
      'directory',
      'fifo',
      'directory',
      'file',
    ]);
    expect(entryTypeOf('0', ascii('old-dir/'))).toBe('directory');
    expect(entryTypeOf('S', ascii('sparse/'))).toBe('file');
    expect(entryTypeOf('Z', ascii('x'))).toBeUndefined();
  });

  it('recognizes the end marker and pads to blocks', () => {
    expect(isZeroBlock(new Uint8Array(BLOCK_SIZE))).toBe(true);
    expect(isZeroBlock(header({ name: 'x' }))).toBe(false);
    expect([paddingOf(0), paddingOf(1), paddingOf(512), paddingOf(513)]).toEqual([0, 511, 0, 511]);
  });
});
