import { constants, createReadStream } from 'node:fs';
import { copyFile, lstat, open, rename, stat, truncate, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IrbError, isIrbError } from '@irb/errors';
import { removeStaleTemps, tempName } from '@irb/store/temp';

/** Options for {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Aborts the write; the temporary file is removed and `path` is untouched. */
  signal?: AbortSignal;
  /** File mode of the result. Default `0o644` (before the umask). */
  mode?: number;
  /** Called after each write (a chunk, or the chunks read ahead during a prefix copy) with the running byte count. */
  onWrite?: (bytes: number) => void;
  /**
   * A file whose bytes come first, before `source`'s. It is copied with `fs.copyFile` (libuv uses
   * copy_file_range or a reflink where the file system allows), so it never passes through
   * this process. Not counted in the returned byte count.
   */
  prefixFile?: string;
  /** Only the first this many bytes of `prefixFile`. Default: all of it. */
  prefixBytes?: number;
}

type Handle = Awaited<ReturnType<typeof open>>;

/**
 * Streams `source` into `path`. A regular file or a new name is written atomically: a temporary
 * file in the same directory, fsync, rename. Readers see either the old file or the complete new
 * one; on any failure, abort included, the temporary file is removed and nothing appears at
 * `path`. Anything else that exists at `path` — a character device such as `/dev/null`, a FIFO,
 * a socket — is opened and written in place: renaming over it would replace the device node
 * itself. Temporary files that earlier writers killed mid-write left in the directory are
 * removed first (@irb/store's `removeStaleTemps`). Returns the number of bytes written.
 */
export async function writeFileAtomic(
  path: string,
  source: AsyncIterable<Uint8Array>,
  options: WriteFileAtomicOptions = {},
): Promise<number> {
  options.signal?.throwIfAborted();
  const target = await stat(path).catch(() => undefined);
  if (target && !target.isFile() && !target.isDirectory()) return writeInPlace(path, source, options);
  return writeReplacing(path, source, options);
}

/** Writes into an existing non-regular file (device, FIFO): no temporary file, no rename, no truncation. */
async function writeInPlace(
  path: string,
  source: AsyncIterable<Uint8Array>,
  options: WriteFileAtomicOptions,
): Promise<number> {
  let handle: Handle;
  try {
    // O_NOCTTY: writing to a terminal device must not make it this process's controlling tty.
    handle = await open(path, constants.O_WRONLY | constants.O_NOCTTY);
  } catch (error) {
    throw outputError(path, error);
  }
  try {
    if (options.prefixFile !== undefined && options.prefixBytes !== 0) {
      const prefix = createReadStream(options.prefixFile, {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.prefixBytes !== undefined ? { end: options.prefixBytes - 1 } : {}),
      });
      await copy(prefix as AsyncIterable<Uint8Array>, handle, {});
    }
    return await copy(source, handle, options);
  } catch (error) {
    throw isFsError(error) ? outputError(path, error) : error;
  } finally {
    await handle.close().catch(() => {});
  }
}

