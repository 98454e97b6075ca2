import { describe, expect, it } from 'vitest';
import { paxRecord } from '../test/blocks.ts';
import { TarFormatError } from './errors.ts';
import { parsePax, paxInteger } from './pax.ts';

const enc = new TextEncoder();
describe('parsePax', () => {
  it('keeps values as exact bytes, newlines and "=" included', () => {
    const path = Uint8Array.of(0x64, 0x2f, 0x80, 0x9f, 0x0a, 0x3d, 0xff);
    const data = new Uint8Array([
      ...paxRecord('path', path),
      ...paxRecord('uid', enc.encode('70000')),
      0,
      0,
      0,
    ]);
    const records = parsePax(data);
    expect(records.map((r) => r.key)).toEqual(['path', 'uid']);
    expect(records[0]?.value).toEqual(path);
  });

  it('reads keywords as UTF-8', () => {
    const [xattr] = parsePax(paxRecord('SCHILY.xattr.user.café', enc.encode('v')));
    expect(xattr?.key).toBe('SCHILY.xattr.user.café');
  });

  it('refuses records with a wrong length, no newline or no key', () => {
    expect(() => parsePax(enc.encode('99 path=x\n'))).toThrow(
      new TarFormatError('malformed PAX record length'),
    );
    expect(() => parsePax(enc.encode('9 path=xy'))).toThrow(new TarFormatError('PAX record without newline'));
    expect(() => parsePax(enc.encode('6 =xy\n'))).toThrow(new TarFormatError('PAX record without key'));
  });

  it('refuses a NUL inside a name (cut there, two names would be one) or a key, as Go does', () => {
    for (const key of ['path', 'linkpath', 'uname', 'gname', 'GNU.sparse.name']) {
      expect(() => parsePax(paxRecord(key, 'a\0b'))).toThrow(
        new TarFormatError(`PAX ${key} contains a NUL byte, which no name can hold`),
      );
      expect(() => parsePax(paxRecord(key, 'ab\0'))).toThrow(TarFormatError);
    }
    expect(() => parsePax(paxRecord('SCHILY.xattr.a\0b', 'v'))).toThrow(
      new TarFormatError('PAX record key contains a NUL byte'),
    );
    // Other values are data: an xattr may hold any byte.
    expect(parsePax(paxRecord('SCHILY.xattr.user.x', 'a\0b'))[0]?.value).toEqual(
      Uint8Array.of(0x61, 0, 0x62),
    );
  });
});

describe('paxInteger', () => {
  it('drops fractions and keeps the sign', () => {
    expect(paxInteger(enc.encode('1700000000.123456789'), 'mtime')).toBe(1_700_000_000);
    expect(paxInteger(enc.encode('-5'), 'mtime')).toBe(-5);
  });

  it('names the key and shows odd bytes escaped', () => {
    expect(() => paxInteger(Uint8Array.of(0x31, 0x80), 'uid')).toThrow(
      new TarFormatError('PAX uid "1\\x80" is not a number'),
    );
  });
});
