import { availableParallelism } from 'node:os';
import { IrbError } from '@irb/errors';
import { gzipStream } from './gzip.ts';
import { lz4Stream } from './lz4.ts';
import { COMPRESSION_LEVELS, type CompressOptions } from './types.ts';
import { zstdStream } from './zstd.ts';

function checkInteger(name: string, value: number, min: number, max: number, fix: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new IrbError('IRB_OPTION_INVALID', `${name} ${value} is out of range; ${fix}`);
  }
}

/**
 * Compresses a byte stream. Pull-based: input is read only as output is consumed, with a
 * bounded amount in flight (gzip: about 3 × threads × 256 KiB; lz4: 2 × threads × 8 MiB).
 * Output is byte-identical for the same input, level and format, whatever the thread count
 * or input chunking (zstd: for the same backend, see `zstdBackend`). gzip, zstd and lz4 copy
 * what they keep of an input chunk before they pull the next one, so a source may read into a
 * chunk's buffer again once the next chunk is pulled; `none` hands its input on as it is.
 *
 * @example
 * ```ts
 * await pipeline(Readable.from(compress(packCpio(entries), { format: 'gzip' })), createWriteStream('initramfs.cpio.gz'));
 * ```
 */
export function compress(
  source: AsyncIterable<Uint8Array>,
  options: CompressOptions,
): AsyncIterable<Uint8Array> {
  const { format, signal } = options;
  const threads = options.threads ?? availableParallelism();
  checkInteger('threads', threads, 1, 256, 'use 1 … 256 threads');
  switch (format) {
    case 'gzip':
    case 'zstd':
    case 'lz4': {
      const range = COMPRESSION_LEVELS[format];
      const level = options.level ?? range.default;
      checkInteger(
        `${format} level`,
        level,
        range.min,
        range.max,
        range.min === range.max
          ? `${format} has one level, ${range.min}`
          : `use ${range.min} … ${range.max} (default ${range.default})`,
      );
      if (format === 'gzip') {
        const { name } = options;
        if (name !== undefined && !/^[\x20-\x7e]{1,255}$/.test(name)) {
          throw new IrbError(
            'IRB_OPTION_INVALID',
            `gzip name ${JSON.stringify(name)} is not 1 to 255 printable ASCII characters; give such a name or none`,
          );
        }
        return gzipStream(source, level, threads, signal, name);
      }
      if (format === 'zstd') return zstdStream(source, level, threads, signal);
      return lz4Stream(source, threads, options.endMark ?? false, signal);
    }
    case 'none':
      return passThrough(source, signal);
    default:
      throw new IrbError(
        'IRB_OPTION_INVALID',
        `unknown compression format ${JSON.stringify(format)}; use 'gzip', 'zstd', 'lz4' or 'none'`,
      );
  }
}

/** Yields `source` unchanged, honouring `signal`. */
export async function* passThrough(
  source: AsyncIterable<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  signal?.throwIfAborted();
  for await (const chunk of source) {
    signal?.throwIfAborted();
    yield chunk;
  }
}
