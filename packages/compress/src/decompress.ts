import { IrbError } from '@irb/errors';
import { passThrough } from './compress.ts';
import { compressionFromMediaType, DETECT_BYTES, detectCompression } from './detect.ts';
import { gunzipStream } from './gunzip.ts';
import { unlz4Stream } from './lz4.ts';
import { ByteReader, drain } from './reader.ts';
import type { DecompressOptions, DetectedCompression } from './types.ts';
import { unzstdStream } from './zstd.ts';

/** The error for formats irb recognises but does not decode. */
export function unsupportedCompression(format: DetectedCompression, label: string): IrbError {
  return new IrbError(
    'IRB_COMPRESSION_UNSUPPORTED',
    `${label} is ${format}-compressed, which irb does not decode; recompress it with gzip, zstd or lz4 -l`,
  );
}

/**
 * Decompresses a byte stream: gzip (also multi-member), zstd (also several frames), lz4
 * in the kernel's legacy format (also several streams, NUL padding between them) or plain. With `format: 'auto'` (the default) the format comes from `mediaType` when it
 * names one, else from the first bytes. Corrupt or truncated input fails with
 * `IRB_GZIP_CORRUPT`, `IRB_GZIP_TRUNCATED`, `IRB_ZSTD_CORRUPT` or `IRB_ZSTD_TRUNCATED`,
 * `IRB_LZ4_CORRUPT` or `IRB_LZ4_TRUNCATED`, naming `label`; xz, bzip2, lzma, lzo and
 * the lz4 frame format fail with `IRB_COMPRESSION_UNSUPPORTED`.
 */
export async function* decompress(
  source: AsyncIterable<Uint8Array>,
  options: DecompressOptions = {},
): AsyncGenerator<Uint8Array> {
  const { signal } = options;
  const label = options.label ?? 'input';
  signal?.throwIfAborted();
  let format: DetectedCompression | undefined = options.format === 'auto' ? undefined : options.format;
  if (format === undefined && options.mediaType !== undefined) {
    format = compressionFromMediaType(options.mediaType);
  }
  let input = source;
  let reader: ByteReader | undefined;
  if (format === undefined) {
    reader = new ByteReader(source);
    format = detectCompression(await reader.peek(DETECT_BYTES));
    input = drain(reader);
  }
  try {
    switch (format) {
      case 'gzip':
        yield* gunzipStream(input, label, signal);
        return;
      case 'zstd':
        yield* unzstdStream(input, label, signal);
        return;
      case 'lz4': {
        const lz4Reader = new ByteReader(input);
        try {
          yield* unlz4Stream(lz4Reader, label, signal);
        } finally {
          await lz4Reader.close();
        }
        return;
      }
      case 'none':
        yield* passThrough(input, signal);
        return;
      default:
        throw unsupportedCompression(format, label);
    }
  } finally {
    await reader?.close();
  }
}
