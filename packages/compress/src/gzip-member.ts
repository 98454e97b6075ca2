import { crc32, createInflateRaw } from 'node:zlib';
import { IrbError } from '@irb/errors';
import { chunksOf } from './chunks.ts';
import { gzipError } from './gunzip.ts';
import type { ByteReader } from './reader.ts';
import { settledWrite } from './settled-write.ts';

// Input handed to zlib per write, and zlib's output chunk: a thread-pool round trip per 256 KiB
// instead of per 16 KiB (zlib's default), which cost as much CPU again as inflating did.
const WRITE_SIZE = 256 * 1024;
// chunksOf pauses zlib while a few of these wait: a member that inflates a thousandfold holds
// a few chunks, not a write's whole output.
const CHUNK_SIZE = 256 * 1024;

const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;

function truncated(label: string, what: string): IrbError {
  return new IrbError(
    'IRB_GZIP_TRUNCATED',
    `gzip member in ${label} ends too early (in its ${what}); the data is truncated — fetch or build it again`,
  );
}

function corrupt(label: string, what: string): IrbError {
  return new IrbError(
    'IRB_GZIP_CORRUPT',
    `corrupt gzip member in ${label}: ${what}; the data is damaged — fetch or build it again`,
  );
}

async function readExactly(reader: ByteReader, n: number, label: string, what: string): Promise<Uint8Array> {
  const bytes = await reader.read(n);
  if (bytes.length < n) throw truncated(label, what);
  return bytes;
}

async function skipZeroTerminated(reader: ByteReader, label: string, what: string): Promise<void> {
  for (;;) {
    const chunk = await reader.next();
    if (chunk === undefined) throw truncated(label, what);
    const nul = chunk.indexOf(0);
    if (nul >= 0) {
      reader.unshift(chunk.subarray(nul + 1));
      return;
    }
  }
}

/**
 * Decodes exactly one gzip member from `reader` and leaves the reader just past its
 * trailer, so whatever follows (another member of any kind, NUL padding) is still there.
 * Streams: the deflate body goes through node:zlib's raw inflater in writes of 256 KiB whose
 * output is handed on while zlib produces it (paused when the consumer lags), and zlib's count
 * of consumed input tells where the body ended. CRC-32 and length are checked.
 */
export async function* gunzipMember(reader: ByteReader, label: string): AsyncGenerator<Uint8Array> {
  const header = await readExactly(reader, 10, label, 'header');
  if (header[0] !== 0x1f || header[1] !== 0x8b) throw corrupt(label, 'no gzip magic');
  if (header[2] !== 8) throw corrupt(label, `compression method ${header[2]} is not deflate`);
  const flags = header[3]!;
  if ((flags & 0xe0) !== 0) throw corrupt(label, 'reserved header flags are set');
  if (flags & FEXTRA) {
    const xlen = await readExactly(reader, 2, label, 'extra field');
    await readExactly(reader, xlen[0]! | (xlen[1]! << 8), label, 'extra field');
  }
  if (flags & FNAME) await skipZeroTerminated(reader, label, 'file name');
  if (flags & FCOMMENT) await skipZeroTerminated(reader, label, 'comment');
  if (flags & FHCRC) await readExactly(reader, 2, label, 'header CRC');

  const inflate = createInflateRaw({ chunkSize: CHUNK_SIZE });
  // Fed a slice at a time while chunksOf hands the output on, pausing zlib when the consumer
  // lags. Where the deflate stream ends, zlib stops consuming and ends its output; its count of
  // consumed input tells where: the rest belongs to the trailer and whatever follows the member.
  const feeding = (async () => {
    let fed = 0;
    for (;;) {
      const chunk = await reader.next();
      if (chunk === undefined) throw truncated(label, 'compressed data');
      const slice = chunk.subarray(0, WRITE_SIZE);
      reader.unshift(chunk.subarray(slice.length));
      const before = inflate.bytesWritten;
      await settledWrite(inflate, slice);
      fed += slice.length;
      if (inflate.bytesWritten < fed) {
        reader.unshift(slice.subarray(inflate.bytesWritten - before));
        return;
      }
    }
  })();
  // A feed that fails (truncated input) ends the output with its error.
  feeding.catch((error: unknown) => inflate.destroy(error as Error));
  let crc = 0;
  let size = 0;
  try {
    for await (const out of chunksOf(inflate)) {
      crc = crc32(out, crc);
      size += out.length;
      yield out;
    }
    // The output ended: the feed's last write settles with the rest of its slice given back.
    await feeding;
  } catch (error) {
    throw gzipError(error, label);
  } finally {
    inflate.destroy();
  }
  const trailer = await readExactly(reader, 8, label, 'trailer');
  const view = new DataView(trailer.buffer, trailer.byteOffset, 8);
  if (view.getUint32(0, true) !== crc >>> 0) throw corrupt(label, 'CRC-32 mismatch');
  if (view.getUint32(4, true) !== size % 2 ** 32) throw corrupt(label, 'length mismatch');
}