async function writeReplacing(
  path: string,
  source: AsyncIterable<Uint8Array>,
  options: WriteFileAtomicOptions,
): Promise<number> {
  const dir = dirname(path);
  await removeStaleTemps(dir);
  const temp = join(dir, tempName(basename(path)));
  let handle: Handle;
  // While the kernel copies the prefix, the first bytes of `source` are produced (a cached
  // build's overlay member is compressed meanwhile instead of after).
  const ahead = options.prefixFile !== undefined ? readAhead(source, READ_AHEAD_BYTES) : undefined;
  try {
    if (options.prefixFile !== undefined) {
      await copyPrefix(options.prefixFile, temp);
      if (options.prefixBytes !== undefined) await cutPrefix(temp, options.prefixFile, options.prefixBytes);
      handle = await open(temp, constants.O_WRONLY | constants.O_APPEND);
      await handle.chmod(options.mode ?? 0o644);
    } else {
      handle = await open(
        temp,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
        options.mode ?? 0o644,
      );
    }
  } catch (error) {
    await ahead?.cancel();
    if (options.prefixFile !== undefined) await unlink(temp).catch(() => {});
    throw isIrbError(error) ? error : outputError(path, error);
  }
  let bytes = 0;
  let renamed = false;
  try {
    bytes = await copy(ahead?.stream ?? source, handle, options);
    options.signal?.throwIfAborted();
    await handle.sync();
    await handle.close();
    // Something other than a regular file may have appeared at `path` while we wrote; a rename
    // would replace it (a device node, a FIFO), so that is refused instead.
    const now = await lstat(path).catch(() => undefined);
    if (now && !now.isFile() && !now.isSymbolicLink()) {
      throw new IrbError(
        'IRB_OUTPUT_FAILED',
        `cannot write the output ${path} (it became something other than a regular file while irb wrote); choose another \`output\``,
      );
    }
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

/** How much of `source` is produced ahead while a prefix file is copied. */
const READ_AHEAD_BYTES = 16 * 1024 * 1024;

/**
 * Starts pulling `source` now, keeping up to `limit` bytes; `stream` yields them and then the
 * rest of `source`. An error of `source` surfaces when `stream` reaches it.
 */
function readAhead(
  source: AsyncIterable<Uint8Array>,
  limit: number,
): { stream: AsyncIterable<Uint8Array | Uint8Array[]>; cancel(): Promise<void> } {
  const iterator = source[Symbol.asyncIterator]();
  const buffered: Uint8Array[] = [];
  const task = (async () => {
    let size = 0;
    while (size < limit) {
      const next = await iterator.next();
      if (next.done) return true;
      buffered.push(next.value);
      size += next.value.byteLength;
    }
    return false;
  })();
  // Awaited by `stream` or `cancel`; never an unhandled rejection meanwhile.
  task.catch(() => {});
  return {
    stream: (async function* () {
      const done = await task;
      // What was produced meanwhile goes out in one write (writev), not one per chunk.
      if (buffered.length > 0) yield buffered.splice(0);
      if (done) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    })(),
    async cancel() {
      await task.catch(() => {});
      await iterator.return?.();
    },
  };
}

/** Copies the prefix file into a new temporary file; a missing prefix is the caller's input error, not the output's. */
async function copyPrefix(prefix: string, temp: string): Promise<void> {
  try {
    await stat(prefix);
  } catch (error) {
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `cannot read ${prefix} (${(error as NodeJS.ErrnoException).code ?? 'error'}); check the path`,
      { cause: error },
    );
  }
  await copyFile(prefix, temp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
}

/** Cuts the copied prefix to its first `bytes`; a prefix that shrank meanwhile is an input error. */
async function cutPrefix(copied: string, prefix: string, bytes: number): Promise<void> {
  if ((await stat(copied)).size < bytes) {
    throw new IrbError(
      'IRB_INPUT_UNREADABLE',
      `${prefix} became shorter while irb read it; run again once nothing writes to it`,
    );
  }
  await truncate(copied, bytes);
}

/** Writes `source` to `handle`; an array of chunks is written with one writev. */
async function copy(
  source: AsyncIterable<Uint8Array | Uint8Array[]>,
  handle: Handle,
  options: WriteFileAtomicOptions,
): Promise<number> {
  let bytes = 0;
  for await (const item of source) {
    options.signal?.throwIfAborted();
    // Awaiting each write is the backpressure: the producer is pulled only as fast as the disk takes it.
    if (Array.isArray(item)) bytes += await writeAllv(handle, item);
    else {
      let offset = 0;
      while (offset < item.byteLength) {
        const { bytesWritten } = await handle.write(item, offset, item.byteLength - offset);
        offset += bytesWritten;
      }
      bytes += item.byteLength;
    }
    options.onWrite?.(bytes);
  }
  return bytes;
}

/** Writes every chunk with writev, again from where a short write stopped. */
async function writeAllv(handle: Handle, chunks: Uint8Array[]): Promise<number> {
  let rest = chunks.filter((c) => c.byteLength > 0);
  let total = 0;
  while (rest.length > 0) {
    const { bytesWritten } = await handle.writev(rest);
    total += bytesWritten;
    let skip = bytesWritten;
    let first = 0;
    while (first < rest.length && skip >= (rest[first] as Uint8Array).byteLength) {
      skip -= (rest[first] as Uint8Array).byteLength;
      first++;
    }
    rest = rest.slice(first);
    if (skip > 0) rest[0] = (rest[0] as Uint8Array).subarray(skip);
  }
  return total;
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
    ENXIO: 'no such device',
    ENODEV: 'no such device',
  };
  const reason = what[error.code ?? ''] ?? error.code ?? error.message;
  return new IrbError(
    'IRB_OUTPUT_FAILED',
    `cannot write the output ${path} (${reason}); choose a writable \`output\``,
    { cause: error },
  );
}
