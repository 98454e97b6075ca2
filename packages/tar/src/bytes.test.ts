import { describe, expect, it } from 'vitest';
import { binaryToBytes, bytesToBinary, utf8OrUndefined } from './bytes.ts';

const every = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('binary strings', () => {
  it('map every byte value to the code unit of the same value and back', () => {
    const text = bytesToBinary(every);
    expect(text.length).toBe(256);
    for (let i = 0; i < 256; i++) expect(text.charCodeAt(i)).toBe(i);
    expect(binaryToBytes(text)).toEqual(every);
  });

  it('differ from TextDecoder("latin1"), which is windows-1252 and rewrites 0x80–0x9F', () => {
    const c1 = every.subarray(0x80, 0xa0);
    const windows1252 = new TextDecoder('latin1').decode(c1);
    // The trap this package exists to avoid: 0x80 becomes U+20AC (€), whose low byte is 0xAC.
    expect(windows1252.charCodeAt(0)).toBe(0x20ac);
    expect(bytesToBinary(c1).charCodeAt(0)).toBe(0x80);
    expect(binaryToBytes(bytesToBinary(c1))).toEqual(c1);
  });

  it('handle inputs longer than one fromCharCode chunk', () => {
    const long = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff);
    expect(binaryToBytes(bytesToBinary(long))).toEqual(long);
  });

  it('refuse a code unit above U+00FF instead of keeping its low byte', () => {
    expect(() => binaryToBytes('caf\u20ac')).toThrow(RangeError);
  });

  it('decode UTF-8 only when it is valid', () => {
    expect(utf8OrUndefined(new TextEncoder().encode('日本'))).toBe('日本');
    expect(utf8OrUndefined(Uint8Array.of(0x63, 0xe9))).toBeUndefined();
  });
});
