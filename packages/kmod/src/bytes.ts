import { createHash } from 'node:crypto';
import { ByteReader, DETECT_BYTES, decompress, detectCompression, drain } from '@irb/compress';
import { IrbError } from '@irb/errors';
import type { ModuleCompression } from './names.ts';
import { unxz } from './xz.ts';

/** Largest module accepted, decompressed: the largest in distribution kernels is about 30 MiB. */
export const MAX_MODULE_BYTES = 256 * 1024 * 1024;

/** A whole stream in memory; more than `limit` bytes is an error naming `label`. */
export async function readAll(
  source: AsyncIterable<Uint8Array>,
  label: string,
  limit = MAX_MODULE_BYTES,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    signal?.throwIfAborted();
    total += chunk.length;
    if (total > limit) {
      throw new IrbError(
        'IRB_KMOD_MODULE_INVALID',
        `${label} is larger than ${limit} bytes, far more than any kernel module; check the module tree`,
      );
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks, total);
}

/**
 * Decompresses a stream whatever it is: xz here, gzip, zstd and lz4 through @irb/compress, or
 * plain bytes as they are. For the inside of a .deb and for tar streams of module trees.
 */
export async function* decompressAny(
  source: AsyncIterable<Uint8Array>,
  label: string,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const reader = new ByteReader(source);
  try {
    const format = detectCompression(await reader.peek(DETECT_BYTES));
    if (format === 'xz') yield* unxz(drain(reader), label, 'archive', signal);
    else yield* decompress(drain(reader), { label, signal });
  } finally {
    await reader.close();
  }
}

/**
 * A module file's bytes decompressed as the kernel (or kmod) would: `.ko.gz`, `.ko.xz` and
 * `.ko.zst` per their suffix, checked against the data's own magic.
 */
export async function unpackModule(
  bytes: Uint8Array,
  compression: ModuleCompression,
  label: string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  if (compression === 'none') return bytes;
  const found = detectCompression(bytes.subarray(0, DETECT_BYTES));
  if (found !== compression) {
    throw new IrbError(
      'IRB_KMOD_MODULE_INVALID',
      `${label} is named for ${compression} but holds ${found === 'none' ? 'uncompressed' : found} data; rename or recompress it`,
    );
  }
  const once = (async function* () {
    yield bytes;
  })();
  const out =
    compression === 'xz'
      ? unxz(once, label, 'module', signal)
      : decompress(once, { format: compression, label, signal });
  return readAll(out, label, MAX_MODULE_BYTES, signal);
}

/** `sha256:<hex>` of bytes. */
export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
