/*
 * Tar names, link targets and PAX values are bytes, not text. Code that wants them as string
 * keys (for maps, sorting, splitting at '/') needs a mapping that is exact both ways: every byte
 * one UTF-16 code unit of the same value (ISO-8859-1 in the strict sense). `new TextDecoder(
 * 'latin1')` is NOT that: the WHATWG Encoding standard maps the label to windows-1252, which
 * turns 0x80–0x9F into characters such as U+20AC and U+0153 whose low byte is another value.
 */

/** Longest run handed to `String.fromCharCode` at once (stays far below the engine's argument limit). */
const CHUNK = 8192;

/**
 * Bytes → a "binary string": one code unit per byte, U+0000–U+00FF, so `binaryToBytes` gives the
 * same bytes back and `<` on two such strings is byte order.
 */
export function bytesToBinary(bytes: Uint8Array): string {
  if (bytes.byteLength <= CHUNK) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let out = '';
  for (let at = 0; at < bytes.byteLength; at += CHUNK) {
    out += String.fromCharCode.apply(null, bytes.subarray(at, at + CHUNK) as unknown as number[]);
  }
  return out;
}

/** A binary string (see {@link bytesToBinary}) → its bytes. Throws on a code unit above U+00FF. */
export function binaryToBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit > 0xff) {
      throw new RangeError(
        `binaryToBytes: code unit U+${unit.toString(16).padStart(4, '0')} at ${i} is not a byte`,
      );
    }
    out[i] = unit;
  }
  return out;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** The bytes as UTF-8 text when they are valid UTF-8, else `undefined` (never U+FFFD substitutes). */
export function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return undefined;
  }
}
