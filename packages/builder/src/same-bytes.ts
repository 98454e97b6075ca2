import { lstat, open, stat } from 'node:fs/promises';

const CHUNK = 2 * 1024 * 1024;

type Handle = Awaited<ReturnType<typeof open>>;

/** Fills `buffer[0, length)` from `handle` at `position`; the bytes read (fewer only at the end of the file). */
async function readFully(handle: Handle, buffer: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * True when `path` is a regular file (not a symlink to one) that holds exactly the bytes of
 * `parts` (files, or bytes given as they are), one after the other. Sizes are compared first, so
 * a different file usually costs one `stat` per part; an equal one is read through (page cache),
 * both sides at once, and compared chunk by chunk. Anything unreadable is "not the same".
 */
export async function holdsExactly(
  path: string,
  parts: ReadonlyArray<string | Uint8Array>,
): Promise<boolean> {
  // lstat: a symlink at `path` is not "the file"; a build replaces the link itself.
  const [target, ...sizes] = await Promise.all([
    lstat(path).catch(() => undefined),
    ...parts.map((p) =>
      typeof p === 'string'
        ? stat(p)
            .then((s) => s.size)
            .catch(() => undefined)
        : p.byteLength,
    ),
  ]);
  if (!target?.isFile() || sizes.some((s) => s === undefined)) return false;
  if (sizes.reduce((sum: number, s) => sum + (s ?? 0), 0) !== target.size) return false;
  const out = await open(path).catch(() => undefined);
  if (!out) return false;
  const mine = Buffer.allocUnsafe(CHUNK);
  const theirs = Buffer.allocUnsafe(CHUNK);
  try {
    let position = 0;
    for (const part of parts) {
      if (typeof part !== 'string') {
        for (let offset = 0; offset < part.byteLength; ) {
          const length = Math.min(CHUNK, part.byteLength - offset);
          if ((await readFully(out, theirs, length, position)) !== length) return false;
          if (Buffer.compare(part.subarray(offset, offset + length), theirs.subarray(0, length)) !== 0)
            return false;
          offset += length;
          position += length;
        }
        continue;
      }
      const input = await open(part);
      try {
        const size = (await input.stat()).size;
        for (let offset = 0; offset < size; ) {
          const length = Math.min(CHUNK, size - offset);
          const [a, b] = await Promise.all([
            readFully(input, mine, length, offset),
            readFully(out, theirs, length, position),
          ]);
          if (a !== length || b !== length || mine.compare(theirs, 0, length, 0, length) !== 0) return false;
          offset += length;
          position += length;
        }
      } finally {
        await input.close();
      }
    }
    return position === target.size;
  } catch {
    return false;
  } finally {
    await out.close();
  }
}
