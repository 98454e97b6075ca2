import { createRequire } from 'node:module';
import { IrbError } from '@irb/errors';

/*
 * xz through xz-decompress (xz-embedded compiled to WebAssembly: no native addon, 72 KB).
 *
 * That library lets one stream decode at a time per copy of its module: a class-wide mutex is
 * held from a stream's start to its end. A kernel .deb is data.tar.xz around modules that may be
 * .ko.xz themselves (Debian 13), so the archive's stream would wait forever for the module's.
 * Two copies of the module, each with its own mutex and WebAssembly instance, break that: one
 * for archives, one for modules. Within a role, streams run one after another, which is how
 * this package reads them.
 */

type XzReadableStreamClass = new (input: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>;

/** Who decodes: a whole archive (a .deb's data.tar.xz, a tar.xz) or one module file. */
export type XzRole = 'archive' | 'module';

const copies = new Map<XzRole, XzReadableStreamClass>();

function xzClass(role: XzRole): XzReadableStreamClass {
  let cls = copies.get(role);
  if (!cls) {
    const require = createRequire(import.meta.url);
    const id = require.resolve('xz-decompress');
    // A fresh copy of the module per role (see above); the cache entry is put back as it was.
    const cached = require.cache[id];
    delete require.cache[id];
    try {
      cls = (require(id) as { XzReadableStream: XzReadableStreamClass }).XzReadableStream;
    } finally {
      if (cached) require.cache[id] = cached;
      else delete require.cache[id];
    }
    copies.set(role, cls);
  }
  return cls;
}

/** xz-embedded's return codes (xz.h) as irb errors. */
function xzError(error: unknown, label: string): IrbError {
  const code = Number(/error code (\d+)/.exec(String(error))?.[1]);
  if (code === 2 || code === 6) {
    return new IrbError(
      'IRB_COMPRESSION_UNSUPPORTED',
      `${label}: the xz stream uses a check or filter irb does not decode (only CRC32/CRC64 and LZMA2); recompress it with xz --check=crc64`,
      { cause: error },
    );
  }
  if (code === 8) {
    return new IrbError(
      'IRB_XZ_TRUNCATED',
      `${label}: the xz data ends early; the file is incomplete — fetch it again`,
      {
        cause: error,
      },
    );
  }
  return new IrbError(
    'IRB_XZ_CORRUPT',
    `${label}: the xz data is damaged (${String(error)}); fetch the file again`,
    {
      cause: error,
    },
  );
}

/**
 * Decompresses an xz stream (one or more blocks, CRC32 or CRC64 checks verified). Stopping early
 * cancels the decoder, which frees it for the next stream.
 *
 * @throws IrbError `IRB_XZ_CORRUPT`, `IRB_XZ_TRUNCATED`, `IRB_COMPRESSION_UNSUPPORTED` (a SHA-256 check or a BCJ filter).
 */
export async function* unxz(
  source: AsyncIterable<Uint8Array>,
  label: string,
  role: XzRole,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const Xz = xzClass(role);
  const stream = new Xz(ReadableStream.from(source));
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      signal?.throwIfAborted();
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        done = true;
        throw xzError(error, label);
      }
      if (next.done) {
        done = true;
        return;
      }
      if (next.value.length > 0) yield next.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
