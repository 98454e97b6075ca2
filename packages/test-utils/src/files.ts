import { execFile } from 'node:child_process';
import { open, rm } from 'node:fs/promises';
import { promisify } from 'node:util';

/**
 * Flips one byte of a file in place (its size stays), as a failing disk or a stray write would:
 * the byte at `offset`, default the middle one.
 */
export async function flipByte(path: string, offset?: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const at = offset ?? Math.floor((await handle.stat()).size / 2);
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] as number) ^ 0x5a;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with a sparse file of `size` bytes: all holes, so gigabytes cost no disk. */
export async function sparseFile(path: string, size: number): Promise<void> {
  await rm(path, { force: true });
  const handle = await open(path, 'w');
  try {
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with a FIFO (a real one, made by mkfifo) that nobody writes to. */
export async function fifo(path: string): Promise<void> {
  await rm(path, { force: true });
  await promisify(execFile)('mkfifo', [path]);
}
