/**
 * The newc "crc" checksum: the sum of all body bytes modulo 2^32 (not a CRC, despite the name).
 *
 * Pass the previous result as `initial` to checksum a body that arrives in chunks.
 */
export function cpioChecksum(data: Uint8Array, initial = 0): number {
  let total = initial;
  let i = 0;
  const len = data.length;
  // Bytes before the first 4-aligned address, so the bulk can be read as 32-bit words.
  const head = Math.min(len, (4 - (data.byteOffset & 3)) & 3);
  for (; i < head; i++) total += data[i]!;
  const words = (len - i) >>> 2;
  if (words > 0) {
    const u32 = new Uint32Array(data.buffer, data.byteOffset + i, words);
    let w = 0;
    while (w < words) {
      // Two 16-bit lanes hold byte sums; 64 words keep each lane below 2^16 and the
      // accumulator a small integer, so the hot loop stays in int32 arithmetic.
      const end = Math.min(w + 64, words);
      let s = 0;
      for (; w < end; w++) {
        const x = u32[w]!;
        s += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
      }
      total += (s & 0xffff) + (s >>> 16);
    }
    i += words * 4;
  }
  for (; i < len; i++) total += data[i]!;
  return total % 0x1_0000_0000;
}
