/** First word (little endian) of an lz4 legacy stream, the lz4 format the kernel reads. */
const LZ4_LEGACY_MAGIC = 0x184c2102;
/** The kernel's lz4 legacy blocks decode into 8 MiB. */
const LZ4_BLOCK_SIZE = 8 * 1024 * 1024;
/** LZ4_compressBound(8 MiB): a longer length word is not a block (another member follows). */
const LZ4_MAX_BLOCK = LZ4_BLOCK_SIZE + Math.floor(LZ4_BLOCK_SIZE / 255) + 16;

function le32(data: Uint8Array, at: number): number {
  return (
    ((data[at] ?? 0) |
      ((data[at + 1] ?? 0) << 8) |
      ((data[at + 2] ?? 0) << 16) |
      ((data[at + 3] ?? 0) << 24)) >>>
    0
  );
}

/** Decodes one raw lz4 block `src[start, end)` into `out`; returns the decoded length. */
function decodeBlock(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let s = start;
  let d = 0;
  const length = (initial: number): number => {
    let n = initial;
    if (n === 15) {
      let b: number;
      do {
        b = src[s++] ?? 0;
        n += b;
      } while (b === 255 && s < end);
    }
    return n;
  };
  while (s < end) {
    const token = src[s++] ?? 0;
    const literals = length(token >> 4);
    if (s + literals > end || d + literals > out.length) throw new Error('lz4 literals overrun');
    // Short runs copy faster byte by byte than through a subarray.
    if (literals < 32) for (let i = 0; i < literals; i++) out[d++] = src[s++] as number;
    else {
      out.set(src.subarray(s, s + literals), d);
      s += literals;
      d += literals;
    }
    // The last sequence of a block is literals only.
    if (s >= end) break;
    const offset = (src[s] ?? 0) | ((src[s + 1] ?? 0) << 8);
    s += 2;
    const match = length(token & 15) + 4;
    if (offset === 0 || offset > d || d + match > out.length) throw new Error('lz4 match out of range');
    if (offset >= match && match >= 32) {
      out.copyWithin(d, d - offset, d - offset + match);
      d += match;
    } else {
      // An overlapping match repeats the bytes it is still writing.
      for (let from = d - offset, i = 0; i < match; i++) out[d++] = out[from++] as number;
    }
  }
  return d;
}

/**
 * Decodes the lz4 legacy stream at `at` the way the kernel's unlz4 does: blocks until the input
 * ends, a zero length word, or a word no block can have (the next member); the magic word again
 * starts the next of several back-to-back streams. Returns the decoded bytes and how many input
 * bytes the stream took.
 */
export function unlz4Member(data: Uint8Array, at: number): { out: Uint8Array; used: number } {
  if (le32(data, at) !== LZ4_LEGACY_MAGIC) throw new Error('no lz4 legacy magic');
  let p = at + 4;
  const blocks: Uint8Array[] = [];
  const buffer = new Uint8Array(LZ4_BLOCK_SIZE);
  while (p + 4 <= data.length) {
    const size = le32(data, p);
    if (size === LZ4_LEGACY_MAGIC) {
      p += 4;
      continue;
    }
    if (size === 0 || size > LZ4_MAX_BLOCK || p + 4 + size > data.length) break;
    const n = decodeBlock(data, p + 4, p + 4 + size, buffer);
    blocks.push(buffer.slice(0, n));
    p += 4 + size;
  }
  const total = blocks.reduce((sum, b) => sum + b.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const block of blocks) {
    out.set(block, o);
    o += block.length;
  }
  return { out, used: p - at };
}
