import { describe, expect, it } from 'vitest';
import { TarFormatError } from './errors.ts';
import { parsePax, paxInteger } from './pax.ts';

const enc = new TextEncoder();

/** `<len> key=value\n` with the length counting itself. */
function record(key: string, value: Uint8Array): Uint8Array {
  const body = new Uint8Array([...enc.encode(` ${key}=`), ...value, 0x0a]);
  let length = body.byteLength + 1;
  while (String(length).length + body.byteLength !== length) length = String(length).length + body.byteLength;
  return new Uint8Array([...enc.encode(String(length)), ...body]);
}

describe('parsePax', () => {
  it('keeps values as exact bytes, newlines and "=" included', () => {
    const path = Uint8Array.of(0x64, 0x2f, 0x80, 0x9f, 0x0a, 0x3d, 0xff);
    const data = new Uint8Array([...record('path', path), ...record('uid', enc.encode('70000')), 0, 0, 0]);
    const records = parsePax(data);
    expect(records.map((r) => r.key)).toEqual(['path', 'uid']);
    expect(records[0]?.value).toEqual(path);
  });

  it('reads keywords as UTF-8', () => {
    const [xattr] = parsePax(record('SCHILY.xattr.user.café', enc.encode('v')));
    expect(xattr?.key).toBe('SCHILY.xattr.user.café');
  });

  it('refuses records with a wrong length, no newline or no key', () => {
    expect(() => parsePax(enc.encode('99 path=x\n'))).toThrow(
      new TarFormatError('malformed PAX record length'),
    );
    expect(() => parsePax(enc.encode('9 path=xy'))).toThrow(new TarFormatError('PAX record without newline'));
    expect(() => parsePax(enc.encode('6 =xy\n'))).toThrow(new TarFormatError('PAX record without key'));
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
