import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { IrbError } from '@irb/errors';
import { formatSize } from '../errors.ts';

/*
 * Every byte an `oci:` or `docker-archive:` source reads comes through here. A layout or archive
 * is the user's input, and it can be hostile: a FIFO, a symlink to /dev/zero, a sparse file of
 * terabytes. Reads therefore need a regular file, are bounded by what the descriptor (or the
 * file's own size) promised, and give way to the abort signal between chunks.
 */

/** A regular file open for reading, and what fstat said of it when it was opened. */
export interface RegularFile {
  readonly handle: FileHandle;
  readonly size: number;
  /** Device and inode: which file this is, even if its name is later given to another. */
  readonly dev: number;
  readonly ino: number;
}

/** Bytes per read: as many as a file stream would hand out, few enough to hear an abort often. */
const CHUNK = 1 << 20;

function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens `path` for reading and refuses anything but a regular file (`IRB_SOURCE_INVALID`, with
 * `what` saying what it is: `OCI layout blob`, `docker archive`). O_NONBLOCK lets a FIFO open at once: a plain open() waits for a writer
 * inside a libuv thread that no signal reaches, so irb could not even be interrupted. The check
 * is fstat on the descriptor, so what was checked is what is read, whatever the name points to
 * (a symlink to /dev/zero is a character device). Errors of open() itself (ENOENT, EACCES) are
 * thrown as they are, for the caller to name.
 */
export async function openRegularFile(path: string, what: string): Promise<RegularFile> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new IrbError(
        'IRB_SOURCE_INVALID',
        `${what} ${path} is ${kindOf(stats)}, not a regular file; irb reads image layouts and archives only from regular files`,
      );
    }
    return { handle, size: stats.size, dev: stats.dev, ino: stats.ino };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * `length` bytes of `handle` from `start`, in chunks of up to 1 MiB, checking `signal` before
 * each read. Stops early, without error, where the file ends: the caller's size and digest
 * checks say what that means.
 */
export async function* readRange(
  handle: FileHandle,
  start: number,
  length: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array, void, undefined> {
  let position = start;
  const end = start + length;
  while (position < end) {
    signal?.throwIfAborted();
    // A new buffer each time: consumers may keep the chunks they are given.
    const buffer = new Uint8Array(Math.min(CHUNK, end - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield bytesRead === buffer.byteLength ? buffer : buffer.subarray(0, bytesRead);
  }
}

/** Options of {@link readRegularFile}. */
export interface ReadRegularFileOptions {
  /** What the file is, before its path in messages: `OCI layout file`. */
  what: string;
  /** Largest size accepted; a larger file is refused before a byte is read. */
  maxBytes: number;
  signal?: AbortSignal;
}

/** A whole small regular file (index.json, oci-layout), refused when larger than `maxBytes`. */
export async function readRegularFile(path: string, options: ReadRegularFileOptions): Promise<Uint8Array> {
  const file = await openRegularFile(path, options.what);
  try {
    if (file.size > options.maxBytes) {
      throw new IrbError(
        'IRB_SOURCE_INVALID',
        `${options.what} ${path} is ${file.size} bytes, over the ${formatSize(options.maxBytes)} limit; it is not what an image layout holds`,
      );
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of readRange(file.handle, 0, file.size, options.signal)) chunks.push(chunk);
    return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
  } finally {
    await file.handle.close();
  }
}
