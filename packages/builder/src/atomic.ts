import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IrbError } from '@irb/errors';

/** Options for {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Aborts the write; the temporary file is removed and `path` is untouched. */
  signal?: AbortSignal;
  /** File mode of the result. Default `0o644` (before the umask). */
  mode?: number;
  /** Called after each chunk is written with the running byte count. */
  onWrite?: (bytes: number) => void;
}

/**
 * Streams `source` into `path` atomically: a temporary file in the same directory, fsync, rename.
 * Readers see either the old file or the complete new one; on any failure, abort included, the
 * temporary file is removed and nothing appears at `path`. Returns the number of bytes written.
 */
export async function writeFileAtomic(
  path: string,
  source: AsyncIterable<Uint8Array>,
  options: WriteFileAtomicOptions = {},
): Promise<number> {
  const { signal } = options;
  signal?.throwIfAborted();
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.irb-tmp`);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      options.mode ?? 0o644,
    );
  } catch (error) {
    throw outputError(path, error);
  }
  let bytes = 0;
  let renamed = false;
  try {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      let offset = 0;
      // Awaiting each write is the backpressure: the producer is pulled only as fast as the disk takes it.
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
      bytes += chunk.byteLength;
      options.onWrite?.(bytes);
    }
    signal?.throwIfAborted();
    await handle.sync();
    await handle.close();
    await rename(temp, path);
    renamed = true;
  } catch (error) {
    await handle.close().catch(() => {});
    throw isFsError(error) && !renamed ? outputError(path, error) : error;
  } finally {
    if (!renamed) await unlink(temp).catch(() => {});
  }
  // The rename itself is durable only once the directory is synced; not every filesystem allows it.
  try {
    const d = await open(dir, constants.O_RDONLY);
    await d.sync().finally(() => d.close());
  } catch {}
  return bytes;
}

function isFsError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string';
}

function outputError(path: string, error: unknown): unknown {
  if (!isFsError(error)) return error;
  const what: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOENT: 'the directory does not exist',
    ENOTDIR: 'a parent is not a directory',
    EROFS: 'the filesystem is read-only',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EISDIR: 'it is a directory',
  };
  const reason = what[error.code ?? ''] ?? error.code ?? error.message;
  return new IrbError(
    'IRB_OUTPUT_FAILED',
    `cannot write the output ${path} (${reason}); choose a writable path with -o FILE`,
    { cause: error },
  );
}
